//! `FleetService.Heartbeat`: agents say they are alive; the fleet view tells "no sightings"
//! from "sensor down".

use super::{Shared, blocking};
use crate::access::authorise_agent;
use tonic::{Request, Response, Status};
use zdn_proto::v1::{self, fleet_service_server::FleetService};
use zdn_timestamps::now_ms;

pub struct Fleet {
    pub shared: Shared,
}

/// Heartbeat interval the collector asks for: a third of the stale threshold, so one lost
/// heartbeat does not mark an agent stale.
fn next_heartbeat_seconds(stale_after: u64) -> u32 {
    u32::try_from((stale_after / 3).max(1)).unwrap_or(u32::MAX)
}

#[tonic::async_trait]
impl FleetService for Fleet {
    async fn heartbeat(
        &self,
        request: Request<v1::HeartbeatRequest>,
    ) -> Result<Response<v1::HeartbeatResponse>, Status> {
        let peer = authorise_agent(&request)?;
        let beat = request.into_inner();
        if beat.agent_version.len() > 64 || beat.blind_spots.len() > 32 || beat.hunt_answers.len() > 64 {
            return Err(Status::invalid_argument(
                "heartbeat fields exceed their limits (agent_version 64 bytes, 32 blind spots, 64 hunt answers)",
            ));
        }
        let store = self.shared.store.clone();
        let now = now_ms();
        self.shared.hunts.answered(&peer.identity.participant, &peer.identity.name, &beat.hunt_answers, now);
        blocking(move || store.record_heartbeat(&peer.identity.participant, &peer.identity.name, &beat, now))
            .await?;
        Ok(Response::new(v1::HeartbeatResponse {
            server_time_unix_ms: now,
            next_heartbeat_seconds: next_heartbeat_seconds(self.shared.config.stale_after_seconds),
        }))
    }
}
