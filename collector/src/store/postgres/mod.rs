//! The scale-out engine: PostgreSQL, shared by any number of collector instances.
//!
//! Decisions:
//! - tokio-postgres with a deadpool pool, driven by a small runtime this engine owns, so the
//!   same blocking [`Store`] interface serves both engines (the services already call the
//!   store on tokio's blocking pool, where waiting on another runtime is allowed). Dropping it
//!   uses `shutdown_background`, which is safe inside another runtime.
//! - Concurrent instances must not lose an incident: two transactions ingesting the same
//!   subject for different participants would each see only their own member rows under
//!   READ COMMITTED. Each batch therefore takes transaction-scoped advisory locks on the
//!   [`stripes`] its subjects hash to, in one global order, before writing; the
//!   second transaction waits and then reads the first one's committed rows. Stripes bound
//!   the locks per transaction (a stock server's lock table holds
//!   `max_locks_per_transaction` × connections), however many subjects a batch touches.
//! - Ingest writes a batch set-wise, in a fixed number of round trips ([`ingest`]).
//! - Migrations run under a session advisory lock, so instances starting together apply each
//!   migration once; `zdn_schema` records how many ran.

use super::incidents::{INCIDENT_COLUMNS, IncidentRow, Scope, member_wire};
use super::{
    AgentRow, CorrelationFilter, Cutoffs, Erased, Ingested, NewSighting, PURGE_BATCH, PURGE_CLASSES, Purged,
    SIGHTING_COLUMNS, SightingFilter, SightingPage, SightingRow, Store, StoreError, kind_wire, next_token,
    top_indicators_sql, vias_wire,
};
use crate::correlation::CorrelationRule;
use migrations::migrate;
mod campaign;
mod events;
mod fleet;
mod incidents;
mod ingest;
mod migrations;
mod privacy;
mod stripes;
mod tokens;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::sync::broadcast;
use tokio_postgres::{NoTls, Row};
use zdn_indicators::Kind;
use zdn_proto::v1;

/// Connections per collector instance.
const POOL_SIZE: usize = 16;

pub struct PostgresStore {
    runtime: Option<tokio::runtime::Runtime>,
    pool: Pool,
    rule: CorrelationRule,
    /// For the connection that listens for every instance's correlation events.
    url: String,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl PostgresStore {
    pub fn open(url: &str, rule: CorrelationRule) -> Result<PostgresStore, StoreError> {
        let config: tokio_postgres::Config = url.parse()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("zdn-postgres")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Runtime(e.to_string()))?;
        let manager =
            Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(std::time::Duration::from_secs(30)))
            .create_timeout(Some(std::time::Duration::from_secs(10)))
            .build()
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        let store = PostgresStore { runtime: Some(runtime), pool, rule, url: url.to_owned() };
        store.run(async |pool: &Pool| {
            let mut client = pool.get().await?;
            migrate(&mut client).await
        })?;
        Ok(store)
    }

    /// Runs `f` on this engine's runtime and waits for it.
    fn run<T>(&self, f: impl AsyncFnOnce(&Pool) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let runtime = self.runtime.as_ref().expect("the runtime lives until drop");
        runtime.block_on(f(&self.pool))
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => StoreError::Postgres(e),
            other => StoreError::Pool(other.to_string()),
        }
    }
}

impl Store for PostgresStore {
    fn ingest(
        &self,
        participant: &str,
        agent: &str,
        batch: &[NewSighting<'_>],
        now_ms: i64,
    ) -> Result<Ingested, StoreError> {
        self.run(async |pool: &Pool| {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            let out = ingest::ingest(&tx, &self.rule, participant, agent, batch, now_ms).await?;
            events::notify(&tx, &out.changes).await?;
            tx.commit().await?;
            Ok(out)
        })
    }

    fn correlations(&self, filter: &CorrelationFilter) -> Result<Vec<v1::Correlation>, StoreError> {
        let min = i32::try_from(filter.min_participants).unwrap_or(i32::MAX);
        let since = filter.since_ms.unwrap_or(i64::MIN);
        let (scope, kind) = match filter.campaigns {
            true => (Scope::Campaign, None),
            false => (Scope::Indicator, filter.kind.map(Kind::as_str)),
        };
        let limit = i64::from(filter.limit);
        let campaign = filter.campaign.as_deref();
        let sql = format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents
             WHERE scope = $1 AND updated >= $2 AND opened > 0 AND participant_count >= $3
               AND ($4::TEXT IS NULL OR kind = $4::TEXT) AND ($5::TEXT IS NULL OR campaign = $5::TEXT)
             ORDER BY updated DESC, subject, wave DESC LIMIT $6"
        );
        self.run(async |pool: &Pool| {
            let rows = pool
                .get()
                .await?
                .query(&sql, &[&scope.as_str(), &since, &min, &kind, &campaign, &limit])
                .await?;
            Ok(rows.iter().map(|r| incidents::incident_row(r).into_wire()).collect())
        })
    }

