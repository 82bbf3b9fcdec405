//! Ingest into PostgreSQL in a fixed number of round trips per batch, whatever its size.
//!
//! Over a network every statement costs a round trip, so a batch is written set-wise: the
//! sightings in one `INSERT ... SELECT FROM unnest(...)`, the aggregates in one upsert, the
//! false positives among its indicators in one read, the touched subjects' incidents in two
//! reads and three writes (`incidents`). Lock stripes, taken first in one global order, keep
//! concurrent collector instances from losing an incident (see the module comment of
//! `postgres`).

use super::incidents;
use super::stripes::lock_stripes;
use crate::correlation::CorrelationRule;
use crate::store::campaign::CampaignBatch;
use crate::store::incidents::{BatchTouches, Scope, step, step_events};
use crate::store::{Ingested, NewSighting, SIGHTING_COLUMNS, StoreError, Touched, clamp};
use std::collections::{BTreeMap, HashSet};
use tokio_postgres::Transaction;

pub(super) async fn ingest(
    tx: &Transaction<'_>,
    rule: &CorrelationRule,
    participant: &str,
    agent: &str,
    batch: &[NewSighting<'_>],
    now_ms: i64,
) -> Result<Ingested, StoreError> {
    let mut subjects: Vec<(Scope, &str)> = Vec::new();
    for s in batch {
        subjects.push((Scope::Indicator, &s.wire.indicator));
        if let Some(campaign) = s.campaign.filter(|c| !c.is_empty()) {
            subjects.push((Scope::Campaign, campaign));
        }
    }
    lock_stripes(tx, &subjects).await?;

    let stored = insert_sightings(tx, participant, agent, batch, now_ms).await?;
    let mut out = Ingested {
        stored: stored.len() as u32,
        duplicates: (batch.len() - stored.len()) as u32,
        ..Ingested::default()
    };
    let mut touched: BTreeMap<&str, Touched> = BTreeMap::new();
    let mut touches = BatchTouches::default();
    let mut hosts = CampaignBatch::default();
    for s in batch.iter().filter(|s| stored.contains(s.wire.id.as_str())) {
        hosts.add(s);
        touches.add(rule, s, now_ms);
        touched.entry(s.wire.indicator.as_str()).or_insert_with(|| Touched::new(s.kind)).add(
            s.via,
            s.wire,
            clamp(s.wire.count),
        );
    }
    if touched.is_empty() {
        return Ok(out);
    }
    upsert_aggregates(tx, participant, &touched).await?;
    touches.without(&false_positives(tx, &touches.indicators()).await?);
    let mut loaded = incidents::load(tx, rule, &touches.subjects, participant, now_ms).await?;
    let mut planned = Vec::new();
    for (&key, touch) in &touches.subjects {
        let stored = loaded.remove(&(key.0, key.1.to_owned())).unwrap_or_default();
        if let Some(step) = step(rule, participant, touch, stored, now_ms) {
            out.changes.extend(step_events(key, touch, &step));
            planned.push((key, touch, step));
        }
    }
    incidents::write_steps(tx, participant, &planned).await?;
    (out.clamped_future, out.too_old_to_correlate) = (touches.clamped_future, touches.too_old);
    super::campaign::suspect_hosts_ingest(tx, participant, &hosts).await?;
    Ok(out)
}

/// Which of `indicators` are marked as false positives, in one read.
async fn false_positives(tx: &Transaction<'_>, indicators: &[&str]) -> Result<HashSet<String>, StoreError> {
    let rows = tx
        .query("SELECT indicator FROM false_positives WHERE indicator = ANY($1::TEXT[])", &[&indicators])
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
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
    let retros: Vec<bool> = batch.iter().map(|s| s.wire.retro).collect();
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
                        src, dst_ip, dst_port, proto, $3, resolved_name, retro
                 FROM unnest($4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::TEXT[], $10::BIGINT[],
                             $11::BIGINT[], $12::BIGINT[], $13::TEXT[], $14::TEXT[], $15::INTEGER[], $16::TEXT[],
                             $17::TEXT[], $18::BOOLEAN[])
                   AS i(id, indicator, kind, via, observed, indicator_id, first_seen, last_seen, count, src, dst_ip,
                        dst_port, proto, resolved_name, retro)
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
                &retros,
            ],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// One upsert for the whole batch: one row per indicator (a batch is one participant's), its
/// mechanisms merged into the stored list.
async fn upsert_aggregates(
    tx: &Transaction<'_>,
    participant: &str,
    touched: &BTreeMap<&str, Touched>,
) -> Result<(), StoreError> {
    let indicators: Vec<&str> = touched.keys().copied().collect();
    let kinds: Vec<&str> = touched.values().map(|t| t.kind.as_str()).collect();
    let firsts: Vec<i64> =
        touched.values().map(|t| t.by_via.iter().map(|v| v.1).min().unwrap_or(0)).collect();
    let lasts: Vec<i64> = touched.values().map(|t| t.by_via.iter().map(|v| v.2).max().unwrap_or(0)).collect();
    let sightings: Vec<i64> = touched.values().map(|t| t.by_via.iter().map(|v| v.3).sum()).collect();
    let vias: Vec<String> = touched
        .values()
        .map(|t| t.by_via.iter().map(|v| v.0.as_str()).collect::<Vec<_>>().join(","))
        .collect();
    tx.execute(
        "INSERT INTO indicator_participants AS t (indicator, participant, kind, first_seen, last_seen, sightings, vias)
         SELECT indicator, $1, kind, first_seen, last_seen, sightings, vias
         FROM unnest($2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::BIGINT[], $6::BIGINT[], $7::TEXT[])
           AS i(indicator, kind, first_seen, last_seen, sightings, vias)
         ON CONFLICT (indicator, participant) DO UPDATE SET
           first_seen = LEAST(t.first_seen, excluded.first_seen),
           last_seen = GREATEST(t.last_seen, excluded.last_seen),
           sightings = t.sightings + excluded.sightings,
           vias = (SELECT string_agg(v, ',' ORDER BY position(v IN t.vias || ',' || excluded.vias))
                   FROM (SELECT DISTINCT unnest(string_to_array(t.vias || ',' || excluded.vias, ',')) AS v) d)",
        &[&participant, &indicators, &kinds, &firsts, &lasts, &sightings, &vias],
    )
    .await?;
    Ok(())
}
