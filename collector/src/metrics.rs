//! Prometheus metrics of the collector: `GET /metrics` on `metrics.listen` (off by default),
//! plain HTTP on its own port, like the agent's — keep it on loopback or a monitoring network.
//!
//! What an operator watches: sightings coming in (stored, duplicates, rejected), how long the
//! store takes to commit a batch (a histogram: the latency agents wait for their
//! acknowledgement), correlation events by change, agents and stale agents, and the published
//! set. Counters are updated where the work happens; gauges are read when scraped. Written in
//! the classic text format by the `prometheus` crate, which `promtool check metrics` reads
//! cleanly (the agent's endpoint does the same, see the agent's `counters`).

use crate::store::Store;
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::{broadcast, watch};
use zdn_proto::v1;

/// The collector's metrics, shared by the services that count.
pub struct Metrics {
    registry: Registry,
    pub sightings_stored: IntCounter,
    pub sightings_duplicate: IntCounter,
    pub sightings_rejected: IntCounter,
    /// Seconds the store took to commit one batch.
    pub store_ingest_seconds: Histogram,
    pub taxii_polls: IntCounter,
    pub taxii_polls_failed: IntCounter,
    correlation_events: IntCounterVec,
    agents: IntGauge,
    agents_stale: IntGauge,
    set_version: IntGauge,
    set_indicators: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(format!("zdn_collector_{name}_total"), help).expect("valid name");
            registry.register(Box::new(c.clone())).expect("registered once");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(format!("zdn_collector_{name}"), help).expect("valid name");
            registry.register(Box::new(g.clone())).expect("registered once");
            g
        };
        // From 1 ms to 10 s: a commit is a few ms; seconds mean the store is in trouble.
        let buckets = vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];
        let store_ingest_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "zdn_collector_store_ingest_seconds",
                "Seconds the store took to commit a batch of sightings",
            )
            .buckets(buckets),
        )
        .expect("valid histogram");
        registry.register(Box::new(store_ingest_seconds.clone())).expect("registered once");
        let correlation_events = IntCounterVec::new(
            Opts::new(
                "zdn_collector_correlation_events_total",
                "Incident changes: opened, escalated, closed, ...",
            ),
            &["change"],
        )
        .expect("valid name");
        registry.register(Box::new(correlation_events.clone())).expect("registered once");
        // Every change from the start, at 0, so a rate over them is defined before the first.
        for change in ["opened", "escalated", "reduced", "closed", "closed_false_positive"] {
            correlation_events.with_label_values(&[change]);
        }
        Metrics {
            sightings_stored: counter("sightings_stored", "Sightings stored"),
            sightings_duplicate: counter("sightings_duplicate", "Sightings received again (already stored)"),
            sightings_rejected: counter("sightings_rejected", "Malformed sightings refused"),
            store_ingest_seconds,
            taxii_polls: counter("taxii_polls", "Complete polls of TAXII sources"),
            taxii_polls_failed: counter(
                "taxii_polls_failed",
                "Polls of TAXII sources that failed (tried again later)",
            ),
            correlation_events,
            agents: gauge("agents", "Agents that sent a heartbeat"),
            agents_stale: gauge("agents_stale", "Agents without a heartbeat for stale_after_seconds"),
            set_version: gauge("published_set_version", "Version of the published indicator set"),
            set_indicators: gauge("published_set_indicators", "Indicators in the published set"),
            registry,
        }
    }

    /// The exposition: gauges read now, then every metric in the classic text format.
    fn render(&self, store: &dyn Store, stale_ms: i64, (version, indicators): (u64, usize)) -> String {
        match store.fleet(zdn_timestamps::now_ms(), stale_ms) {
            Ok(agents) => {
                self.agents.set(agents.len() as i64);
                self.agents_stale.set(agents.iter().filter(|a| a.stale).count() as i64);
            }
            Err(e) => tracing::warn!(error = %e, "metrics: the fleet could not be read"),
        }
        self.set_version.set(i64::try_from(version).unwrap_or(i64::MAX));
        self.set_indicators.set(indicators as i64);
        let mut out = Vec::new();
        // Writing into a Vec does not fail; the metric families here are well-formed.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Counts the correlation events this collector sees until `stop`.
    fn count_events(
        self: Arc<Self>,
        mut events: broadcast::Receiver<v1::CorrelationEvent>,
        mut stop: watch::Receiver<bool>,
    ) {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    event = events.recv() => match event {
                        Ok(event) => self.correlation_events.with_label_values(&[zdn_answers::rows::change_name(event.change)]).inc(),
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            tracing::warn!(missed, "metrics: correlation events missed (not counted)");
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    _ = stop.changed() => return,
                }
            }
        });
    }
}

/// What the endpoint reads when scraped, besides the counters.
pub struct Sources<P> {
    pub store: Arc<dyn Store>,
    /// `stale_after_seconds` in milliseconds.
    pub stale_ms: i64,
    /// The published set now: its version and number of indicators.
    pub published: P,
    /// The correlation events to count.
    pub events: broadcast::Receiver<v1::CorrelationEvent>,
}

/// Serves `/metrics` of `metrics` on `addr` until `stop`; binding fails the start, naming the
/// setting.
pub async fn serve<P>(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    sources: Sources<P>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<SocketAddr>
where
    P: Fn() -> (u64, usize) + Clone + Send + Sync + 'static,
{
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("metrics.listen {addr}: {e} (is another process using the port?)"))?;
    let bound = listener.local_addr()?;
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "metrics served beyond localhost");
    }
    metrics.clone().count_events(sources.events, stop.clone());
    let (store, stale_ms, published) = (sources.store, sources.stale_ms, sources.published);
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let (metrics, store, published) = (metrics.clone(), store.clone(), published.clone());
            async move {
                let body = tokio::task::spawn_blocking(move || {
                    metrics.render(store.as_ref(), stale_ms, published())
                })
                .await
                .unwrap_or_default();
                ([(axum::http::header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], body)
            }
        }),
    );
    tokio::spawn(async move {
        let stopped = crate::shutdown::stopping(stop);
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stopped).await {
            tracing::error!(error = %e, "metrics endpoint stopped");
        }
    });
    tracing::info!(addr = %bound, "metrics at /metrics");
    Ok(bound)
}