    fn sightings(&self, f: &SightingFilter<'_>) -> Result<SightingPage, StoreError> {
        let limit = i64::from(f.limit);
        self.run(async |pool: &Pool| {
            let rows = pool
                .get()
                .await?
                .query(
                    &format!(
                        "SELECT row_id, {SIGHTING_COLUMNS} FROM sightings
                         WHERE ($1::TEXT IS NULL OR indicator = $1::TEXT)
                           AND ($2::TEXT IS NULL OR participant = $2::TEXT)
                           AND ($3::BIGINT IS NULL OR last_seen >= $3::BIGINT)
                           AND ($4::BIGINT IS NULL OR first_seen <= $4::BIGINT)
                           AND ($5::BIGINT IS NULL OR row_id < $5::BIGINT)
                         ORDER BY row_id DESC LIMIT $6"
                    ),
                    &[&f.indicator, &f.participant, &f.since_ms, &f.until_ms, &f.before_row, &limit],
                )
                .await?;
            let rows: Vec<(i64, v1::StoredSighting)> = rows
                .iter()
                .map(|r| {
                    SightingRow {
                        row: r.get(0),
                        id: r.get(1),
                        participant: r.get(2),
                        agent: r.get(3),
                        indicator: r.get(4),
                        kind: r.get(5),
                        via: r.get(6),
                        observed: r.get(7),
                        indicator_id: r.get(8),
                        first_seen: r.get(9),
                        last_seen: r.get(10),
                        count: r.get(11),
                        src: r.get(12),
                        dst_ip: r.get(13),
                        dst_port: r.get::<_, i32>(14).max(0) as u32,
                        proto: r.get(15),
                        received: r.get(16),
                        resolved_name: r.get(17),
                        retro: r.get(18),
                    }
                    .into_wire()
                })
                .collect();
            let next = next_token(&rows, f.limit);
            Ok((rows.into_iter().map(|r| r.1).collect(), next))
        })
    }

    fn indicator(&self, indicator: &str) -> Result<Option<v1::IndicatorDetail>, StoreError> {
        self.run(async |pool: &Pool| {
            let client = pool.get().await?;
            let rows = client
                .query(
                    "SELECT participant, kind, first_seen, last_seen, sightings, vias FROM indicator_participants
                     WHERE indicator = $1 ORDER BY first_seen, participant",
                    &[&indicator],
                )
                .await?;
            let Some(first) = rows.first() else { return Ok(None) };
            let kind = kind_wire(first.get(1));
            let participants: Vec<v1::ParticipantTimeline> = rows
                .iter()
                .map(|r| v1::ParticipantTimeline {
                    participant: r.get(0),
                    first_seen_unix_ms: r.get(2),
                    last_seen_unix_ms: r.get(3),
                    sightings: r.get::<_, i64>(4).max(0) as u64,
                    vias: vias_wire(r.get(5)),
                })
                .collect();
            let correlation = detail(&client, Scope::Indicator, indicator).await?;
            Ok(Some(v1::IndicatorDetail {
                indicator: indicator.to_owned(),
                kind,
                sightings: participants.iter().map(|p| p.sightings).sum(),
                participants,
                correlation,
            }))
        })
    }

    fn record_heartbeat(
        &self,
        participant: &str,
        agent: &str,
        beat: &v1::HeartbeatRequest,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let row = AgentRow::from_heartbeat(participant, agent, beat, now_ms);
        self.run(async |pool: &Pool| fleet::record(pool, &row).await)
    }

    fn fleet(&self, now_ms: i64, stale_ms: i64) -> Result<Vec<v1::AgentStatus>, StoreError> {
        self.run(async |pool: &Pool| fleet::statuses(pool, now_ms, stale_ms).await)
    }

