//! Indicator sync: fetch the collector's signed set and install it as the last good set.
//!
//! The collector streams a full set as chunks of one signed compiled set; this reassembles
//! them (bounded by [`MAX_SET_BYTES`], offsets checked), then hands the bytes to
//! `zdn_indicators::signing::install`, which verifies them against the pinned key and replaces
//! the installed set only with a newer, plausible one. (Staying subscribed and swapping the
//! live set without stopping is the agent service's job, issue 5.)

use std::path::Path;
use std::time::Duration;
use thiserror::Error;
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
