//! Console tokens and sessions in PostgreSQL (see `Store::put_console_token`).

use crate::store::StoreError;
use deadpool_postgres::Pool;
use tokio_postgres::Row;
use zdn_proto::v1;

const COLUMNS: &str = "SELECT id, kind, participant, role, name, created, expires, revoked, issued_by, parent FROM console_tokens";

fn token_row(r: &Row) -> v1::ConsoleToken {
    v1::ConsoleToken {
        id: r.get(0),
        kind: r.get(1),
        participant: r.get(2),
        role: r.get(3),
        name: r.get(4),
        created_unix_ms: r.get(5),
        expires_unix_ms: r.get(6),
        revoked_unix_ms: r.get(7),
        issued_by: r.get(8),
        parent: r.get(9),
    }
}

pub(super) async fn put(pool: &Pool, t: &v1::ConsoleToken, hash: &str) -> Result<(), StoreError> {
    pool.get()
        .await?
        .execute(
            "INSERT INTO console_tokens (id, hash, kind, participant, role, name, created, expires, revoked, issued_by, parent)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            &[
                &t.id,
                &hash,
                &t.kind,
                &t.participant,
                &t.role,
                &t.name,
                &t.created_unix_ms,
                &t.expires_unix_ms,
                &t.revoked_unix_ms,
                &t.issued_by,
                &t.parent,
            ],
        )
        .await?;
    Ok(())
}

pub(super) async fn by_hash(pool: &Pool, hash: &str) -> Result<Option<v1::ConsoleToken>, StoreError> {
    let row = pool.get().await?.query_opt(&format!("{COLUMNS} WHERE hash = $1"), &[&hash]).await?;
    Ok(row.as_ref().map(token_row))
}

pub(super) async fn revoke(pool: &Pool, id: &str, now_ms: i64) -> Result<u32, StoreError> {
    let revoked = pool
        .get()
        .await?
        .execute(
            "UPDATE console_tokens SET revoked = $2 WHERE (id = $1 OR parent = $1) AND revoked = 0",
            &[&id, &now_ms],
        )
        .await?;
    Ok(u32::try_from(revoked).unwrap_or(u32::MAX))
}

pub(super) async fn all(pool: &Pool) -> Result<Vec<v1::ConsoleToken>, StoreError> {
    let rows = pool.get().await?.query(&format!("{COLUMNS} ORDER BY created DESC, id"), &[]).await?;
    Ok(rows.iter().map(token_row).collect())
}
