//! Where sightings live: one [`Store`] interface, two engines.
//!
//! - [`sqlite`]: the embedded default, one file under `data_dir`, nothing to run beside the
//!   collector.
//! - [`postgres`]: for when one machine is not enough; several collector instances share one
//!   database and give the same answers as one.
//!
//! Both engines run one test suite; `zdn-scratch-postgres` makes its throw-away databases.
//!
//! Both keep the same tables: the sightings (unique on the agent's sighting id, so a retried
//! batch is stored once), a per-(indicator, participant) aggregate (the all-time timeline), the
//! incidents of indicators and campaigns with their members ([`incidents`]), the agents' last
//! heartbeats and the audit log. A batch is one transaction, durable before [`Store::ingest`]
//! returns, which is what lets the service acknowledge it. Incidents move on from the stored
//! state of the subjects a batch touched (`correlation::incident`), never from the sightings.
//!
//! Query results are the wire types of `zdn.v1` (a stored row has exactly one outward form);
//! role-based redaction happens in the service layer, not here. The `*Row` structs of
//! [`records`] are the engine-neutral shape of a row, so each engine only reads columns.

pub(crate) mod campaign;
pub(crate) mod incidents;
pub mod postgres;
mod privacy;
mod records;
pub mod sqlite;

use crate::correlation::CorrelationRule;
pub use privacy::{Cutoffs, Erased, Purged};
pub(crate) use privacy::{PURGE_BATCH, PURGE_CLASSES, without_participant};
pub(crate) use records::*;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::broadcast;
use zdn_indicators::{Kind, Via};
use zdn_proto::v1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database {path}: {source}")]
    Open { path: String, source: rusqlite::Error },
    #[error("postgres: {}", postgres_message(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("postgres connection pool: {0}")]
    Pool(String),
    #[error("postgres engine runtime: {0}")]
    Runtime(String),
    #[error("database schema version {found} is newer than this collector knows ({known})")]
    TooNew { found: i64, known: i64 },
    #[error("store {0:?}: expected \"sqlite\", \"sqlite:PATH\" or a postgres:// URL")]
    Location(String),
}

/// What the server said, in full: severity, SQLSTATE, message, detail and hint (tokio-postgres
/// shows only "db error"); for other failures, the error and its causes.
fn postgres_message(e: &tokio_postgres::Error) -> String {
    let Some(db) = e.as_db_error() else {
        let mut message = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        return message;
    };
    let mut message = format!("{} {} (SQLSTATE {})", db.severity(), db.message(), db.code().code());
    if let Some(detail) = db.detail() {
        message.push_str(&format!("; detail: {detail}"));
    }
    if let Some(hint) = db.hint() {
        message.push_str(&format!("; hint: {hint}"));
    }
    message
}

/// Which engine, and where: the `store` key of `collector.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    /// A libpq-style URL; the password, if any, never reaches a log line (see `Display`).
    Postgres(String),
}

impl Location {
    /// `"sqlite"` (the file `zdn.sqlite` in `data_dir`), `"sqlite:PATH"` or `postgres://...`.
    pub fn parse(value: &str, data_dir: &std::path::Path) -> Result<Location, StoreError> {
        if value == "sqlite" {
            Ok(Location::Sqlite(data_dir.join("zdn.sqlite")))
        } else if let Some(path) = value.strip_prefix("sqlite:").filter(|p| !p.is_empty()) {
            Ok(Location::Sqlite(PathBuf::from(path)))
        } else if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            value.parse::<tokio_postgres::Config>().map_err(|_| StoreError::Location(redact(value)))?;
            Ok(Location::Postgres(value.to_owned()))
        } else {
            Err(StoreError::Location(redact(value)))
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "SQLite {}", path.display()),
            Location::Postgres(url) => write!(f, "PostgreSQL {}", redact(url)),
        }
    }
}

/// A URL without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// Opens (and migrates) the store at `location`.
pub fn open(location: &Location, rule: CorrelationRule) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match location {
        Location::Sqlite(path) => Arc::new(sqlite::SqliteStore::open(path, rule)?),
        Location::Postgres(url) => Arc::new(postgres::PostgresStore::open(url, rule)?),
    })
}

