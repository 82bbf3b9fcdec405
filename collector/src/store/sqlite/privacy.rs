//! Erasing what SQLite holds about a participant or one of its hosts (see `Store::erase`).

use crate::store::{Erased, StoreError, without_participant};
use rusqlite::{Connection, params};

pub(super) fn erase(
    conn: &mut Connection,
    min_participants: u32,
    participant: &str,
    host: Option<&str>,
) -> Result<Erased, StoreError> {
    let tx = conn.transaction()?;
    let mut erased = Erased::default();
    if let Some(host) = host {
        erased.sightings = tx
            .execute("DELETE FROM sightings WHERE participant = ?1 AND src = ?2", [participant, host])?
            as u64;
        tx.execute("DELETE FROM suspect_hosts WHERE participant = ?1 AND host = ?2", [participant, host])?;
        tx.commit()?;
        return Ok(erased);
    }
    erased.sightings = tx.execute("DELETE FROM sightings WHERE participant = ?1", [participant])? as u64;
    tx.execute("DELETE FROM suspect_hosts WHERE participant = ?1", [participant])?;
    erased.aggregates =
        tx.execute("DELETE FROM indicator_participants WHERE participant = ?1", [participant])? as u64
            + tx.execute("DELETE FROM campaign_participants WHERE participant = ?1", [participant])? as u64;
    erased.agents = tx.execute("DELETE FROM agents WHERE participant = ?1", [participant])? as u64;
    // Its name leaves every correlation, of indicators and of campaigns alike.
    for (table, key) in [("correlations", "indicator"), ("campaigns", "campaign")] {
        let named: Vec<(String, String)> = tx
            .prepare(&format!(
                "SELECT {key}, participants FROM {table} WHERE ',' || participants || ',' LIKE ?1"
            ))?
            .query_map([format!("%,{participant},%")], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (name, participants) in named {
            let (kept, count) = without_participant(&participants, participant);
            if count < min_participants {
                tx.execute(&format!("DELETE FROM {table} WHERE {key} = ?1"), [&name])?;
                erased.correlations_removed += 1;
            } else {
                tx.execute(
                    &format!("UPDATE {table} SET participants = ?2, participant_count = ?3 WHERE {key} = ?1"),
                    params![name, kept, count],
                )?;
                erased.correlations_changed += 1;
            }
        }
    }
    tx.commit()?;
    Ok(erased)
}
