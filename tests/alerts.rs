//! Correlation alerts leave the collector: a signed HTTPS webhook (retried when the receiver
//! fails) and a syslog socket, each getting every opened correlation once.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, UnixDatagram};
use tokio::sync::mpsc;
use zdn_integration_tests::Network;
use zdn_transport::Bundle;

const SECRET: &str = "a-shared-secret-of-the-cert-siem";

/// One request the receiver got: its headers of interest and body.
struct Received {
    timestamp: String,
    signature: String,
    delivery: String,
    body: String,
}

/// An HTTPS receiver with the collector's own certificate (SAN localhost) that answers 503 to
/// the first request and 200 afterwards.
async fn receiver(bundle: &Bundle) -> (u16, mpsc::UnboundedReceiver<Received>) {
    let tls = rustls::ServerConfig::builder_with_provider(zdn_transport::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(bundle.certs.clone(), bundle.key.clone_key())
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    let seen = Arc::new(AtomicU32::new(0));
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, tx, seen) = (acceptor.clone(), tx.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (tx, seen) = (tx.clone(), seen.clone());
                    async move {
                        let header = |name: &str| {
                            req.headers()
                                .get(name)
                                .map(|v| v.to_str().unwrap().to_owned())
                                .unwrap_or_default()
                        };
                        let (timestamp, signature, delivery) =
                            (header("x-zdn-timestamp"), header("x-zdn-signature"), header("x-zdn-delivery"));
                        let body =
                            String::from_utf8(req.into_body().collect().await?.to_bytes().to_vec()).unwrap();
                        let _ = tx.send(Received { timestamp, signature, delivery, body });
                        let status = if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                            StatusCode::SERVICE_UNAVAILABLE
                        } else {
                            StatusCode::OK
                        };
                        Ok::<_, hyper::Error>(
                            Response::builder().status(status).body(Full::new(Bytes::new())).unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (port, rx)
}

fn verify(r: &Received) -> bool {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let Some(hex) = r.signature.strip_prefix("sha256=") else { return false };
    let Ok(tag) = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
    else {
        return false;
    };
    ring::hmac::verify(&key, format!("{}.{}", r.timestamp, r.body).as_bytes(), &tag).is_ok()
}

#[tokio::test]
async fn opened_correlations_reach_a_signed_webhook_and_syslog() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    zdn_collector::pki::init(&pki, &[]).unwrap();
    let (port, mut posts) = receiver(&Bundle::load(&pki.join("collector")).unwrap()).await;
    let secret = dir.path().join("webhook.secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let syslog_path = dir.path().join("syslog.sock");
    let syslog = UnixDatagram::bind(&syslog_path).unwrap();

    let net = Network::start_in(dir, "sqlite", |c| {
        c.alerts.webhook = format!("https://localhost:{port}/zdn");
        c.alerts.webhook_secret_file = secret.display().to_string();
        c.alerts.webhook_ca = pki.join("collector").join("ca.pem").display().to_string();
        c.alerts.webhook_first_retry_ms = 50;
        c.alerts.syslog = syslog_path.display().to_string();
    })
    .await
    .unwrap();
    net.run_demo_agents().await.unwrap();

    // Two correlations open; the first POST is answered 503 and retried.
    let mut delivered = BTreeMap::new();
    let mut attempts = 0;
    while delivered.len() < 2 || attempts < 3 {
        let post =
            tokio::time::timeout(Duration::from_secs(20), posts.recv()).await.expect("webhook POST").unwrap();
        attempts += 1;
        assert!(verify(&post), "signature of {}", post.body);
        let doc: Value = serde_json::from_str(&post.body).unwrap();
        assert_eq!(doc["event"], "correlation.opened");
        delivered.insert(post.delivery, doc["correlation"]["participants"].clone());
    }
    assert_eq!(attempts, 3, "one retry, no duplicates beyond it");
    assert_eq!(
        delivered.keys().cloned().collect::<Vec<_>>(),
        ["correlation.opened:203.0.113.66:2", "correlation.opened:updates.evil-cdn.example:2"]
    );
    assert_eq!(delivered["correlation.opened:203.0.113.66:2"], serde_json::json!(["umc-noord", "ggz-oost"]));
    let stats = net.collector.alerts.as_ref().unwrap();
    // The receiver has the last POST a moment before the collector reads its answer.
    for _ in 0..100 {
        if stats.webhook_delivered.load(Ordering::Relaxed) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stats.webhook_delivered.load(Ordering::Relaxed), 2);
    assert_eq!(stats.webhook_failed.load(Ordering::Relaxed), 0);
    assert_eq!(stats.dropped.load(Ordering::Relaxed), 0);

    let mut buf = vec![0u8; 8192];
    let mut messages = Vec::new();
    for _ in 0..2 {
        let n = tokio::time::timeout(Duration::from_secs(5), syslog.recv(&mut buf))
            .await
            .expect("syslog")
            .unwrap();
        messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(
        messages.iter().all(|m| m.contains("zdn-collector") && m.contains("correlation.opened")),
        "{messages:?}"
    );
    assert!(messages.iter().any(|m| m.contains("updates.evil-cdn.example")));
}

#[tokio::test]
async fn a_bad_alert_configuration_stops_the_start_with_a_reason() {
    for (adjust, expected) in [
        (
            Box::new(|c: &mut zdn_collector::config::Config| c.alerts.webhook = "ftp://x".into())
                as Box<dyn FnOnce(&mut _)>,
            "http:// or https://",
        ),
        (
            Box::new(|c: &mut zdn_collector::config::Config| {
                c.alerts.webhook = "https://localhost:1/".into();
                c.alerts.webhook_secret_file = "/nonexistent/secret".into();
            }),
            "webhook_secret_file",
        ),
        (
            Box::new(|c: &mut zdn_collector::config::Config| c.alerts.syslog = "/nonexistent/socket".into()),
            "alerts.syslog",
        ),
    ] {
        let err = Network::start_configured("sqlite", false, adjust).await.err().expect("refused");
        assert!(format!("{err:#}").contains(expected), "{err:#}");
    }
}
