//! Console tokens and sessions in SQLite (see `Store::put_console_token`).

use crate::store::StoreError;
use rusqlite::{Connection, OptionalExtension, params};
use zdn_proto::v1;

const COLUMNS: &str = "SELECT id, kind, participant, role, name, created, expires, revoked, issued_by, parent FROM console_tokens";

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<v1::ConsoleToken> {
    Ok(v1::ConsoleToken {
        id: r.get(0)?,
        kind: r.get(1)?,
        participant: r.get(2)?,
        role: r.get(3)?,
        name: r.get(4)?,
        created_unix_ms: r.get(5)?,
        expires_unix_ms: r.get(6)?,
        revoked_unix_ms: r.get(7)?,
        issued_by: r.get(8)?,
        parent: r.get(9)?,
    })
}

pub(super) fn put(conn: &Connection, t: &v1::ConsoleToken, hash: &str) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO console_tokens (id, hash, kind, participant, role, name, created, expires, revoked, issued_by, parent)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        t.id,
        hash,
        t.kind,
        t.participant,
        t.role,
        t.name,
        t.created_unix_ms,
        t.expires_unix_ms,
        t.revoked_unix_ms,
        t.issued_by,
        t.parent
    ])?;
    Ok(())
}

pub(super) fn by_hash(conn: &Connection, hash: &str) -> Result<Option<v1::ConsoleToken>, StoreError> {
    Ok(conn.prepare_cached(&format!("{COLUMNS} WHERE hash = ?1"))?.query_row([hash], token_row).optional()?)
}

pub(super) fn revoke(conn: &Connection, id: &str, now_ms: i64) -> Result<u32, StoreError> {
    let revoked = conn
        .prepare_cached(
            "UPDATE console_tokens SET revoked = ?2 WHERE (id = ?1 OR parent = ?1) AND revoked = 0",
        )?
        .execute(params![id, now_ms])?;
    Ok(u32::try_from(revoked).unwrap_or(u32::MAX))
}

pub(super) fn all(conn: &Connection) -> Result<Vec<v1::ConsoleToken>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!("{COLUMNS} ORDER BY created DESC, id"))?;
    let rows = stmt.query_map([], token_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}
