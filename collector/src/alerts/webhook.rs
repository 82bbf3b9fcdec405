//! The webhook: one JSON POST per correlation event, signed, retried.
//!
//! Signing follows the common "timestamped HMAC" scheme (as Stripe and GitHub do): the receiver
//! computes HMAC-SHA256 with the shared secret over `"{X-ZDN-Timestamp}.{body}"` and compares it
//! with `X-ZDN-Signature: sha256=<hex>`; the timestamp lets it refuse replays. `X-ZDN-Delivery`
//! names the event (indicator, change, participant count), the same on every retry, so a
//! receiver can drop duplicates. Failed deliveries (connection errors, 408, 429, 5xx) are
//! retried with jittered exponential backoff up to `webhook_attempts`; any other answer is
//! final. HTTPS uses the system's roots plus `webhook_ca`, with the same ring-backed rustls as
//! everything else.

use super::AlertStats;
use crate::config::AlertsConfig;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use ring::hmac;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use zdn_backoff::Backoff;
use zdn_transport::outbound::OutboundTlsError;

/// How long one POST may take.
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("alerts.webhook {0:?}: expected an http:// or https:// URL")]
    Url(String),
    #[error("alerts.webhook_secret_file {path}: {reason}")]
    Secret { path: String, reason: String },
    #[error("alerts.webhook_ca {path}: {reason}")]
    Ca { path: String, reason: String },
    #[error("webhook TLS: {0}")]
    Tls(#[from] rustls::Error),
}

pub struct Webhook {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    url: Uri,
    key: Option<hmac::Key>,
    attempts: u32,
    first_retry: Duration,
}

