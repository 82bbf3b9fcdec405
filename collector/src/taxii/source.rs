//! A TAXII 2.1 collection as an indicator source: polled, kept on disk, published like a file.
//!
//! Each `[[taxii.sources]]` entry has a directory `<data_dir>/taxii/<name>/` holding
//! `indicators.json`, a STIX 2.1 bundle of the collection's indicator objects (the newest
//! version of each id), and `.cursor.json`, the `added_after` to ask with next. The bundle is
//! one of the publishing sources, read by the same STIX parser as a configured file, so a
//! collection and a file of the same objects publish the same indicators; revoked and expired
//! indicators are left out there.
//!
//! A poll asks `GET <collection>/objects/?match[type]=indicator&limit=N[&added_after=T]` and
//! follows `more`/`next` to the last page. Only a poll that read every page changes anything:
//! the bundle is replaced atomically, then the cursor (the largest `X-TAXII-Date-Added-Last`
//! seen), then the indicators are republished. A failed poll (server away, refused
//! credentials, malformed page, a page over [`MAX_PAGE_BYTES`]) is logged with the source's
//! name, counted, and leaves the bundle and cursor as they were: the next poll asks again.
//!
//! Why no client crate for TAXII: the Rust ones are unmaintained or TAXII 2.0; the protocol
//! part we need is one GET with four parameters and an envelope, over reqwest.

use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The media type of TAXII 2.1 requests and answers.
pub const TAXII_MEDIA_TYPE: &str = "application/taxii+json;version=2.1";

/// Largest page body accepted; a larger one fails the poll.
pub const MAX_PAGE_BYTES: usize = 64 << 20;

/// Pages in one poll at most (a server that never says "no more" ends here, as an error).
const MAX_PAGES: usize = 100_000;

/// Objects kept per source at most.
const MAX_OBJECTS: usize = 5_000_000;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

const BUNDLE: &str = "indicators.json";
const CURSOR: &str = ".cursor.json";

/// One `[[taxii.sources]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Names the source in logs and its directory: letters, digits, `-` and `_`.
    pub name: String,
    /// The collection's URL: `https://server/api-root/collections/<id>/`.
    pub collection: String,
    /// HTTP basic authentication: the user, with the password in `password_file`.
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password_file: String,
    /// Or a bearer token, in this file.
    #[serde(default)]
    pub token_file: String,
    /// An extra CA (PEM) for the server's certificate.
    #[serde(default)]
    pub ca: String,
    #[serde(default = "default_poll_minutes")]
    pub poll_minutes: u32,
    /// Objects asked for per page (servers may send fewer).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
}

fn default_poll_minutes() -> u32 {
    60
}

fn default_page_size() -> u32 {
    1000
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("taxii source {name:?}: {reason}")]
    Config { name: String, reason: String },
    #[error("taxii source {name}: {url}: {reason}")]
    Poll { name: String, url: String, reason: String },
    #[error("taxii source {name}: {path}: {reason}")]
    Disk { name: String, path: String, reason: String },
}

impl SourceConfig {
    /// The checks `check-config` runs: a usable name, an http(s) collection URL, at most one
    /// kind of credential, sane intervals.
    pub fn validate(&self) -> Result<(), SourceError> {
        let fail = |reason: &str| Err(SourceError::Config { name: self.name.clone(), reason: reason.into() });
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return fail("name must be 1-64 letters, digits, '-' or '_'");
        }
        match reqwest::Url::parse(&self.collection) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
            _ => return fail("collection must be an http:// or https:// URL of a TAXII 2.1 collection"),
        }
        let basic = !self.username.is_empty() || !self.password_file.is_empty();
        if !self.token_file.is_empty() && basic {
            return fail("give either username and password_file or token_file, not both");
        }
        if self.username.is_empty() != self.password_file.is_empty() {
            return fail("username and password_file go together");
        }
        if self.poll_minutes == 0 || self.page_size == 0 {
            return fail("poll_minutes and page_size must be at least 1");
        }
        Ok(())
    }

    /// Where this source's bundle and cursor live.
    pub fn directory(&self, data_dir: &Path) -> PathBuf {
        data_dir.join("taxii").join(&self.name)
    }
}

