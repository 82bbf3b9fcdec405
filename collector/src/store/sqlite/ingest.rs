//! Ingest in SQLite: a batch's sightings, the aggregates they change, and the correlation rule
//! over every indicator the batch touched — all in the batch's own transaction, which the
//! caller commits.

use super::correlation_row;
use crate::correlation::CorrelationRule;
use crate::store::campaign::CampaignBatch;
use crate::store::{
    CORRELATION_COLUMNS, Ingested, NewSighting, ParticipantWindow, SIGHTING_COLUMNS, StoreError, Touched,
    clamp, evaluate,
};
use rusqlite::{OptionalExtension, params};
use std::collections::BTreeMap;
use zdn_proto::v1;

/// Writes a batch's sightings, updates the aggregates and applies the correlation rule to
/// every indicator the batch touched, all in `tx` (committed by the caller).
pub(super) fn ingest(
    tx: &rusqlite::Transaction<'_>,
    rule: &CorrelationRule,
    participant: &str,
    agent: &str,
    batch: &[NewSighting<'_>],
    now_ms: i64,
) -> Result<Ingested, StoreError> {
    let mut out = Ingested::default();
    let mut touched: BTreeMap<&str, Touched> = BTreeMap::new();
    let mut campaigns = CampaignBatch::default();
    {
        let mut insert = tx.prepare_cached(&format!(
            "INSERT OR IGNORE INTO sightings ({SIGHTING_COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
        ))?;
        let mut previous_seen = tx.prepare_cached(
            "SELECT last_seen FROM indicator_participants WHERE indicator = ?1 AND participant = ?2",
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
                w.resolved_name
            ])?;
            if inserted == 0 {
                out.duplicates += 1;
                continue;
            }
            out.stored += 1;
            campaigns.add(s);
            touched
                .entry(w.indicator.as_str())
                .or_insert_with(|| Touched::new(s.kind, s.campaign))
                .add(s.via, w, count);
        }
        // One previous-state read and one upsert per indicator and mechanism, not per sighting.
        for (indicator, t) in &mut touched {
            let previous: Option<i64> =
                previous_seen.query_row(params![indicator, participant], |r| r.get(0)).optional()?;
            t.set_previous(previous);
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
    }
    for (indicator, batch) in touched {
        if let Some(event) = correlate(tx, rule, indicator, &batch, now_ms)? {
            out.changes.push(event);
        }
    }
    out.changes.extend(super::campaign::ingest(tx, rule, participant, &campaigns, now_ms)?);
    Ok(out)
}

/// Applies the rule to one indicator a batch touched; returns the event if it opened or
/// escalated.
fn correlate(
    tx: &rusqlite::Transaction<'_>,
    rule: &CorrelationRule,
    indicator: &str,
    batch: &Touched,
    now_ms: i64,
) -> Result<Option<v1::CorrelationEvent>, StoreError> {
    // A false positive stays closed, whatever arrives later from agents with an older set.
    let withdrawn: bool =
        tx.prepare_cached("SELECT 1 FROM false_positives WHERE indicator = ?1")?.exists([indicator])?;
    if withdrawn {
        return Ok(None);
    }
    let open: Option<(u32, i64)> = tx
        .prepare_cached("SELECT participant_count, last_seen FROM correlations WHERE indicator = ?1")?
        .query_row([indicator], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((_, latest_before)) = open
        && batch.stayed_within(latest_before, rule.window_ms)
    {
        tx.prepare_cached(
            "UPDATE correlations SET first_seen = min(first_seen, ?2), last_seen = max(last_seen, ?3),
               sightings = sightings + ?4 WHERE indicator = ?1",
        )?
        .execute(params![indicator, batch.first_seen, batch.last_seen, batch.sightings])?;
        return Ok(None);
    }
    let kind = batch.kind;
    // Every statement here runs once per touched indicator: all are cached, prepared once.
    let latest: i64 = tx
        .prepare_cached("SELECT max(last_seen) FROM indicator_participants WHERE indicator = ?1")?
        .query_row([indicator], |r| r.get(0))?;
    let mut stmt = tx.prepare_cached(
        "SELECT participant, first_seen, sightings FROM indicator_participants
         WHERE indicator = ?1 AND last_seen >= ?2 ORDER BY first_seen, participant",
    )?;
    let rows: Vec<ParticipantWindow> = stmt
        .query_map(params![indicator, latest.saturating_sub(rule.window_ms)], |r| {
            Ok(ParticipantWindow { participant: r.get(0)?, first_seen: r.get(1)?, sightings: r.get(2)? })
        })?
        .collect::<Result<_, _>>()?;
    let before = open.map(|(count, _)| count);
    let (change, Some(u)) = evaluate(rule, &rows, latest, before) else { return Ok(None) };
    // The participant list only ever grows (`growing_correlation_update`).
    tx.prepare_cached(concat!(
        "INSERT INTO correlations (indicator, kind, participants, participant_count, first_seen, last_seen,
                                   sightings, opened, updated, campaign)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9)
         ON CONFLICT (indicator) DO UPDATE SET campaign = excluded.campaign, ",
        growing_correlation_update!()
    ))?
    .execute(params![
        indicator,
        kind.as_str(),
        u.participants,
        u.count,
        u.first_seen,
        u.last_seen,
        u.sightings,
        now_ms,
        batch.campaign
    ])?;
    let Some(change) = change else { return Ok(None) };
    let correlation = tx
        .prepare_cached(&format!("{CORRELATION_COLUMNS} WHERE indicator = ?1"))?
        .query_row([indicator], correlation_row)?;
    Ok(Some(v1::CorrelationEvent { change: change as i32, correlation: Some(correlation) }))
}