impl Webhook {
    pub fn new(config: &AlertsConfig) -> Result<Webhook, WebhookError> {
        let url: Uri = config.webhook.parse().map_err(|_| WebhookError::Url(config.webhook.clone()))?;
        match url.scheme_str() {
            Some("https") => {}
            Some("http") => {
                tracing::warn!(url = %url, "alert webhook over plain http: alerts travel unencrypted")
            }
            _ => return Err(WebhookError::Url(config.webhook.clone())),
        }
        let key = match config.webhook_secret_file.as_str() {
            "" => {
                tracing::warn!("alert webhook without webhook_secret_file: requests are not signed");
                None
            }
            path => Some(read_secret(Path::new(path))?),
        };
        let ca = (!config.webhook_ca.is_empty()).then(|| Path::new(&config.webhook_ca));
        let tls = zdn_transport::outbound::client_config(ca).map_err(|e| match e {
            OutboundTlsError::Ca { reason, .. } => {
                WebhookError::Ca { path: config.webhook_ca.clone(), reason }
            }
            OutboundTlsError::Tls(e) => WebhookError::Tls(e),
        })?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Webhook {
            client: Client::builder(TokioExecutor::new()).build(connector),
            url,
            key,
            attempts: config.webhook_attempts.max(1),
            first_retry: Duration::from_millis(config.webhook_first_retry_ms.max(1)),
        })
    }

    /// Delivers queued documents one at a time, in order, until the collector stops.
    pub async fn run(
        self,
        mut queue: mpsc::Receiver<Value>,
        stats: Arc<AlertStats>,
        stop: watch::Receiver<bool>,
    ) {
        loop {
            let doc = tokio::select! {
                d = queue.recv() => match d { Some(d) => d, None => break },
                () = crate::shutdown::stopping(stop.clone()) => break,
            };
            if self.deliver(&doc, &stop).await {
                stats.webhook_delivered.fetch_add(1, Ordering::Relaxed);
            } else {
                stats.webhook_failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Posts one document, retrying transient failures; true when the receiver took it.
    async fn deliver(&self, doc: &Value, stop: &watch::Receiver<bool>) -> bool {
        let body = doc.to_string();
        let delivery = delivery_id(doc);
        let mut backoff = Backoff::new(self.first_retry, self.first_retry * 64);
        for attempt in 1..=self.attempts {
            let outcome = tokio::time::timeout(TIMEOUT, self.post(&body, &delivery)).await;
            let retry = match outcome {
                Ok(Ok(status)) if status.is_success() => return true,
                Ok(Ok(status)) => {
                    let transient = status.is_server_error()
                        || status == StatusCode::REQUEST_TIMEOUT
                        || status == StatusCode::TOO_MANY_REQUESTS;
                    tracing::warn!(%status, attempt, delivery, "webhook refused the alert");
                    transient
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, attempt, delivery, "webhook unreachable");
                    true
                }
                Err(_) => {
                    tracing::warn!(attempt, delivery, "webhook timed out");
                    true
                }
            };
            if !retry || attempt == self.attempts {
                break;
            }
            tokio::select! {
                () = tokio::time::sleep(backoff.next_wait()) => {}
                () = crate::shutdown::stopping(stop.clone()) => break,
            }
        }
        tracing::error!(delivery, "webhook alert not delivered");
        false
    }

    async fn post(
        &self,
        body: &str,
        delivery: &str,
    ) -> Result<StatusCode, hyper_util::client::legacy::Error> {
        let timestamp = (zdn_timestamps::now_ms() / 1000).to_string();
        let mut request = Request::post(self.url.clone())
            .header("content-type", "application/json")
            .header("user-agent", concat!("zdn-collector/", env!("CARGO_PKG_VERSION")))
            .header("x-zdn-timestamp", &timestamp)
            .header("x-zdn-delivery", delivery);
        if let Some(key) = &self.key {
            request = request.header("x-zdn-signature", signature(key, &timestamp, body));
        }
        // Every header value is valid by construction (static, digits, hex, `delivery_id`).
        let request = request.body(Full::new(Bytes::from(body.to_owned()))).expect("valid request parts");
        Ok(self.client.request(request).await?.status())
    }
}

/// `sha256=<hex of HMAC-SHA256(key, "{timestamp}.{body}")>`.
pub fn signature(key: &hmac::Key, timestamp: &str, body: &str) -> String {
    let tag = hmac::sign(key, format!("{timestamp}.{body}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// The same for every retry of one event. Indicators come from agents, so anything that is
/// not visible ASCII is percent-encoded: the id is always a valid header value.
fn delivery_id(doc: &Value) -> String {
    let c = &doc["correlation"];
    let id = format!(
        "{}:{}:{}",
        doc["event"].as_str().unwrap_or(""),
        c["indicator"].as_str().unwrap_or(""),
        c["participant_count"]
    );
    id.bytes()
        .map(
            |b| if b.is_ascii_graphic() && b != b'%' { (b as char).to_string() } else { format!("%{b:02X}") },
        )
        .collect()
}

/// The shared secret: the file's content without surrounding whitespace, at least 16 bytes.
fn read_secret(path: &Path) -> Result<hmac::Key, WebhookError> {
    let error = |reason: String| WebhookError::Secret { path: path.display().to_string(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    let secret = text.trim();
    if secret.len() < 16 {
        return Err(error("the secret must be at least 16 characters".into()));
    }
    Ok(hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matches_an_independent_hmac() {
        // Computed with Python: hmac.new(key, b'1767225600.{"event":"correlation.opened"}',
        // hashlib.sha256).hexdigest()
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"0123456789abcdef");
        assert_eq!(
            signature(&key, "1767225600", r#"{"event":"correlation.opened"}"#),
            "sha256=d45b7f8971b0680f871b6a18a6942227bc4572bb9289b3e961e0338c5aa201fd"
        );
    }

    #[test]
    fn delivery_ids_are_valid_header_values_whatever_the_indicator() {
        let doc = serde_json::json!({
            "event": "correlation.opened",
            "correlation": {"indicator": "evil.example/a b\r\nx-evil: 1\u{e9}%", "participant_count": 2}
        });
        let id = delivery_id(&doc);
        assert_eq!(id, "correlation.opened:evil.example/a%20b%0D%0Ax-evil:%201%C3%A9%25:2");
        assert!(hyper::header::HeaderValue::from_str(&id).is_ok());
    }

    #[test]
    fn short_or_missing_secrets_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "short\n").unwrap();
        assert!(read_secret(&path).err().unwrap().to_string().contains("at least 16"));
        assert!(read_secret(&dir.path().join("missing")).is_err());
        std::fs::write(&path, "  0123456789abcdef0123  \n").unwrap();
        assert!(read_secret(&path).is_ok());
    }
}
