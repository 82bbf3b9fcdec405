//! Campaign-level correlation and suspect hosts in SQLite (see `store::campaign`), written in
//! the batch's own transaction.

use crate::correlation::CorrelationRule;
use crate::store::campaign::{CampaignBatch, SUSPECT_AT, merge_indicators};
use crate::store::{CAMPAIGN_COLUMNS, ParticipantWindow, StoreError, evaluate};
use rusqlite::{OptionalExtension, Transaction, params};
use zdn_proto::v1;

pub(super) fn ingest(
    tx: &Transaction<'_>,
    rule: &CorrelationRule,
    participant: &str,
    batch: &CampaignBatch<'_>,
    now_ms: i64,
) -> Result<Vec<v1::CorrelationEvent>, StoreError> {
    let mut events = Vec::new();
    for (campaign, t) in &batch.campaigns {
        tx.prepare_cached(
            "INSERT INTO campaign_participants (campaign, participant, first_seen, last_seen, sightings)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (campaign, participant) DO UPDATE SET
               first_seen = min(first_seen, excluded.first_seen), last_seen = max(last_seen, excluded.last_seen),
               sightings = sightings + excluded.sightings",
        )?
        .execute(params![campaign, participant, t.first_seen, t.last_seen, t.sightings])?;
        let latest: i64 = tx
            .prepare_cached("SELECT max(last_seen) FROM campaign_participants WHERE campaign = ?1")?
            .query_row([campaign], |r| r.get(0))?;
        let rows: Vec<ParticipantWindow> = tx
            .prepare_cached(
                "SELECT participant, first_seen, sightings FROM campaign_participants
                 WHERE campaign = ?1 AND last_seen >= ?2 ORDER BY first_seen, participant",
            )?
            .query_map(params![campaign, latest.saturating_sub(rule.window_ms)], |r| {
                Ok(ParticipantWindow { participant: r.get(0)?, first_seen: r.get(1)?, sightings: r.get(2)? })
            })?
            .collect::<Result<_, _>>()?;
        let before: Option<u32> = tx
            .prepare_cached("SELECT participant_count FROM campaigns WHERE campaign = ?1")?
            .query_row([campaign], |r| r.get(0))
            .optional()?;
        let (change, Some(u)) = evaluate(rule, &rows, latest, before) else { continue };
        tx.prepare_cached(concat!(
            "INSERT INTO campaigns (campaign, participants, participant_count, first_seen, last_seen, sightings,
                                    opened, updated)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
             ON CONFLICT (campaign) DO UPDATE SET ",
            growing_correlation_update!()
        ))?
        .execute(params![campaign, u.participants, u.count, u.first_seen, u.last_seen, u.sightings, now_ms])?;
        if let Some(change) = change {
            let correlation = tx
                .prepare_cached(&format!("{CAMPAIGN_COLUMNS} WHERE campaign = ?1"))?
                .query_row([campaign], super::correlation_row)?;
            events.push(v1::CorrelationEvent { change: change as i32, correlation: Some(correlation) });
        }
    }
    for ((host, campaign), h) in &batch.hosts {
        let known: Option<String> = tx
            .prepare_cached(
                "SELECT indicators FROM suspect_hosts WHERE participant = ?1 AND host = ?2 AND campaign = ?3",
            )?
            .query_row(params![participant, host, campaign], |r| r.get(0))
            .optional()?;
        let (indicators, count) = merge_indicators(known.as_deref().unwrap_or(""), &h.indicators);
        tx.prepare_cached(
            "INSERT INTO suspect_hosts (participant, host, campaign, indicators, indicator_count, first_seen, last_seen)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (participant, host, campaign) DO UPDATE SET
               indicators = excluded.indicators, indicator_count = excluded.indicator_count,
               first_seen = min(first_seen, excluded.first_seen), last_seen = max(last_seen, excluded.last_seen)",
        )?
        .execute(params![participant, host, campaign, indicators, count as i64, h.first_seen, h.last_seen])?;
        if count >= SUSPECT_AT && known.is_none_or(|k| k.split(',').count() < SUSPECT_AT) {
            tracing::warn!(
                participant,
                host,
                campaign,
                indicators = count,
                "host flagged as likely compromised"
            );
        }
    }
    Ok(events)
}

pub(super) fn suspect_hosts(
    conn: &rusqlite::Connection,
    participant: Option<&str>,
    limit: u32,
) -> Result<Vec<v1::SuspectHost>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT participant, host, campaign, indicators, first_seen, last_seen FROM suspect_hosts
         WHERE indicator_count >= ?1 AND (?2 IS NULL OR participant = ?2)
         ORDER BY last_seen DESC, participant, host LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![SUSPECT_AT as i64, participant, limit], |r| {
        let indicators: String = r.get(3)?;
        Ok(v1::SuspectHost {
            participant: r.get(0)?,
            host: r.get(1)?,
            campaign: r.get(2)?,
            indicators: indicators.split(',').map(str::to_owned).collect(),
            first_seen_unix_ms: r.get(4)?,
            last_seen_unix_ms: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
