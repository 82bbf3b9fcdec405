//! The embedded engine: SQLite in WAL mode, one writer and one reader connection.
//!
//! `synchronous = FULL` makes a commit durable before [`Store::ingest`] returns. One process
//! owns the file; the writer mutex serialises batches, so the correlation rule always reads
//! the aggregate its own transaction just wrote.

use super::incidents::{INCIDENT_COLUMNS, IncidentRow, Scope, member_wire};
use super::{
    AGENT_COLUMNS, AgentRow, CorrelationFilter, Cutoffs, Erased, Ingested, NewSighting, PURGE_BATCH,
    PURGE_CLASSES, Purged, SIGHTING_COLUMNS, SightingFilter, SightingPage, SightingRow, Store, StoreError,
    kind_wire, next_token, top_indicators_sql, vias_wire,
};
mod campaign;
mod incidents;
mod ingest;
mod migrations;
mod privacy;
mod tokens;

use crate::correlation::CorrelationRule;
use migrations::migrate;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zdn_indicators::Kind;
use zdn_proto::v1;

pub struct SqliteStore {
    writer: Mutex<Connection>,
    /// The false positives, as the writer's transactions left them (one process owns the
    /// file, so this copy is exact): ingest looks them up here, not with a query per indicator.
    withdrawn: Mutex<HashSet<String>>,
    reader: Mutex<Connection>,
    rule: CorrelationRule,
    /// Tells the checkpoint thread to end (see [`checkpoints`]).
    stop_checkpoints: Arc<AtomicBool>,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.stop_checkpoints.store(true, Ordering::Relaxed);
    }
}

/// How often the checkpoint thread copies the WAL into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Copies committed WAL frames into the database file from a thread of its own, so a batch's
/// commit never pays for a checkpoint (SQLite would otherwise run one inside the commit that
/// crosses `wal_autocheckpoint`). PASSIVE checkpoints never block the writer or readers.
fn checkpoints(conn: Connection, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(CHECKPOINT_EVERY);
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "WAL checkpoint failed; retrying");
        }
    }
}

impl SqliteStore {
    pub fn open(path: &Path, rule: CorrelationRule) -> Result<SqliteStore, StoreError> {
        let open = |p: &Path| {
            let conn = Connection::open(p)
                .map_err(|source| StoreError::Open { path: p.display().to_string(), source })?;
            conn.busy_timeout(std::time::Duration::from_secs(10))?;
            // Room for every statement of ingest and the queries (the default is 16).
            conn.set_prepared_statement_cache_capacity(64);
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            conn.pragma_update(None, "foreign_keys", "ON")?;
            // Deleted rows are overwritten with zeros, freed pages too: an erased or expired
            // sighting leaves no readable copy in the file (with `scrub`, none in the WAL).
            conn.pragma_update(None, "secure_delete", "ON")?;
            // After a checkpoint the WAL is truncated back to 64 MiB: a WAL that grew while the
            // disk was full gives the space back instead of keeping it.
            conn.pragma_update(None, "journal_size_limit", 64i64 << 20)?;
            // 64 MiB of page cache per connection (the default is 2 MiB): the indexes' hot
            // pages stay in memory instead of being read again for every batch.
            conn.pragma_update(None, "cache_size", -65_536)?;
            Ok::<_, StoreError>(conn)
        };
        let mut writer = open(path)?;
        migrate(&mut writer)?;
        // Checkpoints run on their own thread; this is only the backstop should it fall
        // behind (64 MiB of WAL).
        writer.pragma_update(None, "wal_autocheckpoint", 16_384)?;
        let reader = open(path)?;
        let stop_checkpoints = Arc::new(AtomicBool::new(false));
        let checkpointer = open(path)?;
        let stop = stop_checkpoints.clone();
        std::thread::Builder::new()
            .name("zdn-checkpoint".into())
            .spawn(move || checkpoints(checkpointer, stop))
            .map_err(|e| StoreError::Runtime(e.to_string()))?;
        let withdrawn: HashSet<String> = writer
            .prepare("SELECT indicator FROM false_positives")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(SqliteStore {
            writer: Mutex::new(writer),
            withdrawn: Mutex::new(withdrawn),
            reader: Mutex::new(reader),
            rule,
            stop_checkpoints,
        })
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn reader(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.reader.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Deletes what retention says is too old, class by class, in batches.
    fn purge_classes(&self, cutoffs: &Cutoffs) -> Result<Purged, StoreError> {
        let mut purged = Purged::default();
        for class in &PURGE_CLASSES {
            let Some(cutoff) = (class.cutoff)(cutoffs) else { continue };
            let sql = class.statement(class.sqlite_key, "?1");
            loop {
                // The writer is taken per batch, so ingest runs between batches.
                let deleted = self.writer().prepare_cached(&sql)?.execute([cutoff])? as u64;
                *(class.counts_as)(&mut purged) += deleted;
                if deleted < PURGE_BATCH as u64 {
                    break;
                }
            }
        }
        Ok(purged)
    }

    /// After an erasure or a purge: the WAL, which still holds the deleted rows' pages, is
    /// copied into the database (where `secure_delete` zeroed them) and truncated to nothing.
    /// A checkpoint waits for readers on older snapshots; should they hold it off, the WAL is
    /// overwritten in the normal course, and the next scrub tries again.
    fn scrub(&self) {
        let conn = self.writer();
        for _ in 0..SCRUB_ATTEMPTS {
            match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0)) {
                Ok(0) => return,
                Ok(_busy) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => {
                    return tracing::warn!(error = %e, "the WAL could not be truncated after a deletion");
                }
            }
        }
        tracing::warn!("readers held the WAL: deleted rows stay in it until it is next overwritten");
    }
}

