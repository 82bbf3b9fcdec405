//! The durable spool: sightings wait here, on disk, until the collector acknowledges them.
//!
//! Why SQLite: the spool must survive `kill -9` and power loss, detect torn writes, and be
//! bounded. SQLite in WAL mode with `synchronous = FULL` gives exactly that — a commit is on
//! disk before `push` returns, every WAL frame carries a checksum so a torn write at the tail
//! is discarded on recovery (the transaction it belonged to never happened), and the library
//! is the most power-failure-tested storage engine there is. It is already the collector's
//! store, so the workspace carries no second engine. A hand-written segment log would have to
//! re-earn all of that.
//!
//! The queue is one table keyed by an increasing sequence number; the sighting id is unique,
//! so a sighting is spooled at most once. The uplink reads the oldest rows, sends them, and
//! deletes them when their batch is acknowledged — a crash between send and delete resends,
//! and the collector's dedup by sighting id stores the retry once.
//!
//! Overflow policy: when the queued bytes would exceed `max_bytes`, *new* sightings are
//! refused and counted (`refused_full`), because the oldest ones hold the first contacts of an
//! incident. A full disk is the same kind of refusal (`refused_disk`), logged, and the agent
//! keeps running; both counters travel in the heartbeat.
//!
//! The WAL is bounded (checkpoints every [`WAL_CHECKPOINT_PAGES`], truncated back to
//! [`WAL_SIZE_LIMIT`]): left alone, a WAL on a full disk holds every write since the disk
//! filled and grows into whatever space is freed. After a full disk every write first tries
//! a truncating checkpoint, so the space freed is used to empty the WAL into the database
//! and give the rest back; until then, deleting acknowledged rows fails with
//! [`SpoolError::DiskFull`], which names the local disk (not the collector).

use prost::Message;
use rusqlite::{Connection, ErrorCode, params};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use zdn_proto::v1;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("cannot move the unreadable spool {path} aside: {source}")]
    MoveAside { path: PathBuf, source: std::io::Error },
    #[error("spool: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("spool row {seq} does not decode ({0}); it is dropped", seq = .1)]
    Corrupt(prost::DecodeError, i64),
    #[error("the agent's own disk is full ({path}): acknowledged sightings stay queued until space is freed")]
    DiskFull { path: PathBuf },
}

/// WAL pages written before SQLite checkpoints them into the database (4 KiB pages: 1 MiB).
pub const WAL_CHECKPOINT_PAGES: i64 = 256;
/// The size a WAL is truncated back to after a checkpoint, in bytes.
pub const WAL_SIZE_LIMIT: i64 = 1 << 20;

/// What happened to sightings offered to the spool.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pushed {
    pub queued: u64,
    /// Already in the spool (same id).
    pub duplicate: u64,
    pub refused_full: u64,
    pub refused_disk: u64,
}

/// A spooled sighting, with the sequence number that orders and deletes it.
pub struct Spooled {
    pub seq: i64,
    pub sighting: v1::Sighting,
}

pub struct Spool {
    path: PathBuf,
    conn: Mutex<Connection>,
    /// A write failed for lack of disk space: the next write first tries to recover it.
    disk_full: std::sync::atomic::AtomicBool,
    max_bytes: u64,
    bytes: AtomicU64,
    rows: AtomicU64,
}

