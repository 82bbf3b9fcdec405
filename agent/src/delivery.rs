//! Delivery: the spool drained over the `Report` stream — the one client of that stream.
//!
//! The service ([`run`]) drains its spool for as long as the agent runs; `replay
//! --collector`, the demo and the tests deliver a list of sightings once ([`deliver_once`])
//! through the same session code, from a temporary spool, so there is one implementation of
//! the protocol (sequence numbers, the ack window, deletion on acknowledgement) to trust.
//!
//! One session = one connection and one stream. Up to [`IN_FLIGHT`] batches are outstanding;
//! each batch's rows are deleted from the spool only when its acknowledgement arrives (which
//! the collector sends after a durable commit). Any error ends the session; the next one, after
//! a jittered backoff, starts again from the oldest row still in the spool — unacknowledged
//! batches are resent, and the collector's dedup by sighting id stores them once. A refusal
//! for our ingest rate (`RESOURCE_EXHAUSTED` with `retry-after-ms`) is not a broken
//! connection: the next session waits what it was told and opens its stream on the same
//! connection, without a new TLS handshake.

use crate::counters::Counters;
use crate::spool::Spool;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};
use tonic::transport::Channel;
use zdn_backoff::Backoff;
use zdn_proto::RETRY_AFTER;
use zdn_proto::v1::{self, sighting_service_client::SightingServiceClient};

/// Batches sent and not yet acknowledged, at most.
pub const IN_FLIGHT: usize = 4;
/// How long a stopping agent waits for outstanding acknowledgements.
pub const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// How the delivery loop reaches the collector.
pub struct Uplink {
    pub url: String,
    pub bundle: Option<zdn_transport::Bundle>,
    pub batch_size: usize,
    pub reconnect_max: Duration,
}

impl Uplink {
    pub async fn connect(&self) -> Result<Channel, zdn_transport::client::ConnectError> {
        zdn_transport::client::connect(&self.url, self.bundle.as_ref()).await
    }
}

