//! Lock stripes: how concurrent collector instances serialise the subjects they write.
//!
//! A subject (an indicator, a campaign) hashes to one of [`LOCK_STRIPES`] stripes; a batch
//! takes the transaction-scoped advisory locks of its subjects' stripes in ascending order
//! (no deadlock), so at most [`LOCK_STRIPES`] locks per transaction — a stock server's lock
//! table holds `max_locks_per_transaction` (64) × `max_connections` (100), which one advisory
//! lock per indicator (up to 1000 in a batch) exhausted.

use crate::store::StoreError;
use crate::store::incidents::Scope;

/// How many advisory locks a transaction takes at most.
const LOCK_STRIPES: i64 = 64;
/// The stripes' advisory-lock keys start here ("zdn" in ASCII, shifted): a key space of their
/// own, apart from the migration lock.
const STRIPE_KEYS: i64 = 0x7a_646e << 16;

/// The stripe of a subject: from the first 8 bytes of its SHA-256, the same in every instance
/// and version (unlike std's hasher).
fn stripe(scope: Scope, subject: &str) -> i64 {
    let key = format!("{}:{subject}", scope.as_str());
    let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    i64::from_be_bytes(first).rem_euclid(LOCK_STRIPES)
}

/// Locks the stripes of `subjects` (all of them when `None`), in ascending order.
pub(super) async fn lock_stripes(
    tx: &tokio_postgres::Transaction<'_>,
    subjects: &[(Scope, &str)],
) -> Result<(), StoreError> {
    let mut stripes: Vec<i64> = subjects.iter().map(|(scope, subject)| stripe(*scope, subject)).collect();
    stripes.sort_unstable();
    stripes.dedup();
    take(tx, &stripes).await
}

/// Takes the stripes' locks; a function scan over the sorted array takes them in array order.
async fn take(tx: &tokio_postgres::Transaction<'_>, stripes: &[i64]) -> Result<(), StoreError> {
    let keys: Vec<i64> = stripes.iter().map(|s| STRIPE_KEYS + s).collect();
    tx.execute("SELECT pg_advisory_xact_lock(k) FROM unnest($1::BIGINT[]) AS k", &[&keys]).await?;
    Ok(())
}

/// Locks every stripe: for the changes that may touch any subject (withdrawal, sweep).
pub(super) async fn lock_all_stripes(tx: &tokio_postgres::Transaction<'_>) -> Result<(), StoreError> {
    let stripes: Vec<i64> = (0..LOCK_STRIPES).collect();
    take(tx, &stripes).await
}
