//! Prometheus metrics over HTTP (`GET /metrics`), when `metrics.listen` is set: the counters
//! plus gauges read at scrape time (spool depth, indicator set). Served with hyper's HTTP/1
//! server, which the gRPC stack already brings; the classic text exposition format, written
//! by the `prometheus` crate (see [`crate::counters`] for why that format).

use crate::pipeline::Shared;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus::{Encoder, IntGauge, Registry, TextEncoder};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use tokio::sync::watch;

/// The registry and the gauges refreshed before each scrape.
struct Exposition {
    registry: Registry,
    spool_queued: IntGauge,
    spool_bytes: IntGauge,
    set_version: IntGauge,
    set_size: IntGauge,
    shared: Arc<Shared>,
}

impl Exposition {
    fn new(shared: Arc<Shared>) -> Exposition {
        let registry = Registry::new();
        shared.counters.register(&registry).expect("each metric is registered once");
        let gauge = |registry: &Registry, name: &str, help: &str| {
            let g = IntGauge::new(format!("zdn_agent_{name}"), help).expect("metric names here are valid");
            registry.register(Box::new(g.clone())).expect("each metric is registered once");
            g
        };
        Exposition {
            spool_queued: gauge(&registry, "spool_sightings", "Sightings waiting for an acknowledgement"),
            spool_bytes: gauge(&registry, "spool_bytes", "Bytes of sightings in the spool"),
            set_version: gauge(&registry, "indicator_set_version", "Version of the collector's set in use"),
            set_size: gauge(&registry, "indicator_set_indicators", "Indicators in the live set"),
            registry,
            shared,
        }
    }

    fn render(&self) -> String {
        let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.spool_queued.set(to_i64(self.shared.spool.len()));
        self.spool_bytes.set(to_i64(self.shared.spool.bytes()));
        self.set_version.set(to_i64(self.shared.set_version.load(Relaxed)));
        self.set_size.set(to_i64(self.shared.set.load().len() as u64));
        let mut out = Vec::new();
        // Writing into a Vec does not fail; metric families here are all well-formed.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Binds `addr` (so a taken port fails the start) and serves until `stop` turns true.
pub async fn serve(
    addr: SocketAddr,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("metrics.listen {addr}: {e} (is another process using the port?)"),
        )
    })?;
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "metrics served beyond localhost");
    }
    tracing::info!(addr = %listener.local_addr()?, "metrics at /metrics");
    let exposition = Arc::new(Exposition::new(shared));
    Ok(tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => { tracing::warn!(error = %e, "metrics accept"); continue; }
                },
                _ = stop.changed() => return,
            };
            let exposition = exposition.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let exposition = exposition.clone();
                    async move { Ok::<_, std::convert::Infallible>(respond(&exposition, &request)) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service);
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "metrics connection");
                }
            });
        }
    }))
}

fn respond(exposition: &Exposition, request: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let (status, body) = match (request.method(), request.uri().path()) {
        (&hyper::Method::GET, "/metrics") => (StatusCode::OK, exposition.render()),
        (&hyper::Method::GET, _) => (StatusCode::NOT_FOUND, "not found: try /metrics\n".to_owned()),
        _ => (StatusCode::METHOD_NOT_ALLOWED, "GET only\n".to_owned()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(prometheus::TEXT_FORMAT),
    );
    response
}
