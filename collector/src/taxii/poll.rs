//! The polling loop: each TAXII source on its own interval, the indicators published again
//! after a poll that changed a bundle.

use super::source::Source;
use crate::metrics::Metrics;
use crate::service::publishing::Publishing;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use zdn_backoff::Backoff;

/// Polls every source at once and then on its interval until `stop`; a failed poll is tried
/// again sooner (backing off from a minute up to the interval).
pub fn start(
    sources: Vec<Source>,
    publishing: Arc<Publishing>,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
) {
    for source in sources {
        let (publishing, metrics, stop) = (publishing.clone(), metrics.clone(), stop.clone());
        tokio::spawn(run(source, publishing, metrics, stop));
    }
}

async fn run(
    source: Source,
    publishing: Arc<Publishing>,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(Duration::from_secs(60).min(source.interval), source.interval);
    loop {
        let wait = match source.poll().await {
            Ok(polled) => {
                metrics.taxii_polls.inc();
                backoff.reset();
                tracing::info!(source = %source.name, pages = polled.pages, received = polled.received, changed = polled.changed, "taxii source polled");
                if polled.changed {
                    let publishing = publishing.clone();
                    match tokio::task::spawn_blocking(move || publishing.republish()).await {
                        Ok(Ok(version)) => {
                            tracing::info!(source = %source.name, version, "published the taxii source's indicators")
                        }
                        Ok(Err(e)) => {
                            tracing::error!(source = %source.name, error = %zdn_telemetry::error_text(&e), "taxii source polled, but the indicators were not republished")
                        }
                        Err(e) => tracing::error!(source = %source.name, error = %e, "republishing failed"),
                    }
                }
                source.interval
            }
            Err(e) => {
                metrics.taxii_polls_failed.inc();
                let wait = backoff.next_wait();
                tracing::warn!(error = %zdn_telemetry::error_text(&e), retry_in_seconds = wait.as_secs(), "taxii source not polled; the last indicators stay published");
                wait
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = crate::shutdown::stopping(stop.clone()) => return,
        }
    }
}
