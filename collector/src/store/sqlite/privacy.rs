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
            + tx.execute("DELETE FROM incident_members WHERE participant = ?1", [participant])? as u64;
    erased.agents = tx.execute("DELETE FROM agents WHERE participant = ?1", [participant])? as u64;
    // Its name leaves every incident, of indicators and of campaigns alike.
    let named: Vec<(String, String, i64, String, i64)> = tx
        .prepare(
            "SELECT scope, subject, wave, participants, opened FROM incidents
             WHERE ',' || participants || ',' LIKE ?1",
        )?
        .query_map([format!("%,{participant},%")], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<Result<_, _>>()?;
    for (scope, subject, wave, participants, opened) in named {
        let (kept, count) = without_participant(&participants, participant);
        let key = params![scope, subject, wave];
        if opened > 0 && count < min_participants {
            tx.execute("DELETE FROM incidents WHERE scope = ?1 AND subject = ?2 AND wave = ?3", key)?;
            erased.correlations_removed += 1;
        } else {
            tx.execute(
                "UPDATE incidents SET participants = ?4, participant_count = ?5
                 WHERE scope = ?1 AND subject = ?2 AND wave = ?3",
                params![scope, subject, wave, kept, count],
            )?;
            erased.correlations_changed += u64::from(opened > 0);
        }
    }
    tx.commit()?;
    Ok(erased)
}