/// Why a delivery session ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Connect(#[from] zdn_transport::client::ConnectError),
    #[error("report stream: {0}")]
    Status(#[from] tonic::Status),
    #[error("collector closed the report stream")]
    Closed,
    #[error("collector acknowledged batch {got}, expected {expected}")]
    OutOfOrder { expected: u64, got: u64 },
    #[error(transparent)]
    Spool(#[from] crate::spool::SpoolError),
    #[error("cannot make the delivery's temporary spool: {0}")]
    TempDir(std::io::Error),
    #[error("{0} sightings could not be written to the delivery's temporary spool")]
    NotSpooled(u64),
}

impl SessionError {
    /// The collector's answer, when it was one.
    pub fn status(&self) -> Option<&tonic::Status> {
        match self {
            SessionError::Status(status) => Some(status),
            _ => None,
        }
    }

    /// How long the collector asked us to wait (a batch over our ingest rate is refused with
    /// `RESOURCE_EXHAUSTED` and a `retry-after-ms` header).
    fn asked_to_wait(&self) -> Option<Duration> {
        let SessionError::Status(status) = self else { return None };
        if status.code() != tonic::Code::ResourceExhausted {
            return None;
        }
        let ms: u64 = status.metadata().get(RETRY_AFTER)?.to_str().ok()?.parse().ok()?;
        Some(Duration::from_millis(ms.min(600_000)))
    }
}

/// Sends what the spool holds until `stop` turns true; then waits up to [`DRAIN_GRACE`] for
/// outstanding acknowledgements and returns.
pub async fn run(
    uplink: Arc<Uplink>,
    spool: Arc<Spool>,
    counters: Arc<Counters>,
    spooled: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(500), uplink.reconnect_max);
    let mut channel = None;
    while !*stop.borrow() {
        let session = Session {
            uplink: &uplink,
            spool: &spool,
            counters: &counters,
            spooled: &spooled,
            until_empty: false,
        };
        let result = session.run(&mut channel, &mut stop, &mut backoff, &mut Delivered::default()).await;
        match result {
            Ok(()) => return,
            Err(e) => {
                let jittered = backoff.next_wait();
                let (queued, asked) = (spool.len(), e.asked_to_wait());
                if asked.is_none() {
                    channel = None; // anything but a rate refusal: connect afresh
                }
                let wait = asked.map_or(jittered, |hint| hint.max(jittered));
                let retry_in_ms = wait.as_millis() as u64;
                if asked.is_some() {
                    tracing::warn!(error = %e, retry_in_ms, queued, "collector asked us to wait; sightings stay in the spool");
                } else if let SessionError::Spool(_) = e {
                    tracing::error!(error = %e, retry_in_ms, queued, "the agent's spool failed (a local problem, not the collector); sightings stay in the spool");
                } else {
                    tracing::warn!(error = %e, retry_in_ms, queued, "collector unreachable; sightings stay in the spool");
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }
}

/// What the collector said about the sightings delivered.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub batches: u64,
    pub stored: u64,
    pub duplicates: u64,
    pub rejected: u64,
}

/// A one-shot delivery that ended early: what was acknowledged before, and why it ended.
#[derive(Debug, thiserror::Error)]
#[error("{cause} (after the collector acknowledged {} batches)", delivered.batches)]
pub struct DeliveryError {
    pub delivered: Delivered,
    pub cause: SessionError,
}

/// Delivers `sightings` once, in batches of `uplink.batch_size`, through the session code the
/// service uses: they are written to a temporary spool, which one session drains until it is
/// empty and every batch is acknowledged. Any error ends it (no retry); what was acknowledged
/// before is in the error.
pub async fn deliver_once(uplink: &Uplink, sightings: &[v1::Sighting]) -> Result<Delivered, DeliveryError> {
    let mut delivered = Delivered::default();
    let fail = |delivered, cause| DeliveryError { delivered, cause };
    let dir = tempfile::Builder::new()
        .prefix("zdn-delivery-")
        .tempdir()
        .map_err(|e| fail(delivered, SessionError::TempDir(e)))?;
    let spool =
        Spool::open(&dir.path().join("spool.sqlite"), u64::MAX).map_err(|e| fail(delivered, e.into()))?;
    let pushed = spool.push(sightings);
    if pushed.refused_full + pushed.refused_disk > 0 {
        return Err(fail(delivered, SessionError::NotSpooled(pushed.refused_full + pushed.refused_disk)));
    }
    let (spool, counters, spooled) = (Arc::new(spool), Counters::default(), Notify::new());
    let (_stop_tx, mut stop) = watch::channel(false);
    let mut backoff = Backoff::new(Duration::from_millis(500), uplink.reconnect_max);
    let session =
        Session { uplink, spool: &spool, counters: &counters, spooled: &spooled, until_empty: true };
    match session.run(&mut None, &mut stop, &mut backoff, &mut delivered).await {
        Ok(()) => Ok(delivered),
        Err(cause) => Err(fail(delivered, cause)),
    }
}

/// One connection's worth of delivery from a spool.
struct Session<'a> {
    uplink: &'a Uplink,
    spool: &'a Arc<Spool>,
    counters: &'a Counters,
    spooled: &'a Notify,
    /// End once the spool is empty and every batch acknowledged (a one-shot delivery), rather
    /// than wait for more (the service).
    until_empty: bool,
}

impl Session<'_> {
    /// Drains the spool over one `Report` stream, on `channel` (connected first if `None`).
    async fn run(
        &self,
        channel: &mut Option<Channel>,
        stop: &mut watch::Receiver<bool>,
        backoff: &mut Backoff,
        delivered: &mut Delivered,
    ) -> Result<(), SessionError> {
        let Session { uplink, spool, counters, spooled, until_empty } = *self;
        let channel = match channel {
            Some(channel) => channel.clone(),
            None => channel.insert(uplink.connect().await?).clone(),
        };
        let (tx, rx) = mpsc::channel::<v1::SightingBatch>(IN_FLIGHT);
        let mut client = SightingServiceClient::new(channel);
        let mut acks = client.report(tokio_stream::wrappers::ReceiverStream::new(rx)).await?.into_inner();
        tracing::info!(url = %uplink.url, queued = spool.len(), "report stream open");
        let mut in_flight: VecDeque<(u64, Vec<i64>)> = VecDeque::new();
        let (mut sequence, mut last_row) = (0u64, 0i64);
        let mut stopping = false;
        let deadline = tokio::time::sleep(Duration::MAX);
        tokio::pin!(deadline);
        loop {
            while !stopping && in_flight.len() < IN_FLIGHT {
                let rows = {
                    let spool = spool.clone();
                    let limit = uplink.batch_size;
                    tokio::task::spawn_blocking(move || spool.peek(last_row, limit))
                        .await
                        .expect("spool peek does not panic")?
                };
                let Some(last) = rows.last() else {
                    if until_empty && in_flight.is_empty() {
                        return Ok(());
                    }
                    break;
                };
                last_row = last.seq;
                sequence += 1;
                let seqs = rows.iter().map(|r| r.seq).collect();
                // Rows spooled by an agent before values were cut to the contract's limits
                // would be refused (and deleted): fit them too.
                let sightings = rows
                    .into_iter()
                    .map(|mut r| {
                        zdn_proto::limits::fit(&mut r.sighting);
                        r.sighting
                    })
                    .collect();
                let batch = v1::SightingBatch { sequence, sightings };
                if tx.send(batch).await.is_err() {
                    // The request half is gone when the collector already answered the stream
                    // with an error (a rate refusal, say): that answer, not "closed", says what
                    // to do next (wait on this connection, or connect afresh).
                    // Acknowledgements still before that answer are passed over: their rows
                    // stay in the spool and go again (ids make that harmless).
                    loop {
                        match acks.message().await {
                            Ok(Some(_)) => continue,
                            Ok(None) => return Err(SessionError::Closed),
                            Err(status) => return Err(SessionError::Status(status)),
                        }
                    }
                }
                in_flight.push_back((sequence, seqs));
            }
            if stopping && in_flight.is_empty() {
                return Ok(());
            }
            tokio::select! {
                ack = acks.message() => {
                    let ack = ack?.ok_or(SessionError::Closed)?;
                    let Some((expected, seqs)) = in_flight.pop_front() else {
                        return Err(SessionError::OutOfOrder { expected: 0, got: ack.sequence });
                    };
                    if ack.sequence != expected {
                        return Err(SessionError::OutOfOrder { expected, got: ack.sequence });
                    }
                    if ack.rejected > 0 {
                        // Resending cannot fix what the collector found invalid; it is logged here
                        // and counted there.
                        tracing::warn!(batch = ack.sequence, rejected = ack.rejected, reason = %ack.reject_reason, "collector rejected sightings");
                    }
                    let spool = spool.clone();
                    tokio::task::spawn_blocking(move || spool.remove(&seqs)).await.expect("spool remove does not panic")?;
                    counters.sent.inc_by(u64::from(ack.stored) + u64::from(ack.duplicates));
                    delivered.batches += 1;
                    delivered.stored += u64::from(ack.stored);
                    delivered.duplicates += u64::from(ack.duplicates);
                    delivered.rejected += u64::from(ack.rejected);
                    backoff.reset();
                }
                _ = spooled.notified(), if !stopping && in_flight.len() < IN_FLIGHT => {}
                // The spool may have rows the notification missed (written before this session).
                _ = tokio::time::sleep(Duration::from_secs(1)), if !stopping => {}
                _ = stop.changed(), if !stopping => {
                    stopping = true;
                    deadline.as_mut().reset(tokio::time::Instant::now() + DRAIN_GRACE);
                }
                _ = &mut deadline => {
                    tracing::warn!(outstanding = in_flight.len(), "stopping before the collector acknowledged every batch; they stay in the spool");
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_over_the_ingest_rate_says_how_long_to_wait() {
        let mut refused = tonic::Status::resource_exhausted("over the rate");
        refused.metadata_mut().insert(RETRY_AFTER, "1500".parse().unwrap());
        assert_eq!(SessionError::Status(refused).asked_to_wait(), Some(Duration::from_millis(1500)));
        let mut other = tonic::Status::unavailable("down");
        other.metadata_mut().insert(RETRY_AFTER, "1500".parse().unwrap());
        assert_eq!(SessionError::Status(other).asked_to_wait(), None, "only a rate refusal carries a wait");
        assert_eq!(SessionError::Closed.asked_to_wait(), None);
        let mut absurd = tonic::Status::resource_exhausted("x");
        absurd.metadata_mut().insert(RETRY_AFTER, "99999999999".parse().unwrap());
        assert_eq!(SessionError::Status(absurd).asked_to_wait(), Some(Duration::from_secs(600)), "capped");
    }
}