/// Checkpoint attempts of a scrub (50 ms apart).
const SCRUB_ATTEMPTS: usize = 40;

impl Store for SqliteStore {
    fn ingest(
        &self,
        participant: &str,
        agent: &str,
        batch: &[NewSighting<'_>],
        now_ms: i64,
    ) -> Result<Ingested, StoreError> {
        let mut conn = self.writer();
        let withdrawn = self.withdrawn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction()?;
        let out = ingest::ingest(&tx, &self.rule, &withdrawn, participant, agent, batch, now_ms)?;
        tx.commit()?;
        Ok(out)
    }

    fn correlations(&self, filter: &CorrelationFilter) -> Result<Vec<v1::Correlation>, StoreError> {
        let conn = self.reader();
        let since = filter.since_ms.unwrap_or(i64::MIN);
        let (scope, kind) = match filter.campaigns {
            true => (Scope::Campaign, None),
            false => (Scope::Indicator, filter.kind.map(Kind::as_str)),
        };
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents
             WHERE scope = ?1 AND updated >= ?2 AND opened > 0 AND participant_count >= ?3
               AND (?4 IS NULL OR kind = ?4) AND (?5 IS NULL OR campaign = ?5)
             ORDER BY updated DESC, subject, wave DESC LIMIT ?6"
        ))?;
        let rows = stmt.query_map(
            params![scope.as_str(), since, filter.min_participants, kind, filter.campaign, filter.limit],
            incidents::incident_row,
        )?;
        Ok(rows.map(|r| r.map(IncidentRow::into_wire)).collect::<Result<_, _>>()?)
    }

    fn sightings(&self, f: &SightingFilter<'_>) -> Result<SightingPage, StoreError> {
        use rusqlite::types::Value;
        // Only the filters in use appear in the query: SQLite cannot use an index behind
        // `?1 IS NULL OR indicator = ?1`, and a page of one indicator must not scan them all.
        let filters = [
            ("indicator = ", f.indicator.map(|v| Value::Text(v.to_owned()))),
            ("participant = ", f.participant.map(|v| Value::Text(v.to_owned()))),
            ("last_seen >= ", f.since_ms.map(Value::Integer)),
            ("first_seen <= ", f.until_ms.map(Value::Integer)),
            ("rowid < ", f.before_row.map(Value::Integer)),
        ];
        let mut clauses = Vec::new();
        let mut values = Vec::new();
        for (condition, value) in filters {
            if let Some(value) = value {
                values.push(value);
                clauses.push(format!("{condition}?{}", values.len()));
            }
        }
        values.push(Value::Integer(i64::from(f.limit)));
        let filter =
            if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT rowid, {SIGHTING_COLUMNS} FROM sightings {filter} ORDER BY rowid DESC LIMIT ?{}",
            values.len()
        ))?;
        let rows = stmt.query_map(rusqlite::params_from_iter(values), |r| {
            Ok(SightingRow {
                row: r.get(0)?,
                id: r.get(1)?,
                participant: r.get(2)?,
                agent: r.get(3)?,
                indicator: r.get(4)?,
                kind: r.get(5)?,
                via: r.get(6)?,
                observed: r.get(7)?,
                indicator_id: r.get(8)?,
                first_seen: r.get(9)?,
                last_seen: r.get(10)?,
                count: r.get(11)?,
                src: r.get(12)?,
                dst_ip: r.get(13)?,
                dst_port: r.get(14)?,
                proto: r.get(15)?,
                received: r.get(16)?,
                resolved_name: r.get(17)?,
                retro: r.get(18)?,
            }
            .into_wire())
        })?;
        let rows: Vec<(i64, v1::StoredSighting)> = rows.collect::<Result<_, _>>()?;
        let next = next_token(&rows, f.limit);
        Ok((rows.into_iter().map(|r| r.1).collect(), next))
    }

    fn indicator(&self, indicator: &str) -> Result<Option<v1::IndicatorDetail>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT participant, kind, first_seen, last_seen, sightings, vias FROM indicator_participants
             WHERE indicator = ?1 ORDER BY first_seen, participant",
        )?;
        let mut kind = 0;
        let participants: Vec<v1::ParticipantTimeline> = stmt
            .query_map([indicator], |r| {
                kind = kind_wire(&r.get::<_, String>(1)?);
                Ok(v1::ParticipantTimeline {
                    participant: r.get(0)?,
                    first_seen_unix_ms: r.get(2)?,
                    last_seen_unix_ms: r.get(3)?,
                    sightings: r.get::<_, i64>(4)?.max(0) as u64,
                    vias: vias_wire(&r.get::<_, String>(5)?),
                })
            })?
            .collect::<Result<_, _>>()?;
        if participants.is_empty() {
            return Ok(None);
        }
        let correlation = detail(&conn, Scope::Indicator, indicator)?;
        Ok(Some(v1::IndicatorDetail {
            indicator: indicator.to_owned(),
            kind,
            sightings: participants.iter().map(|p| p.sightings).sum(),
            participants,
            correlation,
        }))
    }

    fn record_heartbeat(
        &self,
        participant: &str,
        agent: &str,
        beat: &v1::HeartbeatRequest,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let a = AgentRow::from_heartbeat(participant, agent, beat, now_ms);
        let [c0, c1, c2, c3, c4] = a.counters;
        let [h0, h1, h2, h3, h4] = a.host;
        self.writer().execute(
            &format!(
                "INSERT OR REPLACE INTO agents ({AGENT_COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
            ),
            params![
                a.participant,
                a.agent,
                a.last_heartbeat,
                a.agent_version,
                c0,
                c1,
                c2,
                c3,
                c4,
                a.blind_spots,
                a.cpu_percent,
                h0,
                h1,
                h2,
                h3,
                h4,
                a.capture_workers
            ],
        )?;
        Ok(())
    }

    fn fleet(&self, now_ms: i64, stale_ms: i64) -> Result<Vec<v1::AgentStatus>, StoreError> {
        let conn = self.reader();
        let mut stmt =
            conn.prepare_cached(&format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY participant, agent"))?;
        let rows = stmt.query_map([], |r| {
            Ok(AgentRow {
                participant: r.get(0)?,
                agent: r.get(1)?,
                last_heartbeat: r.get(2)?,
                agent_version: r.get(3)?,
                counters: [r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?],
                blind_spots: r.get(9)?,
                cpu_percent: r.get(10)?,
                host: [r.get(11)?, r.get(12)?, r.get(13)?, r.get(14)?, r.get(15)?],
                capture_workers: r.get(16)?,
            }
            .into_wire(now_ms, stale_ms))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn audit(
        &self,
        at_ms: i64,
        who: &zdn_transport::Identity,
        action: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        self.writer()
            .prepare_cached(
                "INSERT INTO audit (at, participant, name, role, action, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![at_ms, who.participant, who.name, who.role.as_str(), action, detail])?;
        Ok(())
    }

    fn mark_false_positive(
        &self,
        indicator: &str,
        who: &zdn_transport::Identity,
        reason: &str,
        now_ms: i64,
    ) -> Result<Vec<v1::CorrelationEvent>, StoreError> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO false_positives (indicator, marked_at, participant, name, reason) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (indicator) DO UPDATE SET marked_at = excluded.marked_at, participant = excluded.participant,
               name = excluded.name, reason = excluded.reason",
            params![indicator, now_ms, who.participant, who.name, reason],
        )?;
        let events = incidents::withdraw(&tx, &self.rule, indicator, now_ms)?;
        tx.commit()?;
        self.withdrawn.lock().unwrap_or_else(|p| p.into_inner()).insert(indicator.to_owned());
        Ok(events)
    }

    fn close_quiet(&self, now_ms: i64, limit: u32) -> Result<Vec<v1::CorrelationEvent>, StoreError> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        let events = incidents::close_quiet(&tx, &self.rule, now_ms, limit)?;
        tx.commit()?;
        Ok(events)
    }

    fn top_indicators(&self, since_ms: i64, limit: u32) -> Result<Vec<v1::TopIndicator>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&top_indicators_sql("?1", "?2"))?;
        let rows = stmt.query_map(params![since_ms, limit], |r| {
            Ok(v1::TopIndicator {
                indicator: r.get(0)?,
                kind: kind_wire(&r.get::<_, String>(1)?),
                participant_count: r.get(2)?,
                sightings: r.get::<_, i64>(3)?.max(0) as u64,
                last_seen_unix_ms: r.get(4)?,
                campaign: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn suspect_hosts(
        &self,
        participant: Option<&str>,
        limit: u32,
    ) -> Result<Vec<v1::SuspectHost>, StoreError> {
        campaign::suspect_hosts(&self.reader(), participant, limit)
    }

    fn false_positives(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached("SELECT indicator FROM false_positives ORDER BY indicator")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn purge(&self, cutoffs: &Cutoffs) -> Result<Purged, StoreError> {
        let purged = self.purge_classes(cutoffs)?;
        if purged != Purged::default() {
            self.scrub();
        }
        Ok(purged)
    }

    fn erase(&self, participant: &str, host: Option<&str>) -> Result<Erased, StoreError> {
        let erased = privacy::erase(&mut self.writer(), self.rule.min_participants, participant, host)?;
        self.scrub();
        Ok(erased)
    }

    fn timelines_of(&self, participant: &str) -> Result<Vec<(String, v1::ParticipantTimeline)>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT indicator, first_seen, last_seen, sightings, vias FROM indicator_participants
             WHERE participant = ?1 ORDER BY indicator",
        )?;
        let rows = stmt.query_map([participant], |r| {
            Ok((
                r.get(0)?,
                v1::ParticipantTimeline {
                    participant: participant.to_owned(),
                    first_seen_unix_ms: r.get(1)?,
                    last_seen_unix_ms: r.get(2)?,
                    sightings: r.get::<_, i64>(3)?.max(0) as u64,
                    vias: vias_wire(&r.get::<_, String>(4)?),
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn audit_of(&self, participant: &str) -> Result<Vec<v1::AuditEntry>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT at, participant, name, role, action, detail FROM audit WHERE participant = ?1 ORDER BY at, rowid",
        )?;
        let rows = stmt.query_map([participant], audit_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn audit_log(&self, since_ms: i64, limit: u32) -> Result<Vec<v1::AuditEntry>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT at, participant, name, role, action, detail FROM audit WHERE at >= ?1
             ORDER BY at DESC, rowid DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![since_ms, limit], audit_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn put_console_token(&self, token: &v1::ConsoleToken, hash: &str) -> Result<(), StoreError> {
        tokens::put(&self.writer(), token, hash)
    }

    fn console_token(&self, hash: &str) -> Result<Option<v1::ConsoleToken>, StoreError> {
        tokens::by_hash(&self.reader(), hash)
    }

    fn revoke_console_token(&self, id: &str, now_ms: i64) -> Result<u32, StoreError> {
        tokens::revoke(&self.writer(), id, now_ms)
    }

    fn console_tokens(&self) -> Result<Vec<v1::ConsoleToken>, StoreError> {
        tokens::all(&self.reader())
    }
}

fn audit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<v1::AuditEntry> {
    Ok(v1::AuditEntry {
        at_unix_ms: r.get(0)?,
        participant: r.get(1)?,
        name: r.get(2)?,
        role: r.get(3)?,
        action: r.get(4)?,
        detail: r.get(5)?,
    })
}

/// A subject's latest wave that ever opened, with its members if it is the current wave.
fn detail(conn: &Connection, scope: Scope, subject: &str) -> Result<Option<v1::Correlation>, StoreError> {
    let Some(latest) = incidents::latest(conn, scope, subject)? else { return Ok(None) };
    if !latest.incident.visible() {
        let earlier = conn
            .prepare_cached(&format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents
                 WHERE scope = ?1 AND subject = ?2 AND opened > 0 ORDER BY wave DESC LIMIT 1"
            ))?
            .query_row(params![scope.as_str(), subject], incidents::incident_row)
            .optional()?;
        return Ok(earlier.map(IncidentRow::into_wire));
    }
    let opened = latest.incident.opened;
    let members = incidents::members(conn, scope, subject)?;
    let mut wire = latest.into_wire();
    wire.members = members.iter().map(|m| member_wire(m, opened)).collect();
    Ok(Some(wire))
}
