//! Erasing what PostgreSQL holds about a participant or one of its hosts (see
//! `Store::erase`).

use crate::store::{Erased, StoreError, without_participant};

pub(super) async fn erase(
    client: &mut deadpool_postgres::Client,
    min_participants: u32,
    participant: &str,
    host: Option<&str>,
) -> Result<Erased, StoreError> {
    let tx = client.transaction().await?;
    let mut erased = Erased::default();
    if let Some(host) = host {
        erased.sightings = tx
            .execute("DELETE FROM sightings WHERE participant = $1 AND src = $2", &[&participant, &host])
            .await?;
        tx.execute("DELETE FROM suspect_hosts WHERE participant = $1 AND host = $2", &[&participant, &host])
            .await?;
        tx.commit().await?;
        return Ok(erased);
    }
    erased.sightings = tx.execute("DELETE FROM sightings WHERE participant = $1", &[&participant]).await?;
    tx.execute("DELETE FROM suspect_hosts WHERE participant = $1", &[&participant]).await?;
    erased.aggregates =
        tx.execute("DELETE FROM indicator_participants WHERE participant = $1", &[&participant]).await?
            + tx.execute("DELETE FROM campaign_participants WHERE participant = $1", &[&participant]).await?;
    erased.agents = tx.execute("DELETE FROM agents WHERE participant = $1", &[&participant]).await?;
    // Its name leaves every correlation, of indicators and of campaigns alike.
    for (table, key) in [("correlations", "indicator"), ("campaigns", "campaign")] {
        let named = tx
            .query(
                &format!(
                    "SELECT {key}, participants FROM {table} WHERE ',' || participants || ',' LIKE $1 FOR UPDATE"
                ),
                &[&format!("%,{participant},%")],
            )
            .await?;
        for row in named {
            let (name, participants): (String, String) = (row.get(0), row.get(1));
            let (kept, count) = without_participant(&participants, participant);
            if count < min_participants {
                tx.execute(&format!("DELETE FROM {table} WHERE {key} = $1"), &[&name]).await?;
                erased.correlations_removed += 1;
            } else {
                let count = i32::try_from(count).unwrap_or(i32::MAX);
                tx.execute(
                    &format!("UPDATE {table} SET participants = $2, participant_count = $3 WHERE {key} = $1"),
                    &[&name, &kept, &count],
                )
                .await?;
                erased.correlations_changed += 1;
            }
        }
    }
    tx.commit().await?;
    Ok(erased)
}