    fn audit(
        &self,
        at_ms: i64,
        who: &zdn_transport::Identity,
        action: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        self.run(async |pool: &Pool| {
            pool.get()
                .await?
                .execute(
                    "INSERT INTO audit (at, participant, name, role, action, detail) VALUES ($1, $2, $3, $4, $5, $6)",
                    &[&at_ms, &who.participant, &who.name, &who.role.as_str(), &action, &detail],
                )
                .await?;
            Ok(())
        })
    }

    fn mark_false_positive(
        &self,
        indicator: &str,
        who: &zdn_transport::Identity,
        reason: &str,
        now_ms: i64,
    ) -> Result<Vec<v1::CorrelationEvent>, StoreError> {
        self.run(async |pool: &Pool| {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            // Serialised with every ingest: the indicator's campaigns are known only inside.
            stripes::lock_all_stripes(&tx).await?;
            tx.execute(
                "INSERT INTO false_positives (indicator, marked_at, participant, name, reason)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (indicator) DO UPDATE SET marked_at = excluded.marked_at,
                   participant = excluded.participant, name = excluded.name, reason = excluded.reason",
                &[&indicator, &now_ms, &who.participant, &who.name, &reason],
            )
            .await?;
            let events = incidents::withdraw(&tx, &self.rule, indicator, now_ms).await?;
            events::notify(&tx, &events).await?;
            tx.commit().await?;
            Ok(events)
        })
    }

    fn close_quiet(&self, now_ms: i64, limit: u32) -> Result<Vec<v1::CorrelationEvent>, StoreError> {
        self.run(async |pool: &Pool| {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            stripes::lock_all_stripes(&tx).await?;
            let events = incidents::close_quiet(&tx, &self.rule, now_ms, limit).await?;
            events::notify(&tx, &events).await?;
            tx.commit().await?;
            Ok(events)
        })
    }

    fn distribute_events(&self, to: broadcast::Sender<v1::CorrelationEvent>) -> Result<bool, StoreError> {
        let (ready, listening) = tokio::sync::oneshot::channel();
        let runtime = self.runtime.as_ref().expect("the runtime lives until drop");
        runtime.spawn(events::listen(self.url.clone(), to, Some(ready)));
        // Listening before the first batch arrives, so no event is missed.
        runtime
            .block_on(tokio::time::timeout(std::time::Duration::from_secs(10), listening))
            .map_err(|_| {
                StoreError::Runtime("the correlation event listener did not start within 10 s".into())
            })?
            .map_err(|_| StoreError::Runtime("the correlation event listener failed to start".into()))?;
        Ok(true)
    }

    fn top_indicators(&self, since_ms: i64, limit: u32) -> Result<Vec<v1::TopIndicator>, StoreError> {
        let limit = i64::from(limit);
        self.run(async |pool: &Pool| {
            let rows = pool.get().await?.query(&top_indicators_sql("$1", "$2"), &[&since_ms, &limit]).await?;
            Ok(rows
                .iter()
                .map(|r| v1::TopIndicator {
                    indicator: r.get(0),
                    kind: kind_wire(r.get(1)),
                    participant_count: r.get::<_, i64>(2).max(0) as u32,
                    sightings: r.get::<_, i64>(3).max(0) as u64,
                    last_seen_unix_ms: r.get(4),
                    campaign: r.get(5),
                })
                .collect())
        })
    }

    fn suspect_hosts(
        &self,
        participant: Option<&str>,
        limit: u32,
    ) -> Result<Vec<v1::SuspectHost>, StoreError> {
        self.run(async |pool: &Pool| campaign::suspect_hosts(&pool.get().await?, participant, limit).await)
    }