enum Auth {
    None,
    Basic { username: String, password: String },
    Bearer(String),
}

/// What one poll did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Polled {
    pub pages: usize,
    /// Indicator objects received (new ids and new versions of known ones).
    pub received: usize,
    /// Whether the bundle changed (and so the indicators need publishing again).
    pub changed: bool,
}

/// A configured source, ready to poll.
pub struct Source {
    pub name: String,
    pub interval: Duration,
    objects_url: reqwest::Url,
    page_size: u32,
    auth: Auth,
    client: reqwest::Client,
    directory: PathBuf,
}

impl Source {
    pub fn new(config: &SourceConfig, data_dir: &Path) -> Result<Source, SourceError> {
        config.validate()?;
        let fail = |reason: String| SourceError::Config { name: config.name.clone(), reason };
        let secret = |path: &str| {
            std::fs::read_to_string(path)
                .map(|s| s.trim().to_owned())
                .map_err(|e| fail(format!("{path}: {e}")))
                .and_then(|s| if s.is_empty() { Err(fail(format!("{path} is empty"))) } else { Ok(s) })
        };
        let auth = if !config.token_file.is_empty() {
            Auth::Bearer(secret(&config.token_file)?)
        } else if !config.username.is_empty() {
            Auth::Basic { username: config.username.clone(), password: secret(&config.password_file)? }
        } else {
            Auth::None
        };
        let mut collection = config.collection.clone();
        if !collection.ends_with('/') {
            collection.push('/');
        }
        let objects_url = reqwest::Url::parse(&collection)
            .and_then(|u| u.join("objects/"))
            .map_err(|e| fail(format!("collection: {e}")))?;
        if objects_url.scheme() == "http" {
            tracing::warn!(source = %config.name, "taxii source over plain http: credentials travel unencrypted");
        }
        let ca = (!config.ca.is_empty()).then(|| Path::new(&config.ca));
        let tls = zdn_transport::outbound::client_config(ca).map_err(|e| fail(format!("ca: {e}")))?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("zdn-collector/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| fail(format!("HTTP client: {e}")))?;
        Ok(Source {
            name: config.name.clone(),
            interval: Duration::from_secs(u64::from(config.poll_minutes) * 60),
            objects_url,
            page_size: config.page_size,
            auth,
            client,
            directory: config.directory(data_dir),
        })
    }

    /// Asks for everything added since the last complete poll, page by page, and keeps it.
    pub async fn poll(&self) -> Result<Polled, SourceError> {
        let cursor = self.read_cursor()?;
        let mut polled = Polled::default();
        let mut newest_added = cursor.clone();
        let mut received: Vec<Value> = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self.page(cursor.as_deref(), next.as_deref()).await?;
            polled.pages += 1;
            if let Some(last) = page.date_added_last
                && newest_added.as_deref().is_none_or(|n| last.as_str() > n)
            {
                newest_added = Some(last);
            }
            received.extend(page.objects.into_iter().filter(|o| o["type"] == "indicator"));
            if received.len() > MAX_OBJECTS {
                return Err(self.poll_error(format!("more than {MAX_OBJECTS} objects")));
            }
            match (page.more, page.next) {
                (true, Some(token)) => next = Some(token),
                (true, None) => {
                    return Err(self.poll_error("the server says there is more but gives no `next`".into()));
                }
                (false, _) => break,
            }
            if polled.pages >= MAX_PAGES {
                return Err(self.poll_error(format!("still more after {MAX_PAGES} pages")));
            }
        }
        polled.received = received.len();
        if !received.is_empty() {
            let mut objects = self.read_bundle()?;
            for object in received {
                polled.changed |= keep_newest(&mut objects, object);
            }
            if polled.changed {
                self.write(BUNDLE, &bundle(self.objects_url.as_str(), objects))?;
            }
        }
        if newest_added != cursor
            && let Some(added) = &newest_added
        {
            self.write(CURSOR, &json!({ "added_after": added }))?;
        }
        Ok(polled)
    }

