//! Erasing what PostgreSQL holds about a participant or one of its hosts (see
//! `Store::erase`), and vacuuming after it and after retention purges.
//!
//! What VACUUM does and does not do: a deleted row stays in its table's file until VACUUM
//! marks its space free; plain VACUUM does not overwrite that space (new rows do, in time),
//! and the WAL segments, archives, replicas and backups keep copies until they are recycled
//! or expire. `VACUUM FULL` rewrites the tables into new files but leaves the old blocks on
//! the disk unwiped. So after an erasure the rows are gone from every query at once and from
//! the table files' live pages after [`vacuum`]; what PostgreSQL guarantees beyond that is
//! the operator's to arrange (encrypted storage, WAL archive and backup retention), as
//! docs/OPERATING.md says.

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
            + tx.execute("DELETE FROM incident_members WHERE participant = $1", &[&participant]).await?;
    erased.agents = tx.execute("DELETE FROM agents WHERE participant = $1", &[&participant]).await?;
    // Its name leaves every incident, of indicators and of campaigns alike.
    let named = tx
        .query(
            "SELECT scope, subject, wave, participants, opened FROM incidents
             WHERE ',' || participants || ',' LIKE $1 FOR UPDATE",
            &[&format!("%,{participant},%")],
        )
        .await?;
    for row in named {
        let (scope, subject, wave): (String, String, i32) = (row.get(0), row.get(1), row.get(2));
        let (participants, opened): (String, i64) = (row.get(3), row.get(4));
        let (kept, count) = without_participant(&participants, participant);
        if opened > 0 && count < min_participants {
            tx.execute(
                "DELETE FROM incidents WHERE scope = $1 AND subject = $2 AND wave = $3",
                &[&scope, &subject, &wave],
            )
            .await?;
            erased.correlations_removed += 1;
        } else {
            let count = i32::try_from(count).unwrap_or(i32::MAX);
            tx.execute(
                "UPDATE incidents SET participants = $4, participant_count = $5
                 WHERE scope = $1 AND subject = $2 AND wave = $3",
                &[&scope, &subject, &wave, &kept, &count],
            )
            .await?;
            erased.correlations_changed += u64::from(opened > 0);
        }
    }
    tx.commit().await?;
    Ok(erased)
}

/// The tables an erasure or purge deletes from, vacuumed so the deleted rows' space is
/// reclaimed (see the module comment for what that does not guarantee).
pub(super) const VACUUMED: &str =
    "VACUUM sightings, suspect_hosts, indicator_participants, incident_members, incidents, agents, audit";

/// Runs [`VACUUMED`] (outside any transaction, as VACUUM must).
pub(super) async fn vacuum(client: &deadpool_postgres::Client) -> Result<(), StoreError> {
    client.batch_execute(VACUUMED).await?;
    Ok(())
}