/// What the collector asks of storage. Every method is blocking; the services call them on
/// tokio's blocking pool.
pub trait Store: Send + Sync {
    /// Stores a batch from `participant`'s `agent` and updates correlations, in one durable
    /// transaction.
    fn ingest(
        &self,
        participant: &str,
        agent: &str,
        batch: &[NewSighting<'_>],
        now_ms: i64,
    ) -> Result<Ingested, StoreError>;

    /// Incidents (every wave that opened), most recently changed first.
    fn correlations(&self, filter: &CorrelationFilter) -> Result<Vec<v1::Correlation>, StoreError>;

    /// A page of sightings, newest first, and the token of the next page.
    fn sightings(&self, filter: &SightingFilter<'_>) -> Result<SightingPage, StoreError>;

    /// Per-participant timeline of one indicator, and its latest incident with its members.
    fn indicator(&self, indicator: &str) -> Result<Option<v1::IndicatorDetail>, StoreError>;

    fn record_heartbeat(
        &self,
        participant: &str,
        agent: &str,
        beat: &v1::HeartbeatRequest,
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// Every agent that ever sent a heartbeat; `stale` when the last is older than `stale_ms`.
    fn fleet(&self, now_ms: i64, stale_ms: i64) -> Result<Vec<v1::AgentStatus>, StoreError>;

    /// Records one audited call; the caller answers only if this succeeds.
    fn audit(
        &self,
        at_ms: i64,
        who: &zdn_transport::Identity,
        action: &str,
        detail: &str,
    ) -> Result<(), StoreError>;

    /// Audit entries at or after `since_ms`, newest first.
    fn audit_log(&self, since_ms: i64, limit: u32) -> Result<Vec<v1::AuditEntry>, StoreError>;

    /// Marks `indicator` as a false positive (again: the reason is updated): its incident
    /// closes as one and never changes again, and its sightings leave its campaigns' incidents.
    /// Returns the events (closed, reduced) of what changed.
    fn mark_false_positive(
        &self,
        indicator: &str,
        who: &zdn_transport::Identity,
        reason: &str,
        now_ms: i64,
    ) -> Result<Vec<v1::CorrelationEvent>, StoreError>;

    /// Closes incidents that have been quiet for the rule's `close_after` by `now_ms`, at
    /// most `limit` per call; returns their events.
    fn close_quiet(&self, now_ms: i64, limit: u32) -> Result<Vec<v1::CorrelationEvent>, StoreError>;

    /// Every indicator marked as a false positive (withdrawn from publishing).
    fn false_positives(&self) -> Result<Vec<String>, StoreError>;

    /// Engines shared by several collector instances deliver every instance's correlation
    /// events to `to` themselves; returns whether this one does (then the collector does not
    /// send the events of its own batches, which arrive through the engine like the others').
    fn distribute_events(&self, _to: broadcast::Sender<v1::CorrelationEvent>) -> Result<bool, StoreError> {
        Ok(false)
    }

    /// The indicators seen by the most participants since `since_ms` (packet time), then by
    /// the most sightings.
    fn top_indicators(&self, since_ms: i64, limit: u32) -> Result<Vec<v1::TopIndicator>, StoreError>;

    /// Hosts flagged as likely compromised (see `campaign`), most recently seen first.
    fn suspect_hosts(
        &self,
        participant: Option<&str>,
        limit: u32,
    ) -> Result<Vec<v1::SuspectHost>, StoreError>;

    /// Deletes what is older than the retention cutoffs, in bounded batches (ingest keeps
    /// going in between).
    fn purge(&self, cutoffs: &Cutoffs) -> Result<Purged, StoreError>;

    /// Erases what is held about `participant`: with `host`, only that pseudonymised host's
    /// sightings; without, all its sightings, aggregates and agents, and its name from every
    /// correlation (a correlation left below the threshold is removed). Audit entries stay:
    /// they are the CERT's accountability record.
    fn erase(&self, participant: &str, host: Option<&str>) -> Result<Erased, StoreError>;

    /// `participant`'s per-indicator aggregates, for the subject-access export.
    fn timelines_of(&self, participant: &str) -> Result<Vec<(String, v1::ParticipantTimeline)>, StoreError>;

    /// Audit entries of `participant`'s own people, oldest first.
    fn audit_of(&self, participant: &str) -> Result<Vec<v1::AuditEntry>, StoreError>;

    /// Records a console token or session; `hash` is the SHA-256 (hex) of its secret, which
    /// the store never sees.
    fn put_console_token(&self, token: &v1::ConsoleToken, hash: &str) -> Result<(), StoreError>;

    /// The token or session whose secret hashes to `hash`, revoked and expired ones included
    /// (the caller decides; see `console::session`).
    fn console_token(&self, hash: &str) -> Result<Option<v1::ConsoleToken>, StoreError>;

    /// Revokes the token `id` and every session signed in with it; returns how many were
    /// revoked now.
    fn revoke_console_token(&self, id: &str, now_ms: i64) -> Result<u32, StoreError>;

    /// Every token and session, newest first.
    fn console_tokens(&self) -> Result<Vec<v1::ConsoleToken>, StoreError>;
}

/// A sighting that passed validation, as the store takes it.
pub struct NewSighting<'a> {
    pub wire: &'a v1::Sighting,
    pub kind: Kind,
    pub via: Via,
    /// The indicator's event or campaign in the published set, if it has one.
    pub campaign: Option<&'a str>,
}

/// What one ingested batch did.
#[derive(Debug, Default)]
pub struct Ingested {
    pub stored: u32,
    pub duplicates: u32,
    /// Incidents opened, joined or closed by this batch (full view, before any redaction).
    pub changes: Vec<v1::CorrelationEvent>,
    /// Stored sightings stamped too far ahead of the collector's clock (see `CorrelationRule`).
    pub clamped_future: u32,
    /// Stored sightings too old on arrival to take part in incidents.
    pub too_old_to_correlate: u32,
}

pub struct SightingFilter<'a> {
    pub indicator: Option<&'a str>,
    pub participant: Option<&'a str>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Rows older than this page token, newest first.
    pub before_row: Option<i64>,
    pub limit: u32,
}

/// One page of sightings and the token that continues after it (`None`: last page).
pub type SightingPage = (Vec<v1::StoredSighting>, Option<i64>);

pub struct CorrelationFilter {
    pub since_ms: Option<i64>,
    pub min_participants: u32,
    pub kind: Option<Kind>,
    /// Only indicators of this campaign.
    pub campaign: Option<String>,
    /// Campaign-level correlations instead of indicator correlations.
    pub campaigns: bool,
    pub limit: u32,
}

/// One indicator's sightings in a batch, for its per-(indicator, participant) aggregate (the
/// all-time timeline): summed per mechanism, so the aggregate gets one upsert per mechanism
/// however many repeats the batch holds. A batch comes from one agent, so one participant.
pub(crate) struct Touched {
    pub kind: Kind,
    /// Per mechanism: first seen, last seen, summed count.
    pub by_via: Vec<(Via, i64, i64, i64)>,
}

impl Touched {
    pub fn new(kind: Kind) -> Touched {
        Touched { kind, by_via: Vec::new() }
    }