    async fn page(&self, added_after: Option<&str>, next: Option<&str>) -> Result<Page, SourceError> {
        let mut url = self.objects_url.clone();
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("match[type]", "indicator").append_pair("limit", &self.page_size.to_string());
            if let Some(after) = added_after {
                query.append_pair("added_after", after);
            }
            if let Some(next) = next {
                query.append_pair("next", next);
            }
        }
        let mut request = self.client.get(url.clone()).header("Accept", TAXII_MEDIA_TYPE);
        request = match &self.auth {
            Auth::None => request,
            Auth::Basic { username, password } => request.basic_auth(username, Some(password)),
            Auth::Bearer(token) => request.bearer_auth(token),
        };
        let fail =
            |reason: String| SourceError::Poll { name: self.name.clone(), url: url.to_string(), reason };
        let mut response = request.send().await.map_err(|e| fail(zdn_telemetry::error_text(&e)))?;
        let status = response.status();
        let date_added_last = response
            .headers()
            .get("X-TAXII-Date-Added-Last")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| fail(zdn_telemetry::error_text(&e)))? {
            if body.len() + chunk.len() > MAX_PAGE_BYTES {
                return Err(fail(format!("a page larger than {MAX_PAGE_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            return Err(fail(format!("{status}: {}", text.trim())));
        }
        let envelope: Envelope =
            serde_json::from_slice(&body).map_err(|e| fail(format!("not a TAXII envelope: {e}")))?;
        Ok(Page { objects: envelope.objects, more: envelope.more, next: envelope.next, date_added_last })
    }

    fn poll_error(&self, reason: String) -> SourceError {
        SourceError::Poll { name: self.name.clone(), url: self.objects_url.to_string(), reason }
    }

    fn read_cursor(&self) -> Result<Option<String>, SourceError> {
        let Some(cursor) = self.read(CURSOR)? else { return Ok(None) };
        Ok(cursor.get("added_after").and_then(Value::as_str).map(str::to_owned))
    }

    /// The kept objects by id.
    fn read_bundle(&self) -> Result<BTreeMap<String, Value>, SourceError> {
        let Some(bundle) = self.read(BUNDLE)? else { return Ok(BTreeMap::new()) };
        let objects = bundle.get("objects").and_then(Value::as_array).cloned().unwrap_or_default();
        Ok(objects.into_iter().filter_map(|o| Some((o.get("id")?.as_str()?.to_owned(), o))).collect())
    }

    fn read(&self, file: &str) -> Result<Option<Value>, SourceError> {
        let path = self.directory.join(file);
        let fail = |reason: String| SourceError::Disk {
            name: self.name.clone(),
            path: path.display().to_string(),
            reason,
        };
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| fail(e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(fail(e.to_string())),
        }
    }

    /// Replaces `file` atomically (a temporary file, synced, renamed over it).
    fn write(&self, file: &str, value: &Value) -> Result<(), SourceError> {
        let path = self.directory.join(file);
        let fail = |e: std::io::Error| SourceError::Disk {
            name: self.name.clone(),
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        std::fs::create_dir_all(&self.directory).map_err(fail)?;
        let mut temp =
            tempfile::Builder::new().prefix(".incoming").tempfile_in(&self.directory).map_err(fail)?;
        serde_json::to_writer(&mut temp, value).map_err(|e| fail(e.into()))?;
        temp.as_file().sync_all().map_err(fail)?;
        temp.persist(&path).map_err(|e| fail(e.error))?;
        Ok(())
    }
}

struct Page {
    objects: Vec<Value>,
    more: bool,
    next: Option<String>,
    date_added_last: Option<String>,
}

/// A TAXII 2.1 envelope (the answer to a GET of objects).
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    more: bool,
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    objects: Vec<Value>,
}

/// Keeps `object` unless a version at least as new of its id is kept; true if it was kept.
fn keep_newest(objects: &mut BTreeMap<String, Value>, object: Value) -> bool {
    let Some(id) = object.get("id").and_then(Value::as_str).map(str::to_owned) else { return false };
    let modified = |o: &Value| o.get("modified").and_then(Value::as_str).map(str::to_owned);
    if let Some(kept) = objects.get(&id)
        && (kept == &object || modified(kept) > modified(&object))
    {
        return false;
    }
    objects.insert(id, object);
    true
}

/// The bundle of `objects`; its id names the collection they came from.
fn bundle(collection: &str, objects: BTreeMap<String, Value>) -> Value {
    let mut bundle = Map::new();
    bundle.insert("type".into(), "bundle".into());
    bundle.insert(
        "id".into(),
        format!("bundle--{}", uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, collection.as_bytes())).into(),
    );
    bundle.insert("objects".into(), objects.into_values().collect());
    Value::Object(bundle)
}

/// Where the configured sources keep their bundles (a source not yet polled has none).
pub fn bundle_paths(configs: &[SourceConfig], data_dir: &Path) -> Vec<PathBuf> {
    configs.iter().map(|c| c.directory(data_dir).join(BUNDLE)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(name: &str, collection: &str) -> SourceConfig {
        SourceConfig {
            name: name.into(),
            collection: collection.into(),
            username: String::new(),
            password_file: String::new(),
            token_file: String::new(),
            ca: String::new(),
            poll_minutes: 60,
            page_size: 1000,
        }
    }

    #[test]
    fn bad_entries_are_refused_with_what_to_fix() {
        let ok = "https://taxii.example/api1/collections/abc/";
        let cases = [
            (config("a b", ok), "name must be"),
            (config("cti", "ftp://x/"), "http:// or https://"),
            (config("cti", "not a url"), "http:// or https://"),
            (SourceConfig { username: "u".into(), ..config("cti", ok) }, "go together"),
            (
                SourceConfig {
                    token_file: "t".into(),
                    username: "u".into(),
                    password_file: "p".into(),
                    ..config("cti", ok)
                },
                "not both",
            ),
            (SourceConfig { poll_minutes: 0, ..config("cti", ok) }, "at least 1"),
        ];
        for (config, expected) in cases {
            let error = config.validate().unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        }
        config("cti", ok).validate().unwrap();
    }

    /// A server that answers every request with `status` and `body`.
    async fn answering(status: &'static str, body: &'static str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let mut request = [0u8; 4096];
                let _ = tcp.read(&mut request).await;
                let answer = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/taxii+json;version=2.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tcp.write_all(answer.as_bytes()).await;
            }
        });
        format!("http://{addr}/api1/collections/c1/")
    }

    #[tokio::test]
    async fn a_bad_answer_fails_the_poll_by_name_and_keeps_nothing() {
        let cases = [
            ("200 OK", "this is not json", "not a TAXII envelope"),
            ("200 OK", r#"{"more": true, "objects": []}"#, "gives no `next`"),
            ("401 Unauthorized", r#"{"title": "no"}"#, "401"),
            ("500 Internal Server Error", "oops", "500"),
        ];
        for (status, body, expected) in cases {
            let data = tempfile::tempdir().unwrap();
            let source =
                Source::new(&config("partner", &answering(status, body).await), data.path()).unwrap();
            let error = source.poll().await.unwrap_err().to_string();
            assert!(error.contains("taxii source partner") && error.contains(expected), "{body}: {error}");
            assert!(!data.path().join("taxii/partner").exists(), "nothing kept after: {error}");
        }
    }

    #[test]
    fn the_newest_version_of_an_object_is_kept() {
        let mut objects = BTreeMap::new();
        let v = |modified: &str| json!({"type": "indicator", "id": "indicator--1", "modified": modified});
        assert!(keep_newest(&mut objects, v("2026-01-02T00:00:00.000Z")));
        assert!(!keep_newest(&mut objects, v("2026-01-01T00:00:00.000Z")), "older is ignored");
        assert!(!keep_newest(&mut objects, v("2026-01-02T00:00:00.000Z")), "the same is no change");
        assert!(keep_newest(&mut objects, v("2026-01-03T00:00:00.000Z")));
        assert!(!keep_newest(&mut objects, json!({"type": "indicator"})), "no id, not kept");
        assert_eq!(objects["indicator--1"]["modified"], "2026-01-03T00:00:00.000Z");
    }
}
