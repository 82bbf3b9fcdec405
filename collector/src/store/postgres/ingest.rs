//! Ingest into PostgreSQL in a fixed number of round trips per batch, whatever its size.
//!
//! Over a network every statement costs a round trip, so a batch is written set-wise: the
//! sightings in one `INSERT ... SELECT FROM unnest(...)`, the aggregates in one upsert per
//! batch (which also reports each indicator's state before it), the open correlations read in
//! one query and moved on in one update, and the indicators a participant may have entered
//! evaluated together from one read of their aggregates and written in one upsert.
//! Per-indicator advisory locks, taken first in one global order, keep concurrent collector
//! instances from losing a correlation (see the module comment of `postgres`).

use super::{correlation_row, lock_key};
use crate::correlation::CorrelationRule;
use crate::store::campaign::CampaignBatch;
use crate::store::{
    CORRELATION_COLUMNS, Ingested, NewSighting, ParticipantWindow, SIGHTING_COLUMNS, StoreError, Touched,
    clamp, evaluate,
};
use std::collections::{BTreeMap, HashSet};
use tokio_postgres::Transaction;
use zdn_proto::v1;

pub(super) async fn ingest(
    tx: &Transaction<'_>,
    rule: &CorrelationRule,
    participant: &str,
    agent: &str,
    batch: &[NewSighting<'_>],
    now_ms: i64,
) -> Result<Ingested, StoreError> {
    let mut locks: Vec<i64> = batch.iter().map(|s| lock_key(&s.wire.indicator)).collect();
    locks.sort_unstable();
    locks.dedup();
    // A function scan over the sorted array takes the locks in array order.
    tx.execute("SELECT pg_advisory_xact_lock(k) FROM unnest($1::BIGINT[]) AS k", &[&locks]).await?;

    let stored = insert_sightings(tx, participant, agent, batch, now_ms).await?;
    let mut out = Ingested {
        stored: stored.len() as u32,
        duplicates: (batch.len() - stored.len()) as u32,
        changes: Vec::new(),
    };
    let mut touched: BTreeMap<&str, Touched> = BTreeMap::new();
    let mut campaigns = CampaignBatch::default();
    for s in batch.iter().filter(|s| stored.contains(s.wire.id.as_str())) {
        campaigns.add(s);
        touched.entry(s.wire.indicator.as_str()).or_insert_with(|| Touched::new(s.kind, s.campaign)).add(
            s.via,
            s.wire,
            clamp(s.wire.count),
        );
    }
    if touched.is_empty() {
        return Ok(out);
    }
    upsert_aggregates(tx, participant, &mut touched).await?;
    out.changes = correlate(tx, rule, &touched, now_ms).await?;
    out.changes.extend(super::campaign::ingest(tx, rule, participant, &campaigns, now_ms).await?);
    Ok(out)
}

/// Inserts the batch; returns the ids that were new (the rest were stored before).
async fn insert_sightings(
    tx: &Transaction<'_>,
    participant: &str,
    agent: &str,
    batch: &[NewSighting<'_>],
    now_ms: i64,
) -> Result<HashSet<String>, StoreError> {
    let column = |f: fn(&NewSighting<'_>) -> String| batch.iter().map(f).collect::<Vec<String>>();
    let number = |f: fn(&NewSighting<'_>) -> i64| batch.iter().map(f).collect::<Vec<i64>>();
    let (ids, indicators, kinds, vias) = (
        column(|s| s.wire.id.clone()),
        column(|s| s.wire.indicator.clone()),
        column(|s| s.kind.as_str().to_owned()),
        column(|s| s.via.as_str().to_owned()),
    );
    let (observed, indicator_ids, srcs, dst_ips, protos, names) = (
        column(|s| s.wire.observed.clone()),
        column(|s| s.wire.indicator_id.clone()),
        column(|s| s.wire.src.clone()),
        column(|s| s.wire.dst_ip.clone()),
        column(|s| s.wire.proto.clone()),
        column(|s| s.wire.resolved_name.clone()),
    );
    let (firsts, lasts, counts) = (
        number(|s| s.wire.first_seen_unix_ms),
        number(|s| s.wire.last_seen_unix_ms),
        number(|s| clamp(s.wire.count)),
    );
    let ports: Vec<i32> = batch.iter().map(|s| i32::try_from(s.wire.dst_port).unwrap_or(i32::MAX)).collect();
    let rows = tx
        .query(
            &format!(
                "INSERT INTO sightings ({SIGHTING_COLUMNS})
                 SELECT id, $1, $2, indicator, kind, via, observed, indicator_id, first_seen, last_seen, count,
                        src, dst_ip, dst_port, proto, $3, resolved_name
                 FROM unnest($4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::TEXT[], $10::BIGINT[],
                             $11::BIGINT[], $12::BIGINT[], $13::TEXT[], $14::TEXT[], $15::INTEGER[], $16::TEXT[],
                             $17::TEXT[])
                   AS i(id, indicator, kind, via, observed, indicator_id, first_seen, last_seen, count, src, dst_ip,
                        dst_port, proto, resolved_name)
                 ON CONFLICT (id) DO NOTHING
                 RETURNING id"
            ),
            &[
                &participant,
                &agent,
                &now_ms,
                &ids,
                &indicators,
                &kinds,
                &vias,
                &observed,
                &indicator_ids,
                &firsts,
                &lasts,
                &counts,
                &srcs,
                &dst_ips,
                &ports,
                &protos,
                &names,
            ],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// One upsert for the whole batch (one row per indicator: a batch is one participant's);
/// records in `touched` what each indicator's aggregate was before.
async fn upsert_aggregates(
    tx: &Transaction<'_>,
    participant: &str,
    touched: &mut BTreeMap<&str, Touched>,
) -> Result<(), StoreError> {
    let indicators: Vec<&str> = touched.keys().copied().collect();
    let kinds: Vec<&str> = touched.values().map(|t| t.kind.as_str()).collect();
    let firsts: Vec<i64> = touched.values().map(|t| t.first_seen).collect();
    let lasts: Vec<i64> = touched.values().map(|t| t.last_seen).collect();
    let sightings: Vec<i64> = touched.values().map(|t| t.sightings).collect();
    let vias: Vec<String> = touched
        .values()
        .map(|t| t.by_via.iter().map(|v| v.0.as_str()).collect::<Vec<_>>().join(","))
        .collect();
    // Data-modifying CTEs all see the table as it was before the statement: `previous` is the
    // state before this batch.
    let rows = tx
        .query(
            "WITH input AS (
               SELECT * FROM unnest($2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::BIGINT[], $6::BIGINT[], $7::TEXT[])
                 AS i(indicator, kind, first_seen, last_seen, sightings, vias)),
             previous AS (
               SELECT p.indicator, p.last_seen FROM indicator_participants p JOIN input USING (indicator)
               WHERE p.participant = $1),
             upserted AS (
               INSERT INTO indicator_participants AS t (indicator, participant, kind, first_seen, last_seen, sightings, vias)
               SELECT indicator, $1, kind, first_seen, last_seen, sightings, vias FROM input
               ON CONFLICT (indicator, participant) DO UPDATE SET
                 first_seen = LEAST(t.first_seen, excluded.first_seen),
                 last_seen = GREATEST(t.last_seen, excluded.last_seen),
                 sightings = t.sightings + excluded.sightings,
                 vias = (SELECT string_agg(v, ',' ORDER BY position(v IN t.vias || ',' || excluded.vias))
                         FROM (SELECT DISTINCT unnest(string_to_array(t.vias || ',' || excluded.vias, ',')) AS v) d)
               RETURNING indicator)
             SELECT input.indicator, previous.last_seen FROM input LEFT JOIN previous USING (indicator)",
            &[&participant, &indicators, &kinds, &firsts, &lasts, &sightings, &vias],
        )
        .await?;
    for row in rows {
        let indicator: String = row.get(0);
        if let Some(t) = touched.get_mut(indicator.as_str()) {
            t.set_previous(row.get(1));
        }
    }
    Ok(())
}

/// The correlation rule for every indicator the batch touched; returns the events.
async fn correlate(
    tx: &Transaction<'_>,
    rule: &CorrelationRule,
    touched: &BTreeMap<&str, Touched>,
    now_ms: i64,
) -> Result<Vec<v1::CorrelationEvent>, StoreError> {
    let indicators: Vec<&str> = touched.keys().copied().collect();
    // Each touched indicator: withdrawn as a false positive? its open correlation, if any.
    let state = tx
        .query(
            "SELECT i, EXISTS (SELECT 1 FROM false_positives f WHERE f.indicator = i), c.participant_count, c.last_seen
             FROM unnest($1::TEXT[]) AS i LEFT JOIN correlations c ON c.indicator = i",
            &[&indicators],
        )
        .await?;
    let mut moved_on: Vec<(&str, &Touched)> = Vec::new();
    let mut to_evaluate: BTreeMap<&str, Option<u32>> = BTreeMap::new();
    for row in &state {
        let indicator: &str = row.get(0);
        let Some((&key, t)) = touched.get_key_value(indicator) else { continue };
        if row.get::<_, bool>(1) {
            continue; // A false positive stays closed.
        }
        let open: Option<(i32, i64)> = row.get::<_, Option<i32>>(2).zip(row.get::<_, Option<i64>>(3));
        match open {
            Some((_, latest_before)) if t.stayed_within(latest_before, rule.window_ms) => {
                moved_on.push((key, t))
            }
            open => {
                to_evaluate.insert(key, open.map(|(count, _)| count.max(0) as u32));
            }
        }
    }
    if !moved_on.is_empty() {
        let names: Vec<&str> = moved_on.iter().map(|m| m.0).collect();
        let firsts: Vec<i64> = moved_on.iter().map(|m| m.1.first_seen).collect();
        let lasts: Vec<i64> = moved_on.iter().map(|m| m.1.last_seen).collect();
        let counts: Vec<i64> = moved_on.iter().map(|m| m.1.sightings).collect();
        tx.execute(
            "UPDATE correlations c SET first_seen = LEAST(c.first_seen, u.f), last_seen = GREATEST(c.last_seen, u.l),
               sightings = c.sightings + u.s
             FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[]) AS u(indicator, f, l, s)
             WHERE c.indicator = u.indicator",
            &[&names, &firsts, &lasts, &counts],
        )
        .await?;
    }
    if to_evaluate.is_empty() {
        return Ok(Vec::new());
    }
    evaluate_all(tx, rule, touched, &to_evaluate, now_ms).await
}

/// Full evaluation of the indicators a participant may have entered: one read of their
/// aggregates, one upsert of the correlations that are or stay open, one read of the changed.
async fn evaluate_all(
    tx: &Transaction<'_>,
    rule: &CorrelationRule,
    touched: &BTreeMap<&str, Touched>,
    to_evaluate: &BTreeMap<&str, Option<u32>>,
    now_ms: i64,
) -> Result<Vec<v1::CorrelationEvent>, StoreError> {
    let names: Vec<&str> = to_evaluate.keys().copied().collect();
    let rows = tx
        .query(
            "SELECT indicator, participant, first_seen, last_seen, sightings FROM indicator_participants
             WHERE indicator = ANY($1::TEXT[]) ORDER BY indicator, first_seen, participant",
            &[&names],
        )
        .await?;
    let mut by_indicator: BTreeMap<String, Vec<(ParticipantWindow, i64)>> = BTreeMap::new();
    for r in &rows {
        let window = ParticipantWindow { participant: r.get(1), first_seen: r.get(2), sightings: r.get(4) };
        by_indicator.entry(r.get(0)).or_default().push((window, r.get(3)));
    }
    let mut upserts = Vec::new();
    let mut changed = Vec::new();
    for (indicator, aggregates) in by_indicator {
        let latest = aggregates.iter().map(|a| a.1).max().unwrap_or(i64::MIN);
        let window: Vec<ParticipantWindow> = aggregates
            .into_iter()
            .filter(|a| a.1 >= latest.saturating_sub(rule.window_ms))
            .map(|a| a.0)
            .collect();
        let before = to_evaluate.get(indicator.as_str()).copied().flatten();
        let (change, Some(upsert)) = evaluate(rule, &window, latest, before) else { continue };
        if let Some(change) = change {
            changed.push((indicator.clone(), change));
        }
        let kind = touched.get(indicator.as_str()).map_or("domain", |t| t.kind.as_str());
        upserts.push((indicator, kind, upsert));
    }
    if upserts.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<&str> = upserts.iter().map(|u| u.0.as_str()).collect();
    let kinds: Vec<&str> = upserts.iter().map(|u| u.1).collect();
    let campaigns: Vec<&str> =
        upserts.iter().map(|u| touched.get(u.0.as_str()).map_or("", |t| t.campaign.as_str())).collect();
    let participants: Vec<&str> = upserts.iter().map(|u| u.2.participants.as_str()).collect();
    let counts: Vec<i32> = upserts.iter().map(|u| i32::try_from(u.2.count).unwrap_or(i32::MAX)).collect();
    let firsts: Vec<i64> = upserts.iter().map(|u| u.2.first_seen).collect();
    let lasts: Vec<i64> = upserts.iter().map(|u| u.2.last_seen).collect();
    let sightings: Vec<i64> = upserts.iter().map(|u| u.2.sightings).collect();
    // The participant list only ever grows; times and counts follow the latest evaluation.
    tx.execute(
        "INSERT INTO correlations AS c (indicator, kind, participants, participant_count, first_seen, last_seen,
                                        sightings, opened, updated, campaign)
         SELECT indicator, kind, participants, participant_count, first_seen, last_seen, sightings, $8, $8, campaign
         FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::INTEGER[], $5::BIGINT[], $6::BIGINT[], $7::BIGINT[],
                     $9::TEXT[])
           AS u(indicator, kind, participants, participant_count, first_seen, last_seen, sightings, campaign)
         ON CONFLICT (indicator) DO UPDATE SET
           campaign = excluded.campaign,
           participants = CASE WHEN excluded.participant_count > c.participant_count
                          THEN excluded.participants ELSE c.participants END,
           participant_count = GREATEST(c.participant_count, excluded.participant_count),
           first_seen = LEAST(c.first_seen, excluded.first_seen),
           last_seen = GREATEST(c.last_seen, excluded.last_seen),
           sightings = GREATEST(c.sightings, excluded.sightings),
           updated = CASE WHEN excluded.participant_count > c.participant_count
                     THEN excluded.updated ELSE c.updated END",
        &[&names, &kinds, &participants, &counts, &firsts, &lasts, &sightings, &now_ms, &campaigns],
    )
    .await?;
    if changed.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<&str> = changed.iter().map(|c| c.0.as_str()).collect();
    let rows =
        tx.query(&format!("{CORRELATION_COLUMNS} WHERE indicator = ANY($1::TEXT[])"), &[&names]).await?;
    let mut correlations: BTreeMap<String, v1::Correlation> =
        rows.iter().map(correlation_row).map(|c| (c.indicator.clone(), c)).collect();
    Ok(changed
        .into_iter()
        .filter_map(|(indicator, change)| {
            let correlation = correlations.remove(&indicator)?;
            Some(v1::CorrelationEvent { change: change as i32, correlation: Some(correlation) })
        })
        .collect())
}
