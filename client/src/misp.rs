//! `zdn export misp --post URL`: the MISP export sent to a MISP instance, one
//! `POST /sightings/add` per sighting (the body each export entry already is), with the
//! instance's API key in `Authorization`, as PyMISP's `add_sighting` sends it.
//!
//! Failures are sorted as MISP means them: a timeout, a connection error, 408, 429 or a 5xx is
//! tried again (backing off, up to `--attempts`); another 4xx, or a 2xx whose body says
//! `"saved": false` or carries `errors` (MISP's answer when it holds no attribute with that
//! uuid or value), is a refusal, reported with MISP's message and not repeated; 401 means the
//! key is wrong and stops the whole run at once. A few requests run at a time, so a large
//! export does not wait on one round trip per sighting.

use anyhow::{Context, Result, bail};
use reqwest::StatusCode;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use zdn_backoff::Backoff;

/// Requests in flight at once.
const CONCURRENCY: usize = 4;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where to send and how.
pub struct Target {
    sightings_add: reqwest::Url,
    key: String,
    client: reqwest::Client,
    attempts: u32,
    first_retry: Duration,
}

/// What became of each sighting.
#[derive(Debug, Default)]
pub struct Report {
    pub sent: usize,
    /// MISP refused these (with its message), e.g. it holds no such attribute.
    pub refused: Vec<String>,
    /// Still failing after every attempt.
    pub failed: Vec<String>,
}

enum Outcome {
    Sent,
    Refused(String),
    Failed(String),
    BadKey(String),
}

impl Target {
    /// `url` is the MISP instance (`https://misp.example`), `key_file` holds its API key,
    /// `ca` an extra CA for its certificate.
    pub fn new(url: &str, key_file: &Path, ca: Option<&Path>, attempts: u32) -> Result<Target> {
        let mut base = reqwest::Url::parse(url).with_context(|| format!("--post {url:?}"))?;
        if !matches!(base.scheme(), "http" | "https") {
            bail!("--post {url:?}: expected the http(s) URL of a MISP instance");
        }
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let key = std::fs::read_to_string(key_file)
            .with_context(|| format!("--misp-key-file {}", key_file.display()))?
            .trim()
            .to_owned();
        if key.is_empty() {
            bail!("--misp-key-file {}: the file is empty", key_file.display());
        }
        let tls = zdn_transport::outbound::client_config(ca).context("--misp-ca")?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("zdn/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("the HTTP client")?;
        Ok(Target {
            sightings_add: base.join("sightings/add")?,
            key,
            client,
            attempts: attempts.max(1),
            first_retry: Duration::from_millis(500),
        })
    }

    /// Sends every entry; stops early only when MISP refuses the key.
    pub async fn send(&self, entries: &[Value]) -> Result<Report> {
        let mut report = Report::default();
        for batch in entries.chunks(CONCURRENCY) {
            // Collected first: a lazy iterator of borrowing futures held across the await
            // would keep the whole run from being `Send`.
            let sends: Vec<_> = batch.iter().map(|e| self.send_one(e)).collect();
            for outcome in futures::future::join_all(sends).await {
                match outcome {
                    Outcome::Sent => report.sent += 1,
                    Outcome::Refused(why) => report.refused.push(why),
                    Outcome::Failed(why) => report.failed.push(why),
                    Outcome::BadKey(why) => bail!("{}: the API key was refused: {why}", self.sightings_add),
                }
            }
        }
        Ok(report)
    }

    async fn send_one(&self, entry: &Value) -> Outcome {
        let what = entry.get("uuid").or(entry.get("value")).and_then(Value::as_str).unwrap_or("?").to_owned();
        let mut backoff = Backoff::new(self.first_retry, self.first_retry * 32);
        let mut last = String::new();
        for attempt in 1..=self.attempts {
            let request = self
                .client
                .post(self.sightings_add.clone())
                .header("Authorization", &self.key)
                .header("Accept", "application/json")
                .header("Content-Type", "application/json")
                .body(entry.to_string());
            match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let body = response.text().await.unwrap_or_default();
                    match judge(status, &body) {
                        Judged::Sent => return Outcome::Sent,
                        Judged::Refused(m) => return Outcome::Refused(format!("{what}: {m}")),
                        Judged::BadKey(m) => return Outcome::BadKey(m),
                        Judged::Again(m) => last = m,
                    }
                }
                Err(e) => last = zdn_telemetry::error_text(&e),
            }
            if attempt < self.attempts {
                tokio::time::sleep(backoff.next_wait()).await;
            }
        }
        Outcome::Failed(format!("{what}: {last} (after {} attempts)", self.attempts))
    }
}

enum Judged {
    Sent,
    Refused(String),
    Again(String),
    BadKey(String),
}

/// What MISP's answer means.
fn judge(status: StatusCode, body: &str) -> Judged {
    let json: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let message = ["errors", "message", "name"]
        .iter()
        .find_map(|k| json.get(*k).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
        .unwrap_or_else(|| body.chars().take(200).collect());
    if status == StatusCode::UNAUTHORIZED {
        return Judged::BadKey(format!("{status}: {message}"));
    }
    if status.is_success() {
        let refused = json.get("saved") == Some(&Value::Bool(false)) || json.get("errors").is_some();
        return if refused { Judged::Refused(message) } else { Judged::Sent };
    }
    if status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
    {
        return Judged::Again(format!("{status}: {message}"));
    }
    Judged::Refused(format!("{status}: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_target_is_refused_by_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let (key, empty) = (dir.path().join("key"), dir.path().join("empty"));
        std::fs::write(&key, "k\n").unwrap();
        std::fs::write(&empty, "\n").unwrap();
        let error = |url: &str, file: &Path| Target::new(url, file, None, 1).err().map(|e| format!("{e:#}"));
        assert!(error("ftp://misp.example", &key).unwrap().contains("expected the http(s) URL"));
        assert!(error("not a url", &key).unwrap().contains("--post"));
        assert!(error("https://misp.example", &empty).unwrap().contains("is empty"));
        assert!(
            error("https://misp.example", &dir.path().join("absent")).unwrap().contains("--misp-key-file")
        );
        assert!(error("https://misp.example/", &key).is_none());
    }

    #[test]
    fn misp_answers_are_sorted_into_sent_refused_retried_and_bad_key() {
        let ok = r#"{"name": "1 sighting successfully added.", "message": "1 sighting successfully added.", "url": "/sightings/add"}"#;
        assert!(matches!(judge(StatusCode::OK, ok), Judged::Sent));
        let none =
            r#"{"saved": false, "name": "Could not add Sighting", "errors": "No valid attributes found."}"#;
        assert!(
            matches!(judge(StatusCode::FORBIDDEN, none), Judged::Refused(m) if m.contains("No valid attributes"))
        );
        assert!(matches!(judge(StatusCode::OK, none), Judged::Refused(_)));
        assert!(matches!(judge(StatusCode::SERVICE_UNAVAILABLE, ""), Judged::Again(_)));
        assert!(matches!(judge(StatusCode::TOO_MANY_REQUESTS, ""), Judged::Again(_)));
        assert!(
            matches!(judge(StatusCode::UNAUTHORIZED, r#"{"message": "Authentication failed."}"#), Judged::BadKey(m) if m.contains("Authentication failed"))
        );
    }
}
