//! A real headless Chromium (Debian's `chromium`) driven through `chromedriver` with
//! fantoccini (WebDriver), for the web console's end-to-end tests.
//!
//! Chromium trusts the console's certificate by its public key only
//! (`--ignore-certificate-errors-spki-list`, the pin of the collector's key), so the tests do
//! not touch any system trust store. The flags keep Chromium off the network (this machine has
//! none beyond loopback): no background networking, component updates, sync or QUIC.

use anyhow::{Context, Result, bail};
use base64::Engine;
use fantoccini::{Client, ClientBuilder, Locator};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tempfile::TempDir;
use tokio::process::{Child, Command};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// One chromedriver with one Chromium session; both end when this is dropped.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: TempDir,
}

/// Whether Chromium and chromedriver are installed; without them the browser tests skip,
/// loudly, unless `ZDN_REQUIRE_BROWSER=1` (set by `.ci/run`) makes that a failure.
pub fn available() -> bool {
    let present = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !present {
        let needs = format!("{CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)");
        zdn_loud_skip::skip("browser test", &needs, "ZDN_REQUIRE_BROWSER");
    }
    present
}

/// The `--ignore-certificate-errors-spki-list` pin of the certificate in `cert_pem`.
pub fn spki_pin(cert_pem: &Path) -> Result<String> {
    let pem = std::fs::read(cert_pem)?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).context("certificate PEM")?;
    let cert = pem.parse_x509().context("certificate")?;
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.public_key().raw);
    Ok(base64::engine::general_purpose::STANDARD.encode(digest.as_ref()))
}

impl Browser {
    /// Starts chromedriver on a free port and a Chromium session trusting the key `pin`.
    pub async fn start(pin: &str) -> Result<Browser> {
        // fantoccini's HTTPS connector asks rustls for a process-wide crypto provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting chromedriver")?;
        let profile = tempfile::tempdir()?;
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--window-size=1400,1000".into(),
            format!("--user-data-dir={}", profile.path().display()),
            format!("--ignore-certificate-errors-spki-list={pin}"),
        ];
        let mut capabilities = serde_json::Map::new();
        capabilities
            .insert("goog:chromeOptions".into(), serde_json::json!({ "binary": CHROMIUM, "args": args }));
        let webdriver = format!("http://127.0.0.1:{port}");
        let mut last = None;
        // chromedriver needs a moment to listen; bounded.
        for _ in 0..50 {
            match ClientBuilder::rustls()?.capabilities(capabilities.clone()).connect(&webdriver).await {
                Ok(client) => return Ok(Browser { client, driver, _profile: profile }),
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!("no WebDriver session from chromedriver: {last:?}")
    }

    /// Waits (at most 10 s) for an element.
    pub async fn wait_for(&self, css: &str) -> Result<fantoccini::elements::Element> {
        Ok(self.client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css(css)).await?)
    }

    /// Saves a PNG of the page as `target/console-screenshots/<name>.png` (CI keeps it).
    pub async fn screenshot(&self, name: &str) -> Result<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, self.client.screenshot().await?)?;
        Ok(path)
    }

    /// Ends the session and chromedriver.
    pub async fn close(mut self) -> Result<()> {
        self.client.close().await?;
        let _ = self.driver.kill().await;
        Ok(())
    }
}
