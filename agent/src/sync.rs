//! Indicator sync: fetch the collector's signed set and install it as the last good set.
//!
//! The collector streams a full set as chunks of one signed compiled set; this reassembles
//! them (bounded by [`MAX_SET_BYTES`], offsets checked), then hands the bytes to
//! `zdn_indicators::signing::install`, which verifies them against the pinned key and replaces
//! the installed set only with a newer, plausible one. When the agent already holds a recent
//! version, the collector sends deltas instead ([`apply_delta`]): the agent applies each to its
//! installed set, rebuilds the signed envelope from the result and the signature the delta
//! carries, and installs it the same way — so a delta that does not produce exactly the set
//! the CERT signed is refused, and the agent asks for the whole set instead.
//!
//! [`sync`] is one exchange (`zdn-agent sync-indicators`); [`follow`] is the running agent's
//! subscription: it stays on the stream, installs every version that verifies, says so on a
//! watch channel (the service then rebuilds and swaps the live set), and reconnects with
//! backoff when the stream breaks. A refused update (tampered, wrong key, older, implausible)
//! is counted and logged, and the installed set stays in force.

use crate::counters::Counters;
use crate::delivery::Uplink;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::watch;
use tonic::transport::Channel;
use zdn_backoff::Backoff;
use zdn_indicators::IndicatorSet;
use zdn_indicators::set::compiled;
use zdn_indicators::set::delta::Change;
use zdn_indicators::signing::{self, SignedError, VerifyingKey};
use zdn_proto::v1::{self, indicator_service_client::IndicatorServiceClient};
use zdn_proto::{UnknownEnum, indicator_from_wire, kind_from_wire};

/// The largest signed set accepted (the 1.85M real trails compile to 38 MB).
pub const MAX_SET_BYTES: u64 = 512 << 20;

/// How long a one-shot sync waits for the next delta of a chain before it is done.
const CHAIN_PAUSE: Duration = Duration::from_secs(1);

