//! The fleet in PostgreSQL: each agent's latest heartbeat, one row per agent, and the fleet
//! view built from them.

use crate::store::{AGENT_COLUMNS, AgentRow, StoreError};
use deadpool_postgres::Pool;
use zdn_proto::v1;

/// Keeps `a` as its agent's latest heartbeat.
pub(super) async fn record(pool: &Pool, a: &AgentRow) -> Result<(), StoreError> {
    let updates: Vec<String> =
        AGENT_COLUMNS.split(',').map(str::trim).skip(2).map(|c| format!("{c} = excluded.{c}")).collect();
    let sql = format!(
        "INSERT INTO agents ({AGENT_COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
         ON CONFLICT (participant, agent) DO UPDATE SET {}",
        updates.join(", ")
    );
    let [c0, c1, c2, c3, c4] = &a.counters;
    let [h0, h1, h2, h3, h4] = &a.host;
    pool.get()
        .await?
        .execute(
            &sql,
            &[
                &a.participant,
                &a.agent,
                &a.last_heartbeat,
                &a.agent_version,
                c0,
                c1,
                c2,
                c3,
                c4,
                &a.blind_spots,
                &a.cpu_percent,
                h0,
                h1,
                h2,
                h3,
                h4,
                &a.capture_workers,
            ],
        )
        .await?;
    Ok(())
}

/// Every agent's status at `now_ms`, marked stale after `stale_ms` without a heartbeat.
pub(super) async fn statuses(
    pool: &Pool,
    now_ms: i64,
    stale_ms: i64,
) -> Result<Vec<v1::AgentStatus>, StoreError> {
    let rows = pool
        .get()
        .await?
        .query(&format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY participant, agent"), &[])
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            AgentRow {
                participant: r.get(0),
                agent: r.get(1),
                last_heartbeat: r.get(2),
                agent_version: r.get(3),
                counters: [r.get(4), r.get(5), r.get(6), r.get(7), r.get(8)],
                blind_spots: r.get(9),
                cpu_percent: r.get(10),
                host: [r.get(11), r.get(12), r.get(13), r.get(14), r.get(15)],
                capture_workers: r.get(16),
            }
            .into_wire(now_ms, stale_ms)
        })
        .collect())
}
