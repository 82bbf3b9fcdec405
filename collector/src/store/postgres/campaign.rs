//! Campaign-level correlation and suspect hosts in PostgreSQL (see `store::campaign`), in the
//! batch's transaction. A batch touches few campaigns, so each is a handful of statements.

use super::correlation_row;
use crate::correlation::CorrelationRule;
use crate::store::campaign::{CampaignBatch, SUSPECT_AT, merge_indicators};
use crate::store::{CAMPAIGN_COLUMNS, ParticipantWindow, StoreError, evaluate};
use tokio_postgres::Transaction;
use zdn_proto::v1;

pub(super) async fn ingest(
    tx: &Transaction<'_>,
    rule: &CorrelationRule,
    participant: &str,
    batch: &CampaignBatch<'_>,
    now_ms: i64,
) -> Result<Vec<v1::CorrelationEvent>, StoreError> {
    let mut events = Vec::new();
    for (campaign, t) in &batch.campaigns {
        // Serialised per campaign across instances, like indicators.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&super::lock_key(&format!("campaign:{campaign}"))])
            .await?;
        tx.execute(
            "INSERT INTO campaign_participants AS c (campaign, participant, first_seen, last_seen, sightings)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (campaign, participant) DO UPDATE SET
               first_seen = LEAST(c.first_seen, excluded.first_seen), last_seen = GREATEST(c.last_seen, excluded.last_seen),
               sightings = c.sightings + excluded.sightings",
            &[campaign, &participant, &t.first_seen, &t.last_seen, &t.sightings],
        )
        .await?;
        let rows = tx
            .query(
                "SELECT participant, first_seen, sightings, last_seen FROM campaign_participants
                 WHERE campaign = $1 ORDER BY first_seen, participant",
                &[campaign],
            )
            .await?;
        let latest = rows.iter().map(|r| r.get::<_, i64>(3)).max().unwrap_or(i64::MIN);
        let window: Vec<ParticipantWindow> = rows
            .iter()
            .filter(|r| r.get::<_, i64>(3) >= latest.saturating_sub(rule.window_ms))
            .map(|r| ParticipantWindow { participant: r.get(0), first_seen: r.get(1), sightings: r.get(2) })
            .collect();
        let before: Option<u32> = tx
            .query_opt("SELECT participant_count FROM campaigns WHERE campaign = $1", &[campaign])
            .await?
            .map(|r| r.get::<_, i32>(0).max(0) as u32);
        let (change, Some(u)) = evaluate(rule, &window, latest, before) else { continue };
        let count = i32::try_from(u.count).unwrap_or(i32::MAX);
        tx.execute(
            "INSERT INTO campaigns AS c (campaign, participants, participant_count, first_seen, last_seen, sightings,
                                         opened, updated)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
             ON CONFLICT (campaign) DO UPDATE SET
               participants = CASE WHEN excluded.participant_count > c.participant_count
                              THEN excluded.participants ELSE c.participants END,
               participant_count = GREATEST(c.participant_count, excluded.participant_count),
               first_seen = LEAST(c.first_seen, excluded.first_seen),
               last_seen = GREATEST(c.last_seen, excluded.last_seen),
               sightings = GREATEST(c.sightings, excluded.sightings),
               updated = CASE WHEN excluded.participant_count > c.participant_count
                         THEN excluded.updated ELSE c.updated END",
            &[campaign, &u.participants, &count, &u.first_seen, &u.last_seen, &u.sightings, &now_ms],
        )
        .await?;
        if let Some(change) = change {
            let row = tx.query_one(&format!("{CAMPAIGN_COLUMNS} WHERE campaign = $1"), &[campaign]).await?;
            events.push(v1::CorrelationEvent {
                change: change as i32,
                correlation: Some(correlation_row(&row)),
            });
        }
    }
    for ((host, campaign), h) in &batch.hosts {
        let known: Option<String> = tx
            .query_opt(
                "SELECT indicators FROM suspect_hosts WHERE participant = $1 AND host = $2 AND campaign = $3",
                &[&participant, host, campaign],
            )
            .await?
            .map(|r| r.get(0));
        let (indicators, count) = merge_indicators(known.as_deref().unwrap_or(""), &h.indicators);
        tx.execute(
            "INSERT INTO suspect_hosts AS s (participant, host, campaign, indicators, indicator_count, first_seen, last_seen)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (participant, host, campaign) DO UPDATE SET
               indicators = excluded.indicators, indicator_count = excluded.indicator_count,
               first_seen = LEAST(s.first_seen, excluded.first_seen), last_seen = GREATEST(s.last_seen, excluded.last_seen)",
            &[&participant, host, campaign, &indicators, &(count as i32), &h.first_seen, &h.last_seen],
        )
        .await?;
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

pub(super) async fn suspect_hosts(
    client: &deadpool_postgres::Client,
    participant: Option<&str>,
    limit: u32,
) -> Result<Vec<v1::SuspectHost>, StoreError> {
    let rows = client
        .query(
            "SELECT participant, host, campaign, indicators, first_seen, last_seen FROM suspect_hosts
             WHERE indicator_count >= $1 AND ($2::TEXT IS NULL OR participant = $2::TEXT)
             ORDER BY last_seen DESC, participant, host LIMIT $3",
            &[&(SUSPECT_AT as i32), &participant, &i64::from(limit)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| v1::SuspectHost {
            participant: r.get(0),
            host: r.get(1),
            campaign: r.get(2),
            indicators: r.get::<_, String>(3).split(',').map(str::to_owned).collect(),
            first_seen_unix_ms: r.get(4),
            last_seen_unix_ms: r.get(5),
        })
        .collect())
}
