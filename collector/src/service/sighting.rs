//! `SightingService.Report`: agents' batches in, acknowledgements out after a durable commit.

use super::{Shared, blocking};
use crate::access::authorise_agent;
use crate::shutdown::stopping;
use crate::store::NewSighting;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use zdn_proto::v1::{self, sighting_service_server::SightingService};
use zdn_proto::{kind_from_wire, via_from_wire};
use zdn_timestamps::now_ms;

pub struct Ingest {
    pub shared: Shared,
}

// Field limits: a sighting is small; anything larger is malformed or hostile (agents cut
// what they report to fit, `zdn_proto::limits::fit`).
use zdn_proto::limits::{MAX_ID, MAX_SHORT, MAX_VALUE};

/// Checks one sighting; the error names the first problem.
pub fn validate(s: &v1::Sighting) -> Result<NewSighting<'_>, String> {
    if s.id.is_empty() || s.id.len() > MAX_ID || !s.id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("sighting id must be 1-{MAX_ID} printable ASCII characters"));
    }
    let kind = kind_from_wire(s.kind).map_err(|e| format!("sighting {}: {e}", s.id))?;
    let via = via_from_wire(s.via).map_err(|e| format!("sighting {}: {e}", s.id))?;
    if s.indicator.is_empty() || s.indicator.len() > MAX_VALUE || s.observed.len() > MAX_VALUE {
        return Err(format!(
            "sighting {}: indicator must be 1-{MAX_VALUE} bytes, observed at most {MAX_VALUE}",
            s.id
        ));
    }
    if [&s.src, &s.dst_ip, &s.proto, &s.indicator_id, &s.resolved_name].iter().any(|f| f.len() > MAX_SHORT) {
        return Err(format!(
            "sighting {}: src, dst_ip, proto, indicator_id and resolved_name are limited to {MAX_SHORT} bytes",
            s.id
        ));
    }
    if s.count == 0 || s.first_seen_unix_ms > s.last_seen_unix_ms || s.dst_port > 65_535 {
        return Err(format!(
            "sighting {}: count must be >= 1, first_seen <= last_seen, dst_port <= 65535",
            s.id
        ));
    }
    Ok(NewSighting { wire: s, kind, via, campaign: None })
}

#[tonic::async_trait]
impl SightingService for Ingest {
    type ReportStream = ReceiverStream<Result<v1::BatchAck, Status>>;

    async fn report(
        &self,
        request: Request<Streaming<v1::SightingBatch>>,
    ) -> Result<Response<Self::ReportStream>, Status> {
        let peer = authorise_agent(&request)?;
        let mut inbound = request.into_inner();
        let (acks, rx) = mpsc::channel(32);
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let mut last_sequence = 0;
            loop {
                let next = tokio::select! {
                    next = inbound.message() => next,
                    () = stopping(shared.shutdown.clone()) => break,
                };
                let batch = match next {
                    Ok(Some(batch)) => batch,
                    Ok(None) => break,
                    Err(status) => {
                        // An undecodable or oversized message: the stream ends with its
                        // error, never with OK (the agent must see that it was not taken).
                        // When the agent went away, nobody reads this and nothing is lost.
                        tracing::warn!(agent = %peer.identity, %status, "report stream ended on an error");
                        let _ = acks.send(Err(status)).await;
                        break;
                    }
                };
                let outcome = ingest(&shared, &peer, batch, &mut last_sequence).await;
                let failed = outcome.is_err();
                if acks.send(outcome).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

async fn ingest(
    shared: &Shared,
    peer: &zdn_transport::server::Peer,
    batch: v1::SightingBatch,
    last_sequence: &mut u64,
) -> Result<v1::BatchAck, Status> {
    if batch.sequence <= *last_sequence {
        return Err(Status::invalid_argument(format!(
            "batch sequence {} does not follow {}",
            batch.sequence, last_sequence
        )));
    }
    let max = shared.config.max_batch_sightings;
    if batch.sightings.len() > max {
        return Err(Status::invalid_argument(format!(
            "batch of {} sightings exceeds the limit of {max}",
            batch.sightings.len()
        )));
    }
    shared.ingest_limits.admit(&peer.identity, batch.sightings.len())?;
    *last_sequence = batch.sequence;
    let store = shared.store.clone();
    let (participant, agent) = (peer.identity.participant.clone(), peer.identity.name.clone());
    // The published version now: it names each indicator's campaign.
    let published = shared.publishing.subscribe().borrow().clone();
    let metrics = shared.metrics.clone();
    let (ingested, rejected, reject_reason) = blocking(move || {
        let mut valid = Vec::with_capacity(batch.sightings.len());
        let mut reasons = Vec::new();
        for s in &batch.sightings {
            match validate(s) {
                Ok(mut v) => {
                    v.campaign = published.campaign_of(v.kind, &s.indicator);
                    valid.push(v);
                }
                Err(reason) => reasons.push(reason),
            }
        }
        let timer = metrics.store_ingest_seconds.start_timer();
        let ingested = store.ingest(&participant, &agent, &valid, now_ms())?;
        timer.observe_duration();
        Ok((ingested, reasons.len() as u32, reasons.into_iter().next().unwrap_or_default()))
    })
    .await?;
    let m = &shared.metrics;
    m.sightings_stored.inc_by(u64::from(ingested.stored));
    m.sightings_duplicate.inc_by(u64::from(ingested.duplicates));
    m.sightings_rejected.inc_by(u64::from(rejected));
    if rejected > 0 {
        tracing::warn!(agent = %peer.identity, rejected, reason = %reject_reason, "rejected malformed sightings");
    }
    if ingested.clamped_future > 0 || ingested.too_old_to_correlate > 0 {
        tracing::warn!(
            agent = %peer.identity,
            clamped_future = ingested.clamped_future,
            too_old = ingested.too_old_to_correlate,
            "sightings stamped far from the collector's clock: stored, correlated at the collector's time or not at all (check the agent's clock)"
        );
    }
    if !shared.events_from_store {
        for event in ingested.changes {
            // No subscribers is fine; the correlation is in the store either way.
            let _ = shared.events.send(event);
        }
    }
    Ok(v1::BatchAck {
        sequence: batch.sequence,
        stored: ingested.stored,
        duplicates: ingested.duplicates,
        rejected,
        reject_reason,
        clamped_future: ingested.clamped_future,
        too_old_to_correlate: ingested.too_old_to_correlate,
    })
}
