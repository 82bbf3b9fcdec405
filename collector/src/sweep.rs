//! The quiet sweep: closes incidents no sighting has touched for `close_after`, so the board,
//! the CLI, the API and every watcher see them closed even when no batch arrives to close
//! them (ingest closes a quiet wave too, when its subject is seen again).

use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use zdn_proto::v1;

/// How often the sweep runs.
const EVERY: Duration = Duration::from_secs(60);
/// Incidents closed per store call (the writer is not held for long).
const PER_CALL: u32 = 1000;

/// Runs the sweep every minute until the collector stops; events go to `events` unless the
/// store delivers them itself (`send_events` false).
pub fn start(
    store: Arc<dyn Store>,
    events: broadcast::Sender<v1::CorrelationEvent>,
    send_events: bool,
    stop: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(EVERY) => {}
                () = crate::shutdown::stopping(stop.clone()) => break,
            }
            loop {
                let store = store.clone();
                let now = zdn_timestamps::now_ms();
                match tokio::task::spawn_blocking(move || store.close_quiet(now, PER_CALL)).await {
                    Ok(Ok(closed)) => {
                        let more = closed.len() as u32 == PER_CALL;
                        if !closed.is_empty() {
                            tracing::info!(closed = closed.len(), "quiet incidents closed");
                        }
                        if send_events {
                            for event in closed {
                                let _ = events.send(event);
                            }
                        }
                        if !more {
                            break;
                        }
                    }
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "closing quiet incidents failed; retrying in a minute");
                        break;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the quiet sweep task failed");
                        break;
                    }
                }
            }
        }
    });
}