    /// One stored sighting of the indicator.
    pub fn add(&mut self, via: Via, sighting: &v1::Sighting, count: i64) {
        let (first, last) = (sighting.first_seen_unix_ms, sighting.last_seen_unix_ms);
        match self.by_via.iter_mut().find(|v| v.0 == via) {
            Some(v) => *v = (via, v.1.min(first), v.2.max(last), v.3.saturating_add(count)),
            None => self.by_via.push((via, first, last, count)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn locations_parse_and_never_show_a_password() {
        let dir = Path::new("/var/lib/zdn-collector");
        assert_eq!(Location::parse("sqlite", dir).unwrap(), Location::Sqlite(dir.join("zdn.sqlite")));
        assert_eq!(Location::parse("sqlite:/tmp/x.db", dir).unwrap(), Location::Sqlite("/tmp/x.db".into()));
        let pg = Location::parse("postgres://zdn:s3cret@db.example:5432/zdn", dir).unwrap();
        assert_eq!(pg.to_string(), "PostgreSQL postgres://zdn:***@db.example:5432/zdn");
        for bad in ["", "sqlite:", "mysql://x", "postgres://x:y@h/d?sslmode=bogus"] {
            let err = Location::parse(bad, dir).unwrap_err().to_string();
            assert!(err.contains("expected") && !err.contains("y@"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_batch_sums_its_repeats_per_mechanism() {
        let at = |t: i64| v1::Sighting { first_seen_unix_ms: t, last_seen_unix_ms: t, ..Default::default() };
        let mut t = Touched::new(Kind::Domain);
        t.add(Via::DnsQuery, &at(100), 2);
        t.add(Via::TlsSni, &at(99), 1);
        t.add(Via::DnsQuery, &at(101), 1);
        assert_eq!(t.by_via, [(Via::DnsQuery, 100, 101, 3), (Via::TlsSni, 99, 99, 1)]);
    }
}