    fn false_positives(&self) -> Result<Vec<String>, StoreError> {
        self.run(async |pool: &Pool| {
            let rows = pool
                .get()
                .await?
                .query("SELECT indicator FROM false_positives ORDER BY indicator", &[])
                .await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn purge(&self, cutoffs: &Cutoffs) -> Result<Purged, StoreError> {
        self.run(async |pool: &Pool| {
            let client = pool.get().await?;
            let mut purged = Purged::default();
            for class in &PURGE_CLASSES {
                let Some(cutoff) = (class.cutoff)(cutoffs) else { continue };
                let sql = class.statement(class.postgres_key, "$1");
                loop {
                    let deleted = client.execute(&sql, &[&cutoff]).await?;
                    *(class.counts_as)(&mut purged) += deleted;
                    if deleted < PURGE_BATCH as u64 {
                        break;
                    }
                }
            }
            if purged != Purged::default() {
                privacy::vacuum(&client).await?;
            }
            Ok(purged)
        })
    }

    fn erase(&self, participant: &str, host: Option<&str>) -> Result<Erased, StoreError> {
        let min = self.rule.min_participants;
        self.run(async |pool: &Pool| {
            let mut client = pool.get().await?;
            let erased = privacy::erase(&mut client, min, participant, host).await?;
            privacy::vacuum(&client).await?;
            Ok(erased)
        })
    }

    fn timelines_of(&self, participant: &str) -> Result<Vec<(String, v1::ParticipantTimeline)>, StoreError> {
        self.run(async |pool: &Pool| {
            let rows = pool
                .get()
                .await?
                .query(
                    "SELECT indicator, first_seen, last_seen, sightings, vias FROM indicator_participants
                     WHERE participant = $1 ORDER BY indicator",
                    &[&participant],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|r| {
                    let timeline = v1::ParticipantTimeline {
                        participant: participant.to_owned(),
                        first_seen_unix_ms: r.get(1),
                        last_seen_unix_ms: r.get(2),
                        sightings: r.get::<_, i64>(3).max(0) as u64,
                        vias: vias_wire(r.get(4)),
                    };
                    (r.get(0), timeline)
                })
                .collect())
        })
    }

    fn audit_of(&self, participant: &str) -> Result<Vec<v1::AuditEntry>, StoreError> {
        self.run(async |pool: &Pool| {
            let rows = pool
                .get()
                .await?
                .query(
                    "SELECT at, participant, name, role, action, detail FROM audit WHERE participant = $1
                     ORDER BY at, seq",
                    &[&participant],
                )
                .await?;
            Ok(rows.iter().map(audit_row).collect())
        })
    }

    fn audit_log(&self, since_ms: i64, limit: u32) -> Result<Vec<v1::AuditEntry>, StoreError> {
        let limit = i64::from(limit);
        self.run(async |pool: &Pool| {
            let rows = pool
                .get()
                .await?
                .query(
                    "SELECT at, participant, name, role, action, detail FROM audit WHERE at >= $1
                     ORDER BY at DESC, seq DESC LIMIT $2",
                    &[&since_ms, &limit],
                )
                .await?;
            Ok(rows.iter().map(audit_row).collect())
        })
    }

    fn put_console_token(&self, token: &v1::ConsoleToken, hash: &str) -> Result<(), StoreError> {
        self.run(async |pool: &Pool| tokens::put(pool, token, hash).await)
    }

    fn console_token(&self, hash: &str) -> Result<Option<v1::ConsoleToken>, StoreError> {
        self.run(async |pool: &Pool| tokens::by_hash(pool, hash).await)
    }

    fn revoke_console_token(&self, id: &str, now_ms: i64) -> Result<u32, StoreError> {
        self.run(async |pool: &Pool| tokens::revoke(pool, id, now_ms).await)
    }

    fn console_tokens(&self) -> Result<Vec<v1::ConsoleToken>, StoreError> {
        self.run(async |pool: &Pool| tokens::all(pool).await)
    }
}

fn audit_row(r: &Row) -> v1::AuditEntry {
    v1::AuditEntry {
        at_unix_ms: r.get(0),
        participant: r.get(1),
        name: r.get(2),
        role: r.get(3),
        action: r.get(4),
        detail: r.get(5),
    }
}

/// A subject's latest wave that ever opened, with its members if it is the current wave.
async fn detail(
    client: &deadpool_postgres::Client,
    scope: Scope,
    subject: &str,
) -> Result<Option<v1::Correlation>, StoreError> {
    let Some(latest) = incidents::latest(&***client, scope, subject).await? else { return Ok(None) };
    if !latest.incident.visible() {
        let earlier = client
            .query_opt(
                &format!(
                    "SELECT {INCIDENT_COLUMNS} FROM incidents
                     WHERE scope = $1 AND subject = $2 AND opened > 0 ORDER BY wave DESC LIMIT 1"
                ),
                &[&scope.as_str(), &subject],
            )
            .await?;
        return Ok(earlier.as_ref().map(|r| incidents::incident_row(r).into_wire()));
    }
    let opened = latest.incident.opened;
    let members = incidents::members(&***client, scope, subject).await?;
    let mut wire: v1::Correlation = IncidentRow::into_wire(latest);
    wire.members = members.iter().map(|m| member_wire(m, opened)).collect();
    Ok(Some(wire))
}
