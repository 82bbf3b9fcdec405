//! Suspect hosts in SQLite (see `store::campaign`), written in the batch's own transaction.

use crate::store::StoreError;
use crate::store::campaign::{CampaignBatch, SUSPECT_AT, merge_indicators};
use rusqlite::{OptionalExtension, Transaction, params};
use zdn_proto::v1;

pub(super) fn suspect_hosts_ingest(
    tx: &Transaction<'_>,
    participant: &str,
    batch: &CampaignBatch<'_>,
) -> Result<(), StoreError> {
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
    Ok(())
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
