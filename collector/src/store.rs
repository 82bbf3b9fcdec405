//! The embedded store: SQLite in WAL mode, one writer and one reader connection.
//!
//! A batch is one transaction: the sightings (`INSERT OR IGNORE` on the agent's sighting id, so
//! retries are stored once), the per-(indicator, participant) aggregate they update, and the
//! correlations that aggregate changes. `synchronous = FULL` makes the commit durable before
//! [`Store::ingest`] returns, which is what lets the service acknowledge the batch.
//!
//! Query results are the wire types of `zdn.v1` (a stored row has exactly one outward form;
//! keeping a second, parallel model would only add mapping code). Role-based redaction
//! happens in the service layer, not here.

use crate::correlation::CorrelationRule;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;
use zdn_indicators::{Kind, Via};
use zdn_proto::v1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database {path}: {source}")]
    Open { path: String, source: rusqlite::Error },
    #[error("database schema version {found} is newer than this collector knows ({known})")]
    TooNew { found: i64, known: i64 },
}

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE sightings (
    id TEXT NOT NULL UNIQUE,
    participant TEXT NOT NULL,
    agent TEXT NOT NULL,
    indicator TEXT NOT NULL,
    kind TEXT NOT NULL,
    via TEXT NOT NULL,
    observed TEXT NOT NULL,
    indicator_id TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    count INTEGER NOT NULL,
    src TEXT NOT NULL,
    dst_ip TEXT NOT NULL,
    dst_port INTEGER NOT NULL,
    proto TEXT NOT NULL,
    received INTEGER NOT NULL
);
CREATE INDEX sightings_by_indicator ON sightings (indicator);
CREATE INDEX sightings_by_participant ON sightings (participant);
CREATE TABLE indicator_participants (
    indicator TEXT NOT NULL,
    participant TEXT NOT NULL,
    kind TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    sightings INTEGER NOT NULL,
    vias TEXT NOT NULL,
    PRIMARY KEY (indicator, participant)
) WITHOUT ROWID;
CREATE TABLE correlations (
    indicator TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    participants TEXT NOT NULL,
    participant_count INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    sightings INTEGER NOT NULL,
    opened INTEGER NOT NULL,
    updated INTEGER NOT NULL
);
CREATE INDEX correlations_by_updated ON correlations (updated);
CREATE TABLE agents (
    participant TEXT NOT NULL,
    agent TEXT NOT NULL,
    last_heartbeat INTEGER NOT NULL,
    agent_version TEXT NOT NULL,
    indicator_version INTEGER NOT NULL,
    indicator_count INTEGER NOT NULL,
    packets_seen INTEGER NOT NULL,
    packets_dropped_kernel INTEGER NOT NULL,
    sightings_sent INTEGER NOT NULL,
    blind_spots TEXT NOT NULL,
    cpu_percent REAL NOT NULL,
    rss_bytes INTEGER NOT NULL,
    PRIMARY KEY (participant, agent)
);
",
    r"
ALTER TABLE sightings ADD COLUMN resolved_name TEXT NOT NULL DEFAULT '';
",
    r"
ALTER TABLE agents ADD COLUMN sightings_queued INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN sightings_held_back INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN spool_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN uptime_seconds INTEGER NOT NULL DEFAULT 0;
",
    r"
CREATE TABLE audit (
    at INTEGER NOT NULL,
    participant TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_by_time ON audit (at);
",
];

/// A sighting that passed validation, as the store takes it.
pub struct NewSighting<'a> {
    pub wire: &'a v1::Sighting,
    pub kind: Kind,
    pub via: Via,
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
    /// Rows with a smaller row id than this (the page token), newest first.
    pub before_row: Option<i64>,
    pub limit: u32,
}

pub struct CorrelationFilter {
    pub since_ms: Option<i64>,
    pub min_participants: u32,
    pub kind: Option<Kind>,
    pub limit: u32,
}

