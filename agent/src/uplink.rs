//! The uplink: sightings and heartbeats to the collector over gRPC.
//!
//! `Report` is one bidirectional stream: batches go out with increasing sequence numbers, and
//! each comes back acknowledged once the collector has committed it durably. A sighting counts
//! as delivered only when its batch's ack has arrived. (The durable spool that keeps sightings
//! across collector outages and agent restarts is issue 5; here an unacknowledged batch is an
//! error the caller reports.)

use crate::sighting::Sighting;
use thiserror::Error;
use tonic::transport::Channel;
use zdn_proto::v1::sighting_service_client::SightingServiceClient;
use zdn_proto::v1::{self, fleet_service_client::FleetServiceClient};

#[derive(Debug, Error)]
pub enum UplinkError {
    #[error("collector refused the report stream: {0}")]
    Refused(tonic::Status),
    #[error("report stream broke after {acked} of {sent} batches were acknowledged: {status}")]
    Broken { acked: u64, sent: u64, status: tonic::Status },
    #[error("collector closed the stream after {acked} of {sent} batches were acknowledged")]
    Incomplete { acked: u64, sent: u64 },
    #[error("collector acknowledged batch {got}, expected {expected}")]
    OutOfOrder { expected: u64, got: u64 },
    #[error("heartbeat refused: {0}")]
    Heartbeat(tonic::Status),
}

/// What the collector said about the sightings sent.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub batches: u64,
    pub stored: u64,
    pub duplicates: u64,
    pub rejected: u64,
}

/// Sends `sightings` in batches of at most `batch_size` and waits until each is acknowledged.
pub async fn report(
    channel: Channel,
    sightings: &[Sighting],
    batch_size: usize,
) -> Result<Delivery, UplinkError> {
    let batches: Vec<v1::SightingBatch> = sightings
        .chunks(batch_size.max(1))
        .zip(1u64..)
        .map(|(chunk, sequence)| v1::SightingBatch {
            sequence,
            sightings: chunk.iter().map(Sighting::to_proto).collect(),
        })
        .collect();
    let sent = batches.len() as u64;
    let mut client = SightingServiceClient::new(channel);
    let mut acks =
        client.report(tokio_stream::iter(batches)).await.map_err(UplinkError::Refused)?.into_inner();
    let mut delivery = Delivery::default();
    while delivery.batches < sent {
        let ack = match acks.message().await {
            Ok(Some(ack)) => ack,
            Ok(None) => return Err(UplinkError::Incomplete { acked: delivery.batches, sent }),
            Err(status) => return Err(UplinkError::Broken { acked: delivery.batches, sent, status }),
        };
        let expected = delivery.batches + 1;
        if ack.sequence != expected {
            return Err(UplinkError::OutOfOrder { expected, got: ack.sequence });
        }
        if ack.rejected > 0 {
            tracing::warn!(batch = ack.sequence, rejected = ack.rejected, reason = %ack.reject_reason, "collector rejected sightings");
        }
        delivery.batches += 1;
        delivery.stored += u64::from(ack.stored);
        delivery.duplicates += u64::from(ack.duplicates);
        delivery.rejected += u64::from(ack.rejected);
    }
    Ok(delivery)
}

/// Sends one heartbeat.
pub async fn heartbeat(
    channel: Channel,
    beat: v1::HeartbeatRequest,
) -> Result<v1::HeartbeatResponse, UplinkError> {
    let mut client = FleetServiceClient::new(channel);
    client.heartbeat(beat).await.map(tonic::Response::into_inner).map_err(UplinkError::Heartbeat)
}

/// This process's resource use, as sysinfo reads it, for the heartbeat. Kept across reads
/// because CPU use is the difference between two of them.
pub struct HostStats {
    sys: Option<(sysinfo::System, sysinfo::Pid)>,
}

impl HostStats {
    pub fn new() -> HostStats {
        let sys = match (sysinfo::System::new(), sysinfo::get_current_pid()) {
            (Ok(sys), Ok(pid)) => Some((sys, pid)),
            _ => None,
        };
        HostStats { sys }
    }

    /// CPU percent since the last read, resident bytes, 1-minute load average.
    pub fn read(&mut self) -> (f32, u64, f32) {
        use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System};
        let load = System::load_average().map_or(0.0, |l| l.one as f32);
        let Some((sys, pid)) = &mut self.sys else { return (0.0, 0, load) };
        sys.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[*pid]),
            true,
            ProcessRefreshKind::nothing().with_cpu().with_memory(),
        );
        let (cpu, rss) = sys.process(*pid).map_or((0.0, 0), |p| (p.cpu_usage(), p.memory()));
        (cpu, rss, load)
    }
}

impl Default for HostStats {
    fn default() -> Self {
        HostStats::new()
    }
}
