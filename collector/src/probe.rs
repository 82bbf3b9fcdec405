//! `zdn-collector probe`: whether a running collector answers, for container health checks
//! and monitoring scripts that hold no client certificate.
//!
//! The gRPC port must accept a connection (its TLS needs a client certificate, so the probe
//! goes no further there), and, when `metrics.listen` is set, `GET /metrics` must answer 200:
//! that scrape reads the fleet from the store, so it also says the store works.

use crate::config::Config;
use anyhow::{Context, Result, bail};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest each check waits.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Checks the collector `config` describes; the text says what answered.
pub async fn probe(config: &Config) -> Result<String> {
    let grpc = reachable(config.listen);
    tokio::time::timeout(TIMEOUT, TcpStream::connect(grpc))
        .await
        .map_err(|_| anyhow::anyhow!("listen {grpc}: no answer within {TIMEOUT:?}"))?
        .with_context(|| format!("listen {grpc}: the collector does not accept connections"))?;
    let Some(metrics) = config.metrics.addr()? else {
        return Ok(format!(
            "collector accepts connections on {grpc} (set metrics.listen to check its store too)"
        ));
    };
    let metrics = reachable(metrics);
    let status = tokio::time::timeout(TIMEOUT, scrape_status(metrics))
        .await
        .map_err(|_| anyhow::anyhow!("metrics.listen {metrics}: no answer within {TIMEOUT:?}"))??;
    if status != 200 {
        bail!("metrics.listen {metrics}: /metrics answered {status}");
    }
    Ok(format!("collector accepts connections on {grpc}; /metrics on {metrics} answered 200"))
}

/// Where to reach a listener bound to `addr` from this host: an unspecified address
/// (0.0.0.0, ::) is reached on loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port()),
        _ => addr,
    }
}

/// The HTTP status of `GET /metrics` at `addr`.
async fn scrape_status(addr: SocketAddr) -> Result<u16> {
    let mut stream = TcpStream::connect(addr).await.with_context(|| format!("metrics.listen {addr}"))?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").await?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.with_context(|| format!("metrics.listen {addr}: no HTTP answer"))?;
    let text = std::str::from_utf8(&head).unwrap_or_default();
    text.get(9..12)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("metrics.listen {addr}: not HTTP: {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_collector_that_is_not_there_is_named_by_its_address() {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let config = Config { listen: free, ..Config::default() };
        let error = probe(&config).await.unwrap_err().to_string();
        assert!(error.contains(&format!("listen {free}")), "{error}");
        assert_eq!(reachable("0.0.0.0:7443".parse().unwrap()), "127.0.0.1:7443".parse().unwrap());
        assert_eq!(reachable("[::]:7443".parse().unwrap()), "[::1]:7443".parse().unwrap());
    }
}