pub struct Store {
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    rule: CorrelationRule,
}

impl Store {
    pub fn open(path: &Path, rule: CorrelationRule) -> Result<Store, StoreError> {
        let open = |p: &Path| {
            let conn = Connection::open(p)
                .map_err(|source| StoreError::Open { path: p.display().to_string(), source })?;
            conn.busy_timeout(std::time::Duration::from_secs(10))?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            conn.pragma_update(None, "foreign_keys", "ON")?;
            Ok::<_, StoreError>(conn)
        };
        let mut writer = open(path)?;
        migrate(&mut writer)?;
        let reader = open(path)?;
        Ok(Store { writer: Mutex::new(writer), reader: Mutex::new(reader), rule })
    }

    /// Stores a batch from `participant`'s `agent` and updates correlations, in one durable
    /// transaction.
    pub fn ingest(
        &self,
        participant: &str,
        agent: &str,
        batch: &[NewSighting<'_>],
        now_ms: i64,
    ) -> Result<Ingested, StoreError> {
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction()?;
        let mut out = Ingested::default();
        let mut touched = BTreeSet::new();
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO sightings (id, participant, agent, indicator, kind, via, observed,
                 indicator_id, first_seen, last_seen, count, src, dst_ip, dst_port, proto, received,
                 resolved_name)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            )?;
            let mut aggregate = tx.prepare_cached(
                "INSERT INTO indicator_participants (indicator, participant, kind, first_seen, last_seen, sightings, vias)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (indicator, participant) DO UPDATE SET
                   first_seen = min(first_seen, excluded.first_seen),
                   last_seen = max(last_seen, excluded.last_seen),
                   sightings = sightings + excluded.sightings,
                   vias = CASE WHEN instr(',' || vias || ',', ',' || excluded.vias || ',') > 0
                          THEN vias ELSE vias || ',' || excluded.vias END",
            )?;
            for s in batch {
                let w = s.wire;
                let count = i64::try_from(w.count).unwrap_or(i64::MAX);
                let inserted = insert.execute(params![
                    w.id,
                    participant,
                    agent,
                    w.indicator,
                    s.kind.as_str(),
                    s.via.as_str(),
                    w.observed,
                    w.indicator_id,
                    w.first_seen_unix_ms,
                    w.last_seen_unix_ms,
                    count,
                    w.src,
                    w.dst_ip,
                    w.dst_port,
                    w.proto,
                    now_ms,
                    w.resolved_name
                ])?;
                if inserted == 0 {
                    out.duplicates += 1;
                    continue;
                }
                out.stored += 1;
                aggregate.execute(params![
                    w.indicator,
                    participant,
                    s.kind.as_str(),
                    w.first_seen_unix_ms,
                    w.last_seen_unix_ms,
                    count,
                    s.via.as_str()
                ])?;
                touched.insert((w.indicator.as_str(), s.kind));
            }
        }
        for (indicator, kind) in touched {
            if let Some(event) = self.correlate(&tx, indicator, kind, now_ms)? {
                out.changes.push(event);
            }
        }
        tx.commit()?;
        Ok(out)
    }

    /// Re-evaluates the rule for one indicator; returns the event if it opened or escalated.
    fn correlate(
        &self,
        tx: &rusqlite::Transaction<'_>,
        indicator: &str,
        kind: Kind,
        now_ms: i64,
    ) -> Result<Option<v1::CorrelationEvent>, StoreError> {
        let latest: i64 = tx.query_row(
            "SELECT max(last_seen) FROM indicator_participants WHERE indicator = ?1",
            [indicator],
            |r| r.get(0),
        )?;
        let window_start = latest.saturating_sub(self.rule.window_ms);
        let mut stmt = tx.prepare_cached(
            "SELECT participant, first_seen, last_seen, sightings FROM indicator_participants
             WHERE indicator = ?1 AND last_seen >= ?2 ORDER BY first_seen, participant",
        )?;
        let rows: Vec<(String, i64, i64, i64)> = stmt
            .query_map(params![indicator, window_start], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<Result<_, _>>()?;
        let count = rows.len() as u32;
        let before: Option<u32> = tx
            .query_row("SELECT participant_count FROM correlations WHERE indicator = ?1", [indicator], |r| {
                r.get(0)
            })
            .optional()?;
        let change = self.rule.change(before, count);
        if before.is_none() && change.is_none() {
            return Ok(None);
        }
        let participants: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        let first_seen = rows.iter().map(|r| r.1).min().unwrap_or(latest);
        let sightings: i64 = rows.iter().map(|r| r.3).sum();
        // An open correlation that did not grow still gets its latest times and counts, but its
        // participant list only ever grows.
        tx.execute(
            "INSERT INTO correlations (indicator, kind, participants, participant_count, first_seen, last_seen,
                                       sightings, opened, updated)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
             ON CONFLICT (indicator) DO UPDATE SET
               participants = CASE WHEN excluded.participant_count > participant_count
                              THEN excluded.participants ELSE participants END,
               participant_count = max(participant_count, excluded.participant_count),
               first_seen = min(first_seen, excluded.first_seen),
               last_seen = max(last_seen, excluded.last_seen),
               sightings = max(sightings, excluded.sightings),
               updated = CASE WHEN excluded.participant_count > participant_count THEN excluded.updated ELSE updated END",
            params![indicator, kind.as_str(), participants.join(","), count, first_seen, latest, sightings, now_ms],
        )?;
        let Some(change) = change else { return Ok(None) };
        let correlation = tx.query_row(
            &format!("{CORRELATION_COLUMNS} WHERE indicator = ?1"),
            [indicator],
            correlation_row,
        )?;
        Ok(Some(v1::CorrelationEvent { change: change as i32, correlation: Some(correlation) }))
    }

    pub fn correlations(&self, filter: &CorrelationFilter) -> Result<Vec<v1::Correlation>, StoreError> {
        let conn = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt = conn.prepare_cached(&format!(
            "{CORRELATION_COLUMNS} WHERE updated >= ?1 AND participant_count >= ?2 AND (?3 IS NULL OR kind = ?3)
             ORDER BY updated DESC, indicator LIMIT ?4"
        ))?;
        let min = filter.min_participants.max(self.rule.min_participants);
        let rows = stmt.query_map(
            params![filter.since_ms.unwrap_or(i64::MIN), min, filter.kind.map(Kind::as_str), filter.limit],
            correlation_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A page of sightings, newest first, and the token of the next page.
    pub fn sightings(
        &self,
        f: &SightingFilter<'_>,
    ) -> Result<(Vec<v1::StoredSighting>, Option<i64>), StoreError> {
        let conn = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt = conn.prepare_cached(
            "SELECT rowid, id, participant, agent, indicator, kind, via, observed, indicator_id, first_seen, last_seen,
                    count, src, dst_ip, dst_port, proto, received, resolved_name
             FROM sightings
             WHERE (?1 IS NULL OR indicator = ?1) AND (?2 IS NULL OR participant = ?2)
               AND (?3 IS NULL OR last_seen >= ?3) AND (?4 IS NULL OR first_seen <= ?4)
               AND (?5 IS NULL OR rowid < ?5)
             ORDER BY rowid DESC LIMIT ?6",
        )?;
        let rows = stmt.query_map(
            params![f.indicator, f.participant, f.since_ms, f.until_ms, f.before_row, f.limit],
            |r| {
                let kind: String = r.get(5)?;
                let via: String = r.get(6)?;
                let count: i64 = r.get(11)?;
                let sighting = v1::Sighting {
                    id: r.get(1)?,
                    indicator: r.get(4)?,
                    kind: Kind::parse(&kind).map_or(0, |k| v1::IndicatorKind::from(k) as i32),
                    via: Via::parse(&via).map_or(0, |v| v1::Via::from(v) as i32),
                    observed: r.get(7)?,
                    indicator_id: r.get(8)?,
                    first_seen_unix_ms: r.get(9)?,
                    last_seen_unix_ms: r.get(10)?,
                    count: count.max(0) as u64,
                    src: r.get(12)?,
                    dst_ip: r.get(13)?,
                    dst_port: r.get(14)?,
                    proto: r.get(15)?,
                    resolved_name: r.get(17)?,
                };
                let stored = v1::StoredSighting {
                    sighting: Some(sighting),
                    participant: r.get(2)?,
                    agent: r.get(3)?,
                    received_unix_ms: r.get(16)?,
                };
                Ok((r.get::<_, i64>(0)?, stored))
            },
        )?;
        let rows: Vec<(i64, v1::StoredSighting)> = rows.collect::<Result<_, _>>()?;
        let next = (rows.len() as u32 == f.limit).then(|| rows.last().map(|r| r.0)).flatten();
        Ok((rows.into_iter().map(|r| r.1).collect(), next))
    }

    /// Per-participant timeline of one indicator, and its correlation if one is open.
    pub fn indicator(&self, indicator: &str) -> Result<Option<v1::IndicatorDetail>, StoreError> {
        let conn = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt = conn.prepare_cached(
            "SELECT participant, kind, first_seen, last_seen, sightings, vias FROM indicator_participants
             WHERE indicator = ?1 ORDER BY first_seen, participant",
        )?;
        let mut kind = None;
        let participants: Vec<v1::ParticipantTimeline> = stmt
            .query_map([indicator], |r| {
                kind = Kind::parse(&r.get::<_, String>(1)?);
                let vias: String = r.get(5)?;
                Ok(v1::ParticipantTimeline {
                    participant: r.get(0)?,
                    first_seen_unix_ms: r.get(2)?,
                    last_seen_unix_ms: r.get(3)?,
                    sightings: r.get::<_, i64>(4)?.max(0) as u64,
                    vias: vias.split(',').filter_map(Via::parse).map(|v| v1::Via::from(v) as i32).collect(),
                })
            })?
            .collect::<Result<_, _>>()?;
        if participants.is_empty() {
            return Ok(None);
        }
        let correlation = conn
            .query_row(&format!("{CORRELATION_COLUMNS} WHERE indicator = ?1"), [indicator], correlation_row)
            .optional()?;
        Ok(Some(v1::IndicatorDetail {
            indicator: indicator.to_owned(),
            kind: kind.map_or(0, |k| v1::IndicatorKind::from(k) as i32),
            sightings: participants.iter().map(|p| p.sightings).sum(),
            participants,
            correlation,
        }))
    }

    pub fn record_heartbeat(
        &self,
        participant: &str,
        agent: &str,
        beat: &v1::HeartbeatRequest,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let blind_spots = serde_json::to_string(&beat.blind_spots).unwrap_or_else(|_| "{}".into());
        let conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        conn.execute(
            "INSERT OR REPLACE INTO agents (participant, agent, last_heartbeat, agent_version, indicator_version,
                indicator_count, packets_seen, packets_dropped_kernel, sightings_sent, blind_spots, cpu_percent, rss_bytes,
                sightings_queued, sightings_held_back, spool_bytes, uptime_seconds)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            params![
                participant,
                agent,
                now_ms,
                beat.agent_version,
                clamp(beat.indicator_version),
                clamp(beat.indicator_count),
                clamp(beat.packets_seen),
                clamp(beat.packets_dropped_kernel),
                clamp(beat.sightings_sent),
                blind_spots,
                f64::from(beat.cpu_percent),
                clamp(beat.rss_bytes),
                clamp(beat.sightings_queued),
                clamp(beat.sightings_held_back),
                clamp(beat.spool_bytes),
                clamp(beat.uptime_seconds)
            ],
        )?;
        Ok(())
    }

    /// Records one audited call; the caller answers only if this succeeds.
    pub fn audit(
        &self,
        at_ms: i64,
        who: &zdn_transport::Identity,
        action: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        let conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        conn.prepare_cached(
            "INSERT INTO audit (at, participant, name, role, action, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![at_ms, who.participant, who.name, who.role.as_str(), action, detail])?;
        Ok(())
    }

    /// Audit entries at or after `since_ms`, newest first.
    pub fn audit_log(&self, since_ms: i64, limit: u32) -> Result<Vec<v1::AuditEntry>, StoreError> {
        let conn = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt = conn.prepare_cached(
            "SELECT at, participant, name, role, action, detail FROM audit WHERE at >= ?1
             ORDER BY at DESC, rowid DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![since_ms, limit], |r| {
            Ok(v1::AuditEntry {
                at_unix_ms: r.get(0)?,
                participant: r.get(1)?,
                name: r.get(2)?,
                role: r.get(3)?,
                action: r.get(4)?,
                detail: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every agent that ever sent a heartbeat; `stale` when the last is older than `stale_ms`.
    pub fn fleet(&self, now_ms: i64, stale_ms: i64) -> Result<Vec<v1::AgentStatus>, StoreError> {
        let conn = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt = conn.prepare_cached(
            "SELECT participant, agent, last_heartbeat, agent_version, indicator_version, indicator_count,
                    packets_seen, packets_dropped_kernel, sightings_sent, blind_spots, cpu_percent, rss_bytes,
                    sightings_queued, sightings_held_back, spool_bytes, uptime_seconds
             FROM agents ORDER BY participant, agent",
        )?;
        let rows = stmt.query_map([], |r| {
            let last: i64 = r.get(2)?;
            let blind: String = r.get(9)?;
            Ok(v1::AgentStatus {
                participant: r.get(0)?,
                agent: r.get(1)?,
                last_heartbeat_unix_ms: last,
                stale: now_ms.saturating_sub(last) > stale_ms,
                agent_version: r.get(3)?,
                indicator_version: r.get::<_, i64>(4)? as u64,
                indicator_count: r.get::<_, i64>(5)? as u64,
                packets_seen: r.get::<_, i64>(6)? as u64,
                packets_dropped_kernel: r.get::<_, i64>(7)? as u64,
                sightings_sent: r.get::<_, i64>(8)? as u64,
                blind_spots: serde_json::from_str(&blind).unwrap_or_default(),
                cpu_percent: r.get::<_, f64>(10)? as f32,
                rss_bytes: r.get::<_, i64>(11)? as u64,
                sightings_queued: r.get::<_, i64>(12)? as u64,
                sightings_held_back: r.get::<_, i64>(13)? as u64,
                spool_bytes: r.get::<_, i64>(14)? as u64,
                uptime_seconds: r.get::<_, i64>(15)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

const CORRELATION_COLUMNS: &str =
    "SELECT indicator, kind, participants, participant_count, first_seen, last_seen,
    sightings, opened, updated FROM correlations";

fn correlation_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<v1::Correlation> {
    let kind: String = r.get(1)?;
    let participants: String = r.get(2)?;
    Ok(v1::Correlation {
        indicator: r.get(0)?,
        kind: Kind::parse(&kind).map_or(0, |k| v1::IndicatorKind::from(k) as i32),
        participants: participants.split(',').filter(|p| !p.is_empty()).map(str::to_owned).collect(),
        participant_count: r.get(3)?,
        first_seen_unix_ms: r.get(4)?,
        last_seen_unix_ms: r.get(5)?,
        sightings: r.get::<_, i64>(6)?.max(0) as u64,
        opened_unix_ms: r.get(7)?,
        updated_unix_ms: r.get(8)?,
        includes_caller: false,
    })
}

/// SQLite integers are signed; counters beyond i64::MAX are clamped, not wrapped.
fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::TooNew { found: version, known });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
