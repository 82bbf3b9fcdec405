//! The console's HTTPS listener.
//!
//! Its own port, because browsers cannot be asked for a client certificate the way agents
//! are: the TLS server accepts a connection without one ([`ClientAuth::Optional`]), and
//! verifies one if the browser presents it (same CA, same revocation lists as the gRPC port).
//! Each connection is served by hyper (HTTP/1.1 or HTTP/2, as ALPN agreed) in its own task,
//! with what TLS established ([`Connection`]) attached to every request.

use axum::Router;
use axum::extract::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;
use zdn_transport::Identity;
use zdn_transport::server::ReloadableTls;

/// What the TLS handshake established about a connection.
#[derive(Debug, Clone)]
pub struct Connection {
    pub addr: SocketAddr,
    /// The verified client certificate's identity, if the browser presented one.
    pub certificate: Option<Arc<Identity>>,
}

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts and serves connections until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    tls: ReloadableTls,
    app: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (tcp, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "console: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        // Pages are written in several pieces; without this, Nagle's algorithm and delayed ACKs
        // add ~40 ms to each.
        let _ = tcp.set_nodelay(true);
        let (tls, app, mut stop) = (tls.clone(), app.clone(), shutdown.clone());
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor().accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    return tracing::debug!(peer = %addr, error = %e, "console: TLS handshake failed");
                }
                Err(_) => return tracing::debug!(peer = %addr, "console: TLS handshake timed out"),
            };
            let leaf = stream.get_ref().1.peer_certificates().and_then(|c| c.first());
            let certificate = match leaf.map(|der| Identity::from_certificate(der)) {
                None => None,
                Some(Ok(identity)) => Some(Arc::new(identity)),
                Some(Err(e)) => {
                    return tracing::warn!(peer = %addr, error = %e, "console: certificate refused");
                }
            };
            let connection = Connection { addr, certificate };
            let service = hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(connection.clone());
                app.clone().oneshot(request.map(axum::body::Body::new))
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::select! {
                served = conn => if let Err(e) = served {
                    tracing::debug!(peer = %addr, error = %e, "console: connection ended with an error");
                },
                _ = stop.changed() => {}
            }
        });
    }
}
