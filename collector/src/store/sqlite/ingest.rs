//! Ingest in SQLite: a batch's sightings, the aggregates they change, and the incidents of
//! every subject the batch touched — all in the batch's own transaction, which the caller
//! commits.

use super::incidents;
use crate::correlation::CorrelationRule;
use crate::store::campaign::CampaignBatch;
use crate::store::incidents::{BatchTouches, step, step_events};
use crate::store::{Ingested, NewSighting, SIGHTING_COLUMNS, StoreError, Touched, clamp};
use rusqlite::params;
use std::collections::{BTreeMap, HashSet};

/// Writes a batch's sightings, updates the aggregates and the incidents of every subject the
/// batch touched, all in `tx` (committed by the caller).
pub(super) fn ingest(
    tx: &rusqlite::Transaction<'_>,
    rule: &CorrelationRule,
    withdrawn: &HashSet<String>,
    participant: &str,
    agent: &str,
    batch: &[NewSighting<'_>],
    now_ms: i64,
) -> Result<Ingested, StoreError> {
    let mut out = Ingested::default();
    let mut touched: BTreeMap<&str, Touched> = BTreeMap::new();
    let mut touches = BatchTouches::default();
    let mut hosts = CampaignBatch::default();
    {
        let mut insert = tx.prepare_cached(&format!(
            "INSERT OR IGNORE INTO sightings ({SIGHTING_COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
        ))?;
        for s in batch {
            let w = s.wire;
            let count = clamp(w.count);
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
                w.resolved_name,
                w.retro
            ])?;
            if inserted == 0 {
                out.duplicates += 1;
                continue;
            }
            out.stored += 1;
            hosts.add(s);
            touches.add(rule, s, now_ms);
            touched.entry(w.indicator.as_str()).or_insert_with(|| Touched::new(s.kind)).add(s.via, w, count);
        }
    }
    upsert_aggregates(tx, participant, &touched)?;
    touches.without(withdrawn);
    for (&key, touch) in &touches.subjects {
        let stored = incidents::stored(tx, rule, key, touch, participant, now_ms)?;
        let Some(step) = step(rule, participant, touch, stored, now_ms) else { continue };
        incidents::write_step(tx, key, touch, participant, &step)?;
        out.changes.extend(step_events(key, touch, &step));
    }
    (out.clamped_future, out.too_old_to_correlate) = (touches.clamped_future, touches.too_old);
    super::campaign::suspect_hosts_ingest(tx, participant, &hosts)?;
    Ok(out)
}

/// One upsert per indicator and mechanism, not per sighting.
fn upsert_aggregates(
    tx: &rusqlite::Transaction<'_>,
    participant: &str,
    touched: &BTreeMap<&str, Touched>,
) -> Result<(), StoreError> {
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
    for (indicator, t) in touched {
        for &(via, first, last, count) in &t.by_via {
            aggregate.execute(params![
                indicator,
                participant,
                t.kind.as_str(),
                first,
                last,
                count,
                via.as_str()
            ])?;
        }
    }
    Ok(())
}
