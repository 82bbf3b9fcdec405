//! Alerts out of the collector: every correlation that opens or escalates goes to the CERT's
//! own systems — a signed webhook ([`webhook`]) and/or the local syslog — besides the
//! `WatchCorrelations` subscribers.
//!
//! These sinks belong to the CERT, so they get the full view (participant names). One task
//! listens to the correlation events; the webhook has its own worker behind a bounded queue,
//! so a slow or failing endpoint delays only webhook deliveries, never ingest. What cannot be
//! queued (the queue is full, or the listener fell behind the event stream) is counted and
//! logged as dropped, never silently lost.

pub mod webhook;

use crate::config::AlertsConfig;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use syslog::{Facility, Formatter3164, Logger, LoggerBackend};
use tokio::sync::{broadcast, mpsc, watch};
use webhook::Webhook;
use zdn_answers::rows::{change_name, correlation_row};
use zdn_proto::v1;

/// Webhook deliveries waiting for the worker before new ones are dropped.
const WEBHOOK_QUEUE: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum AlertSetupError {
    #[error("alerts.syslog {path}: {source}")]
    Syslog { path: String, source: syslog::Error },
    #[error(transparent)]
    Webhook(#[from] webhook::WebhookError),
}

/// What the alert sinks did, for logs and tests.
#[derive(Debug, Default)]
pub struct AlertStats {
    pub webhook_delivered: AtomicU64,
    pub webhook_failed: AtomicU64,
    pub dropped: AtomicU64,
    pub syslog_failed: AtomicU64,
}

/// The alert document of one event: what the webhook posts and syslog carries.
pub fn document(event: &v1::CorrelationEvent) -> Value {
    let correlation = event.correlation.as_ref().map(correlation_row).map(Value::Object);
    let joined = if event.joined.is_empty() { json!(event.joined_count) } else { json!(event.joined) };
    json!({
        "event": format!("correlation.{}", change_name(event.change)),
        "joined": joined,
        "correlation": correlation,
    })
}

/// Starts the configured sinks; returns `None` when none is configured.
pub fn start(
    config: &AlertsConfig,
    events: &broadcast::Sender<v1::CorrelationEvent>,
    shutdown: watch::Receiver<bool>,
) -> Result<Option<Arc<AlertStats>>, AlertSetupError> {
    let mut syslog = match config.syslog.as_str() {
        "" => None,
        path => {
            let formatter = Formatter3164 {
                facility: Facility::LOG_DAEMON,
                hostname: None,
                process: "zdn-collector".into(),
                pid: std::process::id(),
            };
            Some(
                syslog::unix_custom(formatter, path)
                    .map_err(|source| AlertSetupError::Syslog { path: path.into(), source })?,
            )
        }
    };
    let webhook = match config.webhook.as_str() {
        "" => None,
        _ => Some(Webhook::new(config)?),
    };
    if syslog.is_none() && webhook.is_none() {
        return Ok(None);
    }
    let stats = Arc::new(AlertStats::default());
    let queue = webhook.map(|hook| {
        let (tx, rx) = mpsc::channel(WEBHOOK_QUEUE);
        tokio::spawn(hook.run(rx, stats.clone(), shutdown.clone()));
        tx
    });
    let mut events = events.subscribe();
    let task_stats = stats.clone();
    tokio::spawn(async move {
        let stats = task_stats;
        loop {
            let event = tokio::select! {
                e = events.recv() => e,
                () = crate::shutdown::stopping(shutdown.clone()) => break,
            };
            let event = match event {
                Ok(event) => event,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    stats.dropped.fetch_add(n, Ordering::Relaxed);
                    tracing::error!(dropped = n, "alerting fell behind the correlation events");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            };
            let doc = document(&event);
            if let Some(logger) = &mut syslog {
                send_syslog(logger, &doc, &stats);
            }
            if let Some(queue) = &queue
                && queue.try_send(doc).is_err()
            {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::error!("webhook queue full: alert dropped");
            }
        }
    });
    Ok(Some(stats))
}

fn send_syslog(logger: &mut Logger<LoggerBackend, Formatter3164>, doc: &Value, stats: &AlertStats) {
    if let Err(e) = logger.warning(doc.to_string()) {
        stats.syslog_failed.fetch_add(1, Ordering::Relaxed);
        tracing::error!(error = %e, "syslog alert failed");
    }
}
