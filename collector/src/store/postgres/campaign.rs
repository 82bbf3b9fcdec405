//! Suspect hosts in PostgreSQL (see `store::campaign`), in the batch's transaction. A batch
//! touches few (host, campaign) pairs, so each is a handful of statements.

use crate::store::StoreError;
use crate::store::campaign::{CampaignBatch, SUSPECT_AT, merge_indicators};
use tokio_postgres::Transaction;
use zdn_proto::v1;

pub(super) async fn suspect_hosts_ingest(
    tx: &Transaction<'_>,
    participant: &str,
    batch: &CampaignBatch<'_>,
) -> Result<(), StoreError> {
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
    Ok(())
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
