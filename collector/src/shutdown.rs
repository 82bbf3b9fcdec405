//! Graceful stop: one `watch` channel that turns `true` when the collector stops. Every
//! long-lived task (listeners, streams, the retention and alert jobs) waits on it, so a stop
//! does not wait for clients that never hang up.

use tokio::sync::watch;

/// Resolves once the collector is stopping.
pub async fn stopping(mut shutdown: watch::Receiver<bool>) {
    // An error means the sender is gone, which also means the collector is stopping.
    let _ = shutdown.wait_for(|stop| *stop).await;
}