#[derive(Debug, Error)]
pub enum SyncError {
    #[error("collector refused the sync: {0}")]
    Refused(tonic::Status),
    #[error("sync stream broke: {0}")]
    Broken(tonic::Status),
    #[error("the collector's set is malformed in transit: {0}")]
    Malformed(&'static str),
    #[error("indicator delta not applied ({0}); the whole set is asked for instead")]
    Delta(String),
    #[error(transparent)]
    Signed(#[from] SignedError),
}

/// The version of the set installed at `installed`, 0 if none verifies.
fn version_installed(installed: &Path, pinned: &VerifyingKey) -> u64 {
    match std::fs::read(installed) {
        Ok(bytes) => signing::verify(&bytes, pinned).map_or(0, |(_, v)| v),
        Err(_) => 0,
    }
}

/// Applies a delta `update` to the set installed at `installed` and installs the result if it
/// is the set the collector signed. Blocking.
pub fn apply_delta(
    update: v1::IndicatorUpdate,
    pinned: &VerifyingKey,
    installed: &Path,
    force: bool,
) -> Result<(IndicatorSet, u64), SyncError> {
    let delta = |m: String| SyncError::Delta(m);
    let current = std::fs::read(installed).map_err(|e| delta(format!("no installed set: {e}")))?;
    let (set, version) = signing::verify(&current, pinned)?;
    if version != update.base_version {
        return Err(delta(format!(
            "it applies to version {}, version {version} is installed",
            update.base_version
        )));
    }
    let unknown = |e: UnknownEnum| delta(e.to_string());
    let added = update.added.into_iter().map(indicator_from_wire).collect::<Result<Vec<_>, _>>();
    let removed = update.removed.into_iter().map(|w| Ok((kind_from_wire(w.kind)?, w.value)));
    let change = Change {
        added: added.map_err(unknown)?,
        removed: removed.collect::<Result<Vec<_>, UnknownEnum>>().map_err(unknown)?,
    };
    let body = compiled::encode(&set.apply(&change), update.version);
    let envelope = signing::assemble(pinned, &update.signature, &body)?;
    match signing::install(&envelope, pinned, installed, force) {
        Err(SignedError::BadSignature) => Err(delta("the result is not the set the collector signed".into())),
        other => Ok(other?),
    }
}

/// Takes one update: a delta is applied at once, a chunk added to `set`, and a completed full
/// set installed. Returns what was installed, if anything.
async fn receive(
    update: v1::IndicatorUpdate,
    set: &mut Reassembly,
    pinned: &VerifyingKey,
    installed: &Path,
    force: bool,
) -> Result<Option<(IndicatorSet, u64)>, SyncError> {
    let (pinned, installed) = (*pinned, installed.to_owned());
    let work = if update.base_version != 0 {
        tokio::task::spawn_blocking(move || apply_delta(update, &pinned, &installed, force))
    } else {
        let Some(bytes) = set.push(&update)? else { return Ok(None) };
        tokio::task::spawn_blocking(move || Ok(signing::install(&bytes, &pinned, &installed, force)?))
    };
    work.await.expect("installing does not panic").map(Some)
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
    match sync_once(channel.clone(), pinned, installed, force, wait, false).await {
        Err(SyncError::Delta(reason)) => {
            tracing::warn!(%reason, "indicator delta not applied; asking for the whole set");
            sync_once(channel, pinned, installed, force, wait, true).await
        }
        other => other,
    }
}

/// One exchange; with `full`, whole sets only. After a chain of deltas, returns the last
/// version installed once no more updates arrive within `wait`.
async fn sync_once(
    channel: Channel,
    pinned: &VerifyingKey,
    installed: &Path,
    force: bool,
    wait: Duration,
    full: bool,
) -> Result<Synced, SyncError> {
    let current_version = version_installed(installed, pinned);
    let mut client = IndicatorServiceClient::new(channel);
    let request = v1::SyncRequest { current_version, full };
    let mut updates = client.sync(request).await.map_err(SyncError::Refused)?.into_inner();
    let mut set = Reassembly::default();
    let mut done = Synced::Current;
    let mut wait = wait;
    loop {
        let next = match tokio::time::timeout(wait, updates.message()).await {
            Err(_) if set.is_empty() => return Ok(done),
            Err(_) => return Err(SyncError::Malformed("the set stopped arriving half way")),
            Ok(next) => next.map_err(SyncError::Broken)?,
        };
        let Some(update) = next else { return Ok(done) };
        let delta = update.base_version != 0;
        if let Some((new, version)) = receive(update, &mut set, pinned, installed, force).await? {
            done = Synced::Installed { version, set: Box::new(new) };
            if !delta {
                return Ok(done);
            }
            // The steps of a chain follow each other at once; a pause means it is complete.
            wait = wait.min(CHAIN_PAUSE);
        }
    }
}

/// Where a subscription hands on what it received.
pub struct Received {
    /// Each version installed.
    pub installed_version: watch::Sender<u64>,
    /// Analysts' hunt requests, as they came (the service checks their signatures).
    pub hunts: tokio::sync::mpsc::UnboundedSender<v1::HuntRequest>,
}

/// Follows the collector's published set until `stop` turns true.
pub async fn follow(
    uplink: Arc<Uplink>,
    pinned: VerifyingKey,
    installed: std::path::PathBuf,
    counters: Arc<Counters>,
    received: Received,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(Duration::from_secs(1), uplink.reconnect_max);
    // After a delta failed to apply, the next subscription asks for whole sets.
    let mut full = false;
    while !*stop.borrow() {
        let session =
            follow_session(&uplink, &pinned, &installed, &counters, &received, &mut backoff, &mut full);
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

/// One subscription; returns why it ended. `full` asks for whole sets only; a delta that
/// fails to apply ends the subscription with `full` set, so the next one asks for the whole set.
async fn follow_session(
    uplink: &Uplink,
    pinned: &VerifyingKey,
    installed: &Path,
    counters: &Counters,
    received: &Received,
    backoff: &mut Backoff,
    full: &mut bool,
) -> anyhow::Error {
    let channel = match uplink.connect().await {
        Ok(channel) => channel,
        Err(e) => return e.into(),
    };
    let current_version = version_installed(installed, pinned);
    let mut client = IndicatorServiceClient::new(channel);
    let mut updates = match client.sync(v1::SyncRequest { current_version, full: *full }).await {
        Ok(response) => response.into_inner(),
        Err(status) => return SyncError::Refused(status).into(),
    };
    backoff.reset();
    tracing::info!(current_version, full = *full, "subscribed to the collector's indicator set");
    let mut set = Reassembly::default();
    loop {
        let update = match updates.message().await {
            Ok(Some(update)) => update,
            Ok(None) => return anyhow::anyhow!("the collector ended the indicator stream"),
            Err(status) => return SyncError::Broken(status).into(),
        };
        if let Some(hunt) = update.hunt {
            let _ = received.hunts.send(hunt);
            continue;
        }
        let (delta, version) = (update.base_version != 0, update.version);
        match receive(update, &mut set, pinned, installed, false).await {
            Ok(None) => {}
            Ok(Some((new, version))) => {
                if delta {
                    counters.deltas_applied.inc_by(1);
                } else {
                    *full = false;
                }
                tracing::info!(version, delta, indicators = new.len(), "installed a new indicator set");
                received.installed_version.send_replace(version);
            }
            Err(e @ (SyncError::Delta(_) | SyncError::Malformed(_))) => {
                counters.updates_refused.inc_by(1);
                *full |= delta;
                return e.into();
            }
            Err(e) => {
                counters.updates_refused.inc_by(1);
                tracing::error!(version, error = %e, "indicator update refused; the installed set stays in force");
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

    fn set(text: &str) -> IndicatorSet {
        IndicatorSet::new(zdn_indicators::formats::parse_plain("feed.txt", text).indicators)
    }

    #[test]
    fn a_delta_installs_only_the_set_the_collector_signed() {
        use zdn_indicators::set::delta::diff;
        let dir = tempfile::tempdir().unwrap();
        let cert = signing::Publisher::load_or_create(&dir.path().join("publish.key")).unwrap();
        let pinned = signing::parse_public_key(&cert.public_hex()).unwrap();
        let installed = dir.path().join("indicators.zdn");
        let v1 = set("evil.example
203.0.113.9
");
        signing::install(&cert.sign(&v1, 1), &pinned, &installed, false).unwrap();

        // What the collector does: apply the change to v1, sign the result, send the change.
        let change = diff(
            &v1,
            &set("evil.example
worse.example
"),
        );
        let signed = cert.sign(&v1.apply(&change), 2);
        let update = v1::IndicatorUpdate {
            version: 2,
            base_version: 1,
            added: change.added.iter().map(zdn_proto::indicator_to_wire).collect(),
            removed: change
                .removed
                .iter()
                .map(|(k, v)| v1::Indicator {
                    kind: v1::IndicatorKind::from(*k) as i32,
                    value: v.clone(),
                    ..Default::default()
                })
                .collect(),
            signature: signing::signature_of(&signed).unwrap().to_vec(),
            ..Default::default()
        };

        // Tampered (an indicator slipped in), for another base, or unsigned: refused, v1 stays.
        let mut tampered = update.clone();
        tampered.added.push(v1::Indicator {
            kind: v1::IndicatorKind::Domain as i32,
            value: "x.example".into(),
            ..Default::default()
        });
        assert!(matches!(apply_delta(tampered, &pinned, &installed, false), Err(SyncError::Delta(_))));
        let other_base = v1::IndicatorUpdate { base_version: 7, ..update.clone() };
        assert!(matches!(apply_delta(other_base, &pinned, &installed, false), Err(SyncError::Delta(_))));
        let unsigned = v1::IndicatorUpdate { signature: Vec::new(), ..update.clone() };
        assert!(apply_delta(unsigned, &pinned, &installed, false).is_err());
        assert_eq!(version_installed(&installed, &pinned), 1);

        let (new, version) = apply_delta(update, &pinned, &installed, false).unwrap();
        assert_eq!((version, new.len()), (2, 2));
        assert_eq!(std::fs::read(&installed).unwrap(), signed, "byte for byte what the collector signed");
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