impl Spool {
    /// Opens (or creates) the spool at `path`. A file that fails SQLite's integrity check is
    /// moved aside (`<path>.corrupt-<unix time>`) and a new spool started, loudly: a broken
    /// queue must not stop the sensor.
    pub fn open(path: &Path, max_bytes: u64) -> Result<Spool, SpoolError> {
        let open_err = |source| SpoolError::Open { path: path.into(), source };
        let conn = match Self::connect(path) {
            Ok(conn) => conn,
            Err(e) if is_corruption(&e) => {
                let aside = path.with_extension(format!(
                    "sqlite.corrupt-{}",
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs())
                ));
                tracing::error!(spool = %path.display(), error = %e, moved_to = %aside.display(), "spool unreadable; starting a new one");
                std::fs::rename(path, &aside)
                    .map_err(|source| SpoolError::MoveAside { path: path.into(), source })?;
                for suffix in ["-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
                Self::connect(path).map_err(open_err)?
            }
            Err(e) => return Err(open_err(e)),
        };
        let (rows, bytes): (i64, i64) =
            conn.query_row("SELECT count(*), coalesce(sum(length(body)), 0) FROM queue", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        Ok(Spool {
            path: path.to_owned(),
            disk_full: std::sync::atomic::AtomicBool::new(false),
            conn: Mutex::new(conn),
            max_bytes,
            bytes: AtomicU64::new(bytes as u64),
            rows: AtomicU64::new(rows as u64),
        })
    }

    /// Opens the database; fails with a corruption code if SQLite's quick check does.
    fn connect(path: &Path) -> rusqlite::Result<Connection> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)?;
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        if check != "ok" {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                Some(check),
            ));
        }
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS queue (
                 seq  INTEGER PRIMARY KEY AUTOINCREMENT,
                 id   TEXT NOT NULL UNIQUE,
                 body BLOB NOT NULL
             );",
        )?;
        Ok(conn)
    }

    /// Queues `sightings` in one durable transaction, within the byte bound.
    pub fn push(&self, sightings: &[v1::Sighting]) -> Pushed {
        let mut pushed = Pushed::default();
        if sightings.is_empty() {
            return pushed;
        }
        let result = (|| -> rusqlite::Result<(u64, u64)> {
            let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
            self.recover_space(&conn);
            let tx = conn.transaction()?;
            let mut added_bytes = 0u64;
            {
                let mut insert =
                    tx.prepare_cached("INSERT OR IGNORE INTO queue (id, body) VALUES (?1, ?2)")?;
                for s in sightings {
                    let body = s.encode_to_vec();
                    let size = body.len() as u64;
                    if self.bytes.load(Ordering::Relaxed) + added_bytes + size > self.max_bytes {
                        pushed.refused_full += 1;
                        continue;
                    }
                    if insert.execute(params![s.id, body])? == 1 {
                        pushed.queued += 1;
                        added_bytes += size;
                    } else {
                        pushed.duplicate += 1;
                    }
                }
            }
            tx.commit()?;
            Ok((pushed.queued, added_bytes))
        })();
        match result {
            Ok((rows, bytes)) => {
                self.rows.fetch_add(rows, Ordering::Relaxed);
                self.bytes.fetch_add(bytes, Ordering::Relaxed);
            }
            Err(e) => {
                if self.note_disk_full(&e) {
                    tracing::error!(sightings = sightings.len(), spool = %self.path.display(), "the agent's disk is full: sightings not spooled");
                } else {
                    tracing::error!(sightings = sightings.len(), error = %e, "spool write failed: sightings not spooled");
                }
                pushed = Pushed { refused_disk: sightings.len() as u64, ..Pushed::default() };
            }
        }
        if pushed.refused_full > 0 {
            tracing::warn!(
                refused = pushed.refused_full,
                max_bytes = self.max_bytes,
                "spool full: new sightings refused"
            );
        }
        pushed
    }

    /// Up to `limit` of the oldest sightings with a sequence number above `after`.
    /// Rows that do not decode (they cannot have been written by this agent) are deleted and
    /// reported, not retried for ever.
    pub fn peek(&self, after: i64, limit: usize) -> Result<Vec<Spooled>, SpoolError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt =
            conn.prepare_cached("SELECT seq, body FROM queue WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let rows = stmt
            .query_map(params![after, limit as i64], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        drop(stmt);
        let mut out = Vec::with_capacity(rows.len());
        for (seq, body) in rows {
            match v1::Sighting::decode(body.as_slice()) {
                Ok(sighting) => out.push(Spooled { seq, sighting }),
                Err(e) => {
                    tracing::error!(error = %SpoolError::Corrupt(e, seq), "dropping undecodable spool row");
                    self.delete_locked(&conn, &[seq])?;
                }
            }
        }
        Ok(out)
    }

    /// Deletes acknowledged sightings.
    pub fn remove(&self, seqs: &[i64]) -> Result<(), SpoolError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        self.delete_locked(&conn, seqs)
    }

    fn delete_locked(&self, conn: &Connection, seqs: &[i64]) -> Result<(), SpoolError> {
        self.recover_space(conn);
        self.delete_rows(conn, seqs).map_err(|e| match self.note_disk_full(&e) {
            true => SpoolError::DiskFull { path: self.path.clone() },
            false => SpoolError::Sqlite(e),
        })
    }

    /// Whether `e` is a full disk; if so, the next write tries to recover space first.
    fn note_disk_full(&self, e: &rusqlite::Error) -> bool {
        let full = e.sqlite_error_code() == Some(ErrorCode::DiskFull);
        if full {
            self.disk_full.store(true, Ordering::Relaxed);
        }
        full
    }

    /// After a full disk: copy the WAL into the database and truncate it, with whatever space
    /// was freed meanwhile. Cheap when there is nothing to do; retried on every write until it
    /// succeeds.
    fn recover_space(&self, conn: &Connection) {
        if !self.disk_full.load(Ordering::Relaxed) {
            return;
        }
        if let Ok(0) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0)) {
            self.disk_full.store(false, Ordering::Relaxed);
            tracing::info!(spool = %self.path.display(), "disk space is back: the spool's WAL was checkpointed and truncated");
        }
    }

    fn delete_rows(&self, conn: &Connection, seqs: &[i64]) -> rusqlite::Result<()> {
        let tx = conn.unchecked_transaction()?;
        let (mut rows, mut bytes) = (0u64, 0u64);
        {
            let mut delete = tx.prepare_cached("DELETE FROM queue WHERE seq = ?1 RETURNING length(body)")?;
            for seq in seqs {
                if let Some(len) = delete.query_map([seq], |r| r.get::<_, i64>(0))?.next() {
                    rows += 1;
                    bytes += len? as u64;
                }
            }
        }
        tx.commit()?;
        self.rows.fetch_sub(rows, Ordering::Relaxed);
        self.bytes.fetch_sub(bytes, Ordering::Relaxed);
        Ok(())
    }

    /// Sightings waiting for an acknowledgement.
    pub fn len(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of sightings waiting (payload, not file size).
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// Errors that mean the file is not a usable database (as opposed to, say, permissions or a
/// lock held by another agent, where moving the file aside would lose a good queue).
fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sighting(id: &str) -> v1::Sighting {
        v1::Sighting { id: id.into(), indicator: "evil.example".into(), count: 1, ..Default::default() }
    }

    #[test]
    fn queue_survives_reopen_and_is_deleted_on_ack_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.sqlite");
        let spool = Spool::open(&path, 1 << 20).unwrap();
        let pushed = spool.push(&[sighting("a"), sighting("b"), sighting("a")]);
        assert_eq!((pushed.queued, pushed.duplicate), (2, 1));
        let first = spool.peek(0, 1).unwrap();
        assert_eq!(first[0].sighting.id, "a");
        assert_eq!(spool.peek(first[0].seq, 10).unwrap()[0].sighting.id, "b", "peek after the in-flight");
        drop(spool);

        let spool = Spool::open(&path, 1 << 20).unwrap();
        assert_eq!(spool.len(), 2);
        let all = spool.peek(0, 10).unwrap();
        spool.remove(&[all[0].seq]).unwrap();
        drop(spool);
        let spool = Spool::open(&path, 1 << 20).unwrap();
        let left: Vec<String> = spool.peek(0, 10).unwrap().into_iter().map(|s| s.sighting.id).collect();
        assert_eq!(left, ["b"]);
        assert_eq!(spool.bytes(), sighting("b").encoded_len() as u64);
    }

    #[test]
    fn a_full_spool_refuses_new_sightings_and_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let one = sighting("x0").encoded_len() as u64;
        let spool = Spool::open(&dir.path().join("s"), one * 3).unwrap();
        let batch: Vec<_> = (0..5).map(|i| sighting(&format!("x{i}"))).collect();
        let pushed = spool.push(&batch);
        assert_eq!((pushed.queued, pushed.refused_full), (3, 2));
        let ids: Vec<String> = spool.peek(0, 10).unwrap().into_iter().map(|s| s.sighting.id).collect();
        assert_eq!(ids, ["x0", "x1", "x2"], "the oldest are kept");
    }

    #[test]
    fn a_corrupt_file_is_moved_aside_and_a_new_spool_started() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.sqlite");
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        let spool = Spool::open(&path, 1 << 20).unwrap();
        assert!(spool.is_empty());
        assert_eq!(spool.push(&[sighting("a")]).queued, 1);
        let aside = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains(".corrupt-"))
            .count();
        assert_eq!(aside, 1);
    }

    #[test]
    fn undecodable_rows_are_dropped_not_retried() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.sqlite");
        let spool = Spool::open(&path, 1 << 20).unwrap();
        spool.push(&[sighting("good")]);
        {
            let conn = spool.conn.lock().unwrap();
            conn.execute("INSERT INTO queue (id, body) VALUES ('bad', x'ffffffff')", []).unwrap();
        }
        let rows: Vec<String> = spool.peek(0, 10).unwrap().into_iter().map(|s| s.sighting.id).collect();
        assert_eq!(rows, ["good"]);
        assert_eq!(spool.peek(0, 10).unwrap().len(), 1);
    }
}
