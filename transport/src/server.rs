//! The collector's listener.
//!
//! The accept loop only accepts; each TLS handshake runs in its own task with a deadline, so a
//! slow or hostile client cannot stall others. A connection reaches tonic only when the client
//! certificate chains to the CA, is not revoked, and carries a valid ZDN identity; the identity
//! is then attached to the connection ([`Peer`]) and tonic copies it into every request's
//! extensions. Refused handshakes are logged with the peer address and the reason, and counted.

use crate::bundle::{Bundle, BundleError};
use crate::identity::{Identity, Role};
use futures::Stream;
use rustls::pki_types::CertificateRevocationListDer;
use rustls::server::WebPkiClientVerifier;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tonic::transport::server::Connected;

/// Who is on the other end of a connection, as tonic hands it to request handlers
/// (`request.extensions().get::<Peer>()`).
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    pub identity: Arc<Identity>,
    /// True only for plain-TCP connections accepted under `--insecure-dev`.
    pub insecure: bool,
}

impl Peer {
    /// Whether this peer may act in `role`. Admins may do what analysts do; agents only what
    /// agents do. Insecure development connections may do everything.
    pub fn may(&self, role: Role) -> bool {
        self.insecure
            || self.identity.role == role
            || (role == Role::Analyst && self.identity.role == Role::Admin)
    }
}

#[derive(Debug, Error)]
pub enum ServerTlsError {
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// Whether a listener demands a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// The agent and analyst port: no certificate, no connection.
    Required,
    /// The web console: browsers sign in with a token, or present a certificate, which is then
    /// verified exactly as on the required port (CA and revocation lists).
    Optional,
}

/// A rustls server configuration: TLS 1.3 only, client certificates verified against the
/// bundle's CA and the given revocation lists, ALPN h2 and http/1.1.
pub fn server_config(
    bundle: &Bundle,
    crls: Vec<CertificateRevocationListDer<'static>>,
    client_auth: ClientAuth,
) -> Result<rustls::ServerConfig, ServerTlsError> {
    let provider = crate::crypto_provider();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(bundle.roots()?), provider.clone())
        .with_crls(crls);
    let verifier = match client_auth {
        ClientAuth::Required => verifier.build()?,
        ClientAuth::Optional => verifier.allow_unauthenticated().build()?,
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(bundle.certs.clone(), bundle.key.clone_key())?;
    // h2 for gRPC (and HTTP clients that speak it), http/1.1 for the collector's JSON API.
    config.alpn_protocols = vec![crate::ALPN_H2.to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// One accepted connection: TLS with a verified identity, or plain TCP in insecure-dev mode.
pub enum Conn {
    Tls(Box<TlsStream<TcpStream>>, Peer),
    Plain(TcpStream, Peer),
}

impl Connected for Conn {
    type ConnectInfo = Peer;
    fn connect_info(&self) -> Peer {
        match self {
            Conn::Tls(_, peer) | Conn::Plain(_, peer) => peer.clone(),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Conn::Plain(s, _) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Conn::Plain(s, _) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_flush(cx),
            Conn::Plain(s, _) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Conn::Plain(s, _) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// A server TLS configuration that can be replaced while serving (new revocation lists on
/// SIGHUP). Each handshake takes the configuration current when it starts; connections
/// already established keep theirs.
#[derive(Clone)]
pub struct ReloadableTls(Arc<RwLock<Arc<rustls::ServerConfig>>>);

impl ReloadableTls {
    pub fn new(config: rustls::ServerConfig) -> ReloadableTls {
        ReloadableTls(Arc::new(RwLock::new(Arc::new(config))))
    }

    /// An acceptor with the current configuration.
    pub fn acceptor(&self) -> TlsAcceptor {
        // A poisoned lock still holds a whole configuration (replacing it is one assignment).
        TlsAcceptor::from(self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone())
    }

    pub fn replace(&self, config: rustls::ServerConfig) {
        *self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(config);
    }
}

/// Counters of the listener, shared with whoever reports metrics.
#[derive(Debug, Default)]
pub struct ListenerStats {
    pub accepted: AtomicU64,
    pub refused: AtomicU64,
}

/// How the listener secures connections.
#[derive(Clone)]
pub enum Security {
    MutualTls(ReloadableTls),
    /// Plain TCP; every peer acts as the `insecure-dev` admin. Development only.
    InsecureDev,
}

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections that finished their handshake but tonic has not taken yet.
const BACKLOG: usize = 256;

/// Accepts connections on `listener` and yields those that pass authentication, for
/// `tonic::transport::Server::serve_with_incoming`.
pub fn incoming(
    listener: TcpListener,
    security: Security,
    stats: Arc<ListenerStats>,
) -> impl Stream<Item = Result<Conn, std::io::Error>> {
    let (tx, rx) = mpsc::channel(BACKLOG);
    tokio::spawn(async move {
        loop {
            // Stop accepting once the server dropped its end of the stream.
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = tx.closed() => break,
            };
            let (tcp, addr) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (conn_tx, security, stats) = (tx.clone(), security.clone(), stats.clone());
            tokio::spawn(async move {
                match authenticate(tcp, addr, security).await {
                    Ok(conn) => {
                        stats.accepted.fetch_add(1, Ordering::Relaxed);
                        let _ = conn_tx.send(Ok(conn)).await;
                    }
                    Err(reason) => {
                        stats.refused.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(peer = %addr, %reason, "connection refused");
                    }
                }
            });
        }
    });
    tokio_stream_from(rx)
}

fn tokio_stream_from<T>(mut rx: mpsc::Receiver<T>) -> impl Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn authenticate(tcp: TcpStream, addr: SocketAddr, security: Security) -> Result<Conn, String> {
    let _ = tcp.set_nodelay(true);
    let acceptor = match security {
        Security::InsecureDev => {
            let identity =
                Identity { participant: "insecure-dev".into(), role: Role::Admin, name: addr.to_string() };
            return Ok(Conn::Plain(tcp, Peer { addr, identity: Arc::new(identity), insecure: true }));
        }
        Security::MutualTls(tls) => tls.acceptor(),
    };
    let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
        .await
        .map_err(|_| "TLS handshake timed out".to_owned())?
        .map_err(|e| format!("TLS handshake failed: {e}"))?;
    let leaf =
        tls.get_ref().1.peer_certificates().and_then(|certs| certs.first()).ok_or("no client certificate")?;
    let identity = Identity::from_certificate(leaf).map_err(|e| e.to_string())?;
    tracing::debug!(peer = %addr, %identity, "authenticated");
    Ok(Conn::Tls(Box::new(tls), Peer { addr, identity: Arc::new(identity), insecure: false }))
}
