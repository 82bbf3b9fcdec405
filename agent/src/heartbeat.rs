//! Heartbeats: what the agent tells the collector about itself (versions, counters, blind
//! spots, resource use), so an analyst can tell a quiet sensor from a dead one.

use tonic::transport::Channel;
use zdn_proto::v1::{self, fleet_service_client::FleetServiceClient};

/// A heartbeat the collector refused.
#[derive(Debug, thiserror::Error)]
#[error("heartbeat refused: {0}")]
pub struct HeartbeatError(pub tonic::Status);

/// Sends one heartbeat.
pub async fn send(
    channel: Channel,
    beat: v1::HeartbeatRequest,
) -> Result<v1::HeartbeatResponse, HeartbeatError> {
    let mut client = FleetServiceClient::new(channel);
    client.heartbeat(beat).await.map(tonic::Response::into_inner).map_err(HeartbeatError)
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
