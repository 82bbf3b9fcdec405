//! Indicator sync: fetch the collector's signed set and install it as the last good set.
//!
//! The collector streams a full set as chunks of one signed compiled set; this reassembles
//! them (bounded by [`MAX_SET_BYTES`], offsets checked), then hands the bytes to
//! `zdn_indicators::signing::install`, which verifies them against the pinned key and replaces
//! the installed set only with a newer, plausible one.
//!
//! [`sync`] is one exchange (`zdn-agent sync-indicators`); [`follow`] is the running agent's
//! subscription: it stays on the stream, installs every version that verifies, says so on a
//! watch channel (the service then rebuilds and swaps the live set), and reconnects with
//! backoff when the stream breaks. A refused update (tampered, wrong key, older, implausible)
//! is counted and logged, and the installed set stays in force.

use crate::backoff::Backoff;
use crate::counters::Counters;
use crate::delivery::Uplink;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::watch;
use tonic::transport::Channel;
use zdn_indicators::IndicatorSet;
use zdn_indicators::signing::{self, SignedError, VerifyingKey};
use zdn_proto::v1::{self, indicator_service_client::IndicatorServiceClient};

/// The largest signed set accepted (the 1.85M real trails compile to 38 MB).
pub const MAX_SET_BYTES: u64 = 512 << 20;

