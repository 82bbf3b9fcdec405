//! A tonic channel to the collector over mutual TLS (TLS 1.3, ALPN h2), or plain HTTP/2 for a
//! collector started with `--insecure-dev` (`http://` URLs).

use crate::bundle::{Bundle, BundleError};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint, Uri};

#[derive(Debug, Error)]
pub enum ConnectError {
    #[error("bad collector URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("an https:// collector needs client credentials (--identity DIR)")]
    NoCredentials,
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot reach collector at {url}: {source}")]
    Transport { url: String, source: tonic::transport::Error },
}

/// The rustls client configuration for a bundle: its CA as the only root, its certificate as
/// client identity, TLS 1.3 only.
pub fn client_config(bundle: &Bundle) -> Result<rustls::ClientConfig, ConnectError> {
    let mut config = rustls::ClientConfig::builder_with_provider(crate::crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(bundle.roots()?)
        .with_client_auth_cert(bundle.certs.clone(), bundle.key.clone_key())?;
    config.alpn_protocols = vec![crate::ALPN_H2.to_vec()];
    Ok(config)
}

/// Connects to `url` (`https://host:port` with a bundle, or `http://host:port` for an
/// insecure-dev collector).
pub async fn connect(url: &str, bundle: Option<&Bundle>) -> Result<Channel, ConnectError> {
    let bad = |reason: &str| ConnectError::BadUrl { url: url.to_owned(), reason: reason.to_owned() };
    let uri: Uri = url.parse().map_err(|e: tonic::codegen::http::uri::InvalidUri| bad(&e.to_string()))?;
    let host =
        uri.host().ok_or_else(|| bad("no host"))?.trim_start_matches('[').trim_end_matches(']').to_owned();
    let endpoint = Endpoint::from(uri.clone())
        .connect_timeout(Duration::from_secs(10))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    let transport = |source| ConnectError::Transport { url: url.to_owned(), source };
    match uri.scheme_str() {
        Some("http") => {
            tracing::warn!(%url, "connecting WITHOUT TLS: only for a collector in --insecure-dev mode");
            endpoint.connect().await.map_err(transport)
        }
        Some("https") => {
            let bundle = bundle.ok_or(ConnectError::NoCredentials)?;
            let connector = TlsConnector::from(Arc::new(client_config(bundle)?));
            let server_name = ServerName::try_from(host).map_err(|e| bad(&e.to_string()))?;
            let port = uri.port_u16().unwrap_or(443);
            let connect = tower::service_fn(move |uri: Uri| {
                let (connector, server_name) = (connector.clone(), server_name.clone());
                async move {
                    let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
                    let tcp = TcpStream::connect((host, port)).await?;
                    tcp.set_nodelay(true)?;
                    let tls = connector.connect(server_name, tcp).await?;
                    Ok::<_, std::io::Error>(TokioIo::new(tls))
                }
            });
            endpoint.connect_with_connector(connect).await.map_err(transport)
        }
        _ => Err(bad("scheme must be https:// (or http:// for --insecure-dev)")),
    }
}
