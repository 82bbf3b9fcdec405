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
//! batch is stored once), a per-(indicator, participant) aggregate updated in the same
//! transaction, the correlations that aggregate changes, the agents' last heartbeats and the
//! audit log. A batch is one transaction, durable before [`Store::ingest`] returns, which is
//! what lets the service acknowledge it. The correlation rule runs on the aggregate of the
//! indicators a batch touched ([`evaluate`]), never over the sightings.
//!
//! Query results are the wire types of `zdn.v1` (a stored row has exactly one outward form);
//! role-based redaction happens in the service layer, not here. The `*Row` structs of
//! [`records`] are the engine-neutral shape of a row, so each engine only reads columns.

pub(crate) mod campaign;
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
use zdn_proto::v1::{self, correlation_event::Change};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database {path}: {source}")]
    Open { path: String, source: rusqlite::Error },
    #[error("postgres: {0}")]
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

    /// Open correlations, most recently changed first.
    fn correlations(&self, filter: &CorrelationFilter) -> Result<Vec<v1::Correlation>, StoreError>;

    /// A page of sightings, newest first, and the token of the next page.
    fn sightings(&self, filter: &SightingFilter<'_>) -> Result<SightingPage, StoreError>;

    /// Per-participant timeline of one indicator, and its correlation if one is open.
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

    /// Marks `indicator` as a false positive (again: the reason is updated) and closes its
    /// correlation; later sightings are stored but never reopen it. Returns the closed
    /// correlation, if one was open.
    fn mark_false_positive(
        &self,
        indicator: &str,
        who: &zdn_transport::Identity,
        reason: &str,
        now_ms: i64,
    ) -> Result<Option<v1::Correlation>, StoreError>;

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

/// `correlations.status` of an open correlation and of one closed as a false positive.
pub const OPEN: &str = "open";
pub const FALSE_POSITIVE: &str = "false_positive";

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
    /// Correlations opened or escalated by this batch (full view, before any redaction).
    pub changes: Vec<v1::CorrelationEvent>,
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

/// What one batch did to one indicator, for the correlation rule.
///
/// The rule is evaluated in full (the window's participants read back) only when the batch
/// may have brought a participant *into* the window: a participant new to the indicator, or
/// one whose previous sighting had fallen out of the window of the open correlation. If
/// everyone in the batch was in the window already, the participant count cannot have grown
/// (and correlations never shrink), so the open correlation only moves its times and counts
/// on: one row update instead of a scan of the indicator's participants.
///
/// A batch comes from one agent, so from one participant: its sightings of an indicator are
/// summed here first and reach the aggregate as one upsert per mechanism ([`Touched::by_via`]),
/// however many repeats the batch holds.
pub(crate) struct Touched {
    pub kind: Kind,
    /// The indicator's campaign ("" if none).
    pub campaign: String,
    /// The participant had no aggregate of this indicator before the batch.
    pub newcomer: bool,
    /// The participant's `last_seen` of this indicator before the batch.
    pub previous: i64,
    pub sightings: i64,
    pub first_seen: i64,
    pub last_seen: i64,
    /// Per mechanism: first seen, last seen, summed count.
    pub by_via: Vec<(Via, i64, i64, i64)>,
}

impl Touched {
    pub fn new(kind: Kind, campaign: Option<&str>) -> Touched {
        Touched {
            kind,
            campaign: campaign.unwrap_or_default().to_owned(),
            newcomer: false,
            previous: i64::MAX,
            sightings: 0,
            first_seen: i64::MAX,
            last_seen: i64::MIN,
            by_via: Vec::new(),
        }
    }

    /// One stored sighting of the indicator.
    pub fn add(&mut self, via: Via, sighting: &v1::Sighting, count: i64) {
        let (first, last) = (sighting.first_seen_unix_ms, sighting.last_seen_unix_ms);
        self.sightings = self.sightings.saturating_add(count);
        self.first_seen = self.first_seen.min(first);
        self.last_seen = self.last_seen.max(last);
        match self.by_via.iter_mut().find(|v| v.0 == via) {
            Some(v) => *v = (via, v.1.min(first), v.2.max(last), v.3.saturating_add(count)),
            None => self.by_via.push((via, first, last, count)),
        }
    }

    /// The participant's aggregate before the batch: its `last_seen`, or none.
    pub fn set_previous(&mut self, previous: Option<i64>) {
        self.newcomer = previous.is_none();
        self.previous = previous.unwrap_or(i64::MAX);
    }

    /// Whether every participant of the batch was inside the window of an open correlation
    /// whose latest sighting was `latest_before` (see the type's comment).
    pub fn stayed_within(&self, latest_before: i64, window_ms: i64) -> bool {
        !self.newcomer && self.previous >= latest_before.saturating_sub(window_ms)
    }
}

/// One participant's aggregate of an indicator, as the correlation rule reads it.
pub(crate) struct ParticipantWindow {
    pub participant: String,
    pub first_seen: i64,
    pub sightings: i64,
}

/// What to write into the correlations table for one indicator.
pub(crate) struct CorrelationUpsert {
    pub participants: String,
    pub count: u32,
    pub first_seen: i64,
    pub last_seen: i64,
    pub sightings: i64,
}

/// The rule applied to one indicator: `rows` are the participants whose last sighting falls in
/// the window before `latest`, oldest first; `before` the participant count of the open
/// correlation, if any. Returns the change (opened, escalated) and what to upsert; an open
/// correlation that did not grow is still upserted, to keep its times and counts current.
pub(crate) fn evaluate(
    rule: &CorrelationRule,
    rows: &[ParticipantWindow],
    latest: i64,
    before: Option<u32>,
) -> (Option<Change>, Option<CorrelationUpsert>) {
    let count = u32::try_from(rows.len()).unwrap_or(u32::MAX);
    let change = rule.change(before, count);
    if before.is_none() && change.is_none() {
        return (None, None);
    }
    let participants: Vec<&str> = rows.iter().map(|r| r.participant.as_str()).collect();
    let upsert = CorrelationUpsert {
        participants: participants.join(","),
        count,
        first_seen: rows.iter().map(|r| r.first_seen).min().unwrap_or(latest),
        last_seen: latest,
        sightings: rows.iter().map(|r| r.sightings).sum(),
    };
    (change, Some(upsert))
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
    fn only_a_participant_entering_the_window_needs_a_full_evaluation() {
        let at = |t: i64| v1::Sighting { first_seen_unix_ms: t, last_seen_unix_ms: t, ..Default::default() };
        let mut known = Touched::new(Kind::Domain, None);
        known.add(Via::DnsQuery, &at(100), 2);
        known.add(Via::TlsSni, &at(99), 1);
        known.add(Via::DnsQuery, &at(101), 1);
        known.set_previous(Some(95));
        assert!(known.stayed_within(100, 10), "95 >= 100 - 10: it was in the window");
        assert!(!known.stayed_within(110, 10), "95 < 110 - 10: it had fallen out, it may re-enter");
        assert_eq!((known.sightings, known.first_seen, known.last_seen), (4, 99, 101));
        assert_eq!(known.by_via, [(Via::DnsQuery, 100, 101, 3), (Via::TlsSni, 99, 99, 1)]);
        let mut new = Touched::new(Kind::Domain, Some("emotet"));
        new.add(Via::DnsQuery, &at(100), 1);
        new.set_previous(None);
        assert!(!new.stayed_within(100, 10));
    }

    #[test]
    fn the_rule_upserts_open_correlations_and_names_the_change() {
        let rule = CorrelationRule { min_participants: 2, window_ms: 10 };
        let row =
            |p: &str, first| ParticipantWindow { participant: p.into(), first_seen: first, sightings: 3 };
        assert!(matches!(evaluate(&rule, &[row("a", 5)], 9, None), (None, None)));
        let (change, upsert) = evaluate(&rule, &[row("a", 5), row("b", 2)], 9, None);
        let upsert = upsert.unwrap();
        assert_eq!(change, Some(Change::Opened));
        assert_eq!((upsert.participants.as_str(), upsert.count, upsert.first_seen), ("a,b", 2, 2));
        assert_eq!((upsert.last_seen, upsert.sightings), (9, 6));
        let (change, upsert) = evaluate(&rule, &[row("a", 5), row("b", 2)], 9, Some(2));
        assert!(change.is_none() && upsert.is_some());
    }
}