#[derive(Debug, Error)]
pub enum SyncError {
    #[error("collector refused the sync: {0}")]
    Refused(tonic::Status),
    #[error("sync stream broke: {0}")]
    Broken(tonic::Status),
    #[error("the collector's set is malformed in transit: {0}")]
    Malformed(&'static str),
    #[error(transparent)]
    Signed(#[from] SignedError),
}

/// What a sync did.
pub enum Synced {
    /// The collector has nothing newer than `current_version` (or publishes nothing).
    Current,
    Installed {
        version: u64,
        set: Box<IndicatorSet>,
    },
}

/// Asks for anything newer than the installed set, waits up to `wait` for it, and installs it.
pub async fn sync(
    channel: Channel,
    pinned: &VerifyingKey,
    installed: &Path,
    force: bool,
    wait: Duration,
) -> Result<Synced, SyncError> {
    let current_version = match std::fs::read(installed) {
        Ok(bytes) => signing::verify(&bytes, pinned).map_or(0, |(_, v)| v),
        Err(_) => 0,
    };
    let mut client = IndicatorServiceClient::new(channel);
    let mut updates =
        client.sync(v1::SyncRequest { current_version }).await.map_err(SyncError::Refused)?.into_inner();
    let mut set = Reassembly::default();
    loop {
        let next = match tokio::time::timeout(wait, updates.message()).await {
            Err(_) if set.is_empty() => return Ok(Synced::Current),
            Err(_) => return Err(SyncError::Malformed("the set stopped arriving half way")),
            Ok(next) => next.map_err(SyncError::Broken)?,
        };
        let Some(update) = next else { return Ok(Synced::Current) };
        if let Some(bytes) = set.push(&update)? {
            let (set, version) = signing::install(&bytes, pinned, installed, force)?;
            return Ok(Synced::Installed { version, set: Box::new(set) });
        }
    }
}

/// Follows the collector's published set until `stop` turns true. Each installed version is
/// sent on `installed_version`.
pub async fn follow(
    uplink: Arc<Uplink>,
    pinned: VerifyingKey,
    installed: std::path::PathBuf,
    counters: Arc<Counters>,
    installed_version: watch::Sender<u64>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(Duration::from_secs(1), uplink.reconnect_max);
    while !*stop.borrow() {
        let session =
            follow_session(&uplink, &pinned, &installed, &counters, &installed_version, &mut backoff);
        let error = tokio::select! {
            e = session => e,
            _ = stop.changed() => return,
        };
        let wait = backoff.next_wait();
        tracing::warn!(error = %error, retry_in_ms = wait.as_millis() as u64, "indicator subscription interrupted; the installed set stays in force");
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
    }
}

/// One subscription; returns why it ended.
async fn follow_session(
    uplink: &Uplink,
    pinned: &VerifyingKey,
    installed: &Path,
    counters: &Counters,
    installed_version: &watch::Sender<u64>,
    backoff: &mut Backoff,
) -> anyhow::Error {
    let channel = match uplink.connect().await {
        Ok(channel) => channel,
        Err(e) => return e.into(),
    };
    let current_version = match std::fs::read(installed) {
        Ok(bytes) => signing::verify(&bytes, pinned).map_or(0, |(_, v)| v),
        Err(_) => 0,
    };
    let mut client = IndicatorServiceClient::new(channel);
    let mut updates = match client.sync(v1::SyncRequest { current_version }).await {
        Ok(response) => response.into_inner(),
        Err(status) => return SyncError::Refused(status).into(),
    };
    backoff.reset();
    tracing::info!(current_version, "subscribed to the collector's indicator set");
    let mut set = Reassembly::default();
    loop {
        let update = match updates.message().await {
            Ok(Some(update)) => update,
            Ok(None) => return anyhow::anyhow!("the collector ended the indicator stream"),
            Err(status) => return SyncError::Broken(status).into(),
        };
        let bytes = match set.push(&update) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => continue,
            Err(e) => {
                counters.updates_refused.inc_by(1);
                return e.into();
            }
        };
        let (pinned, installed) = (*pinned, installed.to_owned());
        let outcome =
            tokio::task::spawn_blocking(move || signing::install(&bytes, &pinned, &installed, false)).await;
        match outcome.expect("install does not panic") {
            Ok((new, version)) => {
                tracing::info!(version, indicators = new.len(), "installed a new indicator set");
                installed_version.send_replace(version);
            }
            Err(e) => {
                counters.updates_refused.inc_by(1);
                tracing::error!(version = update.version, error = %e, "indicator update refused; the installed set stays in force");
            }
        }
    }
}

/// A signed set put together from its chunks.
#[derive(Default)]
struct Reassembly {
    bytes: Vec<u8>,
}

impl Reassembly {
    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Adds a chunk; returns the whole set once the last chunk is in.
    fn push(&mut self, update: &v1::IndicatorUpdate) -> Result<Option<Vec<u8>>, SyncError> {
        if update.signed_set_size > MAX_SET_BYTES {
            return Err(SyncError::Malformed("set larger than this agent accepts"));
        }
        if update.signed_set_offset != self.bytes.len() as u64 {
            return Err(SyncError::Malformed("chunk out of order"));
        }
        self.bytes.extend_from_slice(&update.signed_set_chunk);
        let have = self.bytes.len() as u64;
        if have > update.signed_set_size {
            return Err(SyncError::Malformed("chunks longer than the announced size"));
        }
        Ok((have == update.signed_set_size).then(|| std::mem::take(&mut self.bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(data: &[u8], offset: u64, size: u64) -> v1::IndicatorUpdate {
        v1::IndicatorUpdate {
            signed_set_chunk: data.to_vec(),
            signed_set_offset: offset,
            signed_set_size: size,
            ..Default::default()
        }
    }

    #[test]
    fn chunks_are_reassembled_in_order_and_bad_sequences_refused() {
        let mut r = Reassembly::default();
        assert!(r.push(&chunk(b"abc", 0, 5)).unwrap().is_none());
        assert_eq!(r.push(&chunk(b"de", 3, 5)).unwrap().as_deref(), Some(&b"abcde"[..]));

        let mut gap = Reassembly::default();
        gap.push(&chunk(b"abc", 0, 9)).unwrap();
        assert!(matches!(gap.push(&chunk(b"xyz", 4, 9)), Err(SyncError::Malformed("chunk out of order"))));
        let mut long = Reassembly::default();
        assert!(matches!(long.push(&chunk(b"abcdef", 0, 4)), Err(SyncError::Malformed(_))));
        let mut huge = Reassembly::default();
        assert!(matches!(huge.push(&chunk(b"a", 0, MAX_SET_BYTES + 1)), Err(SyncError::Malformed(_))));
    }
}
