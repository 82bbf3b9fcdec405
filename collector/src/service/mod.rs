//! The gRPC services of `zdn.v1`, one file each, over one [`Shared`] state.

mod admission;
pub mod analyst;
mod console_tokens;
mod delta;
pub mod fleet;
pub mod hunt;
pub mod import;
pub mod indicator;
pub mod ingest_limit;
pub mod publishing;
pub mod sighting;
pub mod taxii;

use crate::config::Config;
use crate::store::{Store, StoreError};
use std::sync::Arc;
use tokio::sync::{broadcast, watch};
use tonic::Status;
use zdn_proto::v1;

/// What every service needs.
#[derive(Clone)]
pub struct Shared {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    /// Per-agent ingest rates.
    pub ingest_limits: Arc<ingest_limit::IngestLimits>,
    /// Correlation openings and escalations, for `WatchCorrelations` subscribers.
    pub events: broadcast::Sender<v1::CorrelationEvent>,
    /// The store delivers every instance's events to `events` (PostgreSQL); the services then
    /// send none of their own.
    pub events_from_store: bool,
    /// The published indicator set (false positives withdraw from it).
    pub publishing: Arc<publishing::Publishing>,
    /// Becomes `true` when the collector stops; long-lived streams end then, so a graceful
    /// shutdown does not wait for clients that never hang up.
    pub shutdown: watch::Receiver<bool>,
    /// What the services count for `/metrics` (counted whether or not it is served).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Analysts' retro-hunts and their answers.
    pub hunts: Arc<hunt::Hunts>,
}

/// Runs blocking store work off the async threads; a store failure becomes `UNAVAILABLE` (the
/// client may retry; details go to the log, not to the client).
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Status> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "store operation failed");
            Err(Status::unavailable("store unavailable; retry later"))
        }
        Err(e) => {
            tracing::error!(error = %e, "store task failed");
            Err(Status::internal("store task failed"))
        }
    }
}
