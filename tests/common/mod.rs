//! Test harness: a real collector on loopback with its own PKI, agents that replay the demo
//! captures through the real uplink, and the real `zdn` CLI run in-process.
//!
//! The agent's service tests (`agent_service`, `agent_enrol`) live here rather than in the
//! agent's crate because they need a collector, and the agent does not depend on it; they run
//! the real `zdn-agent` binary ([`agent_binary`]).

#![forbid(unsafe_code)]

pub mod browser;
pub mod console_client;

use anyhow::Result;
use clap::Parser;
use std::path::{Path, PathBuf};
use tempfile::TempDir;
use zdn_agent::delivery::{self, Delivered, Uplink};
use zdn_agent::packet_path::HomeNet;
use zdn_agent::pseudonym::Pseudonymiser;
use zdn_agent::replay::{self, AGGREGATE_CAPACITY};
use zdn_agent::sighting::{Aggregator, Sighting};
use zdn_collector::config::{Config, ConsoleConfig};
use zdn_collector::pki;
use zdn_collector::server::{self, RunningCollector};
use zdn_sample_traffic::{DEMO_INDICATORS, DemoSite, demo_sites};
use zdn_transport::{Bundle, Role};

/// One collector with its PKI in a temporary directory.
pub struct Network {
    pub dir: TempDir,
    pub pki: PathBuf,
    pub collector: RunningCollector,
    pub url: String,
}

pub const CERT: &str = "z-cert";

impl Network {
    pub async fn start() -> Result<Network> {
        Network::start_with(false).await
    }

    pub async fn start_with(insecure_dev: bool) -> Result<Network> {
        Network::start_on("sqlite", insecure_dev).await
    }

    /// A collector on the store `store` (a `collector.toml` `store` value).
    pub async fn start_on(store: &str, insecure_dev: bool) -> Result<Network> {
        Network::start_configured(store, insecure_dev, |_| {}).await
    }

    /// A collector whose configuration `adjust` changes first.
    pub async fn start_configured(
        store: &str,
        insecure_dev: bool,
        adjust: impl FnOnce(&mut Config),
    ) -> Result<Network> {
        let dir = tempfile::tempdir()?;
        pki::init(&dir.path().join("pki"), &[])?;
        Network::start_with_dir(dir, store, insecure_dev, adjust).await
    }

    /// A collector in `dir`, whose `pki` the caller created (to use the CA before the start).
    pub async fn start_in(dir: TempDir, store: &str, adjust: impl FnOnce(&mut Config)) -> Result<Network> {
        Network::start_with_dir(dir, store, false, adjust).await
    }

    async fn start_with_dir(
        dir: TempDir,
        store: &str,
        insecure_dev: bool,
        adjust: impl FnOnce(&mut Config),
    ) -> Result<Network> {
        let pki = dir.path().join("pki");
        let mut config = collector_config(dir.path(), &pki, store)?;
        adjust(&mut config);
        let collector = server::start(config, insecure_dev).await?;
        let scheme = if insecure_dev { "http" } else { "https" };
        let url = format!("{scheme}://{}", collector.addr);
        Ok(Network { dir, pki, collector, url })
    }

    /// Another collector instance with the same PKI and store (scale-out), and its URL.
    pub async fn another_instance(&self, store: &str) -> Result<(RunningCollector, String)> {
        let data = tempfile::tempdir_in(self.dir.path())?.keep();
        let config = collector_config(&data, &self.pki, store)?;
        let collector = server::start(config, false).await?;
        let url = format!("https://{}", collector.addr);
        Ok((collector, url))
    }

    pub fn issue(&self, participant: &str, role: Role, name: &str) -> PathBuf {
        pki::issue(&self.pki, &pki::Request::new(participant, role, Some(name))).expect("issue certificate")
    }

    /// The demo site's capture replayed into sightings (not sent).
    pub fn sightings_of(&self, site: &DemoSite) -> Result<Vec<Sighting>> {
        let pcap = site.write_capture(self.dir.path())?;
        let list = self.dir.path().join("indicators.txt");
        std::fs::write(&list, DEMO_INDICATORS)?;
        let set = zdn_indicators::build_set(&[list], zdn_indicators::Allowlists::NONE, None)?.set;
        let home = HomeNet::new(vec![site.home_net.parse()?]);
        let aggregator = Aggregator::new(60_000, AGGREGATE_CAPACITY, Pseudonymiser::ephemeral());
        Ok(replay::replay(&set, &home, &[pcap], aggregator)?.0)
    }

    /// Sends sightings with the credentials in `bundle`.
    pub async fn send(&self, bundle: &Path, sightings: &[Sighting]) -> Result<Delivered> {
        self.send_to(&self.url, bundle, sightings).await
    }

    /// Sends sightings to the collector at `url` (this one or another instance), through the
    /// agent's own delivery code, in batches of 2.
    pub async fn send_to(&self, url: &str, bundle: &Path, sightings: &[Sighting]) -> Result<Delivered> {
        deliver(url, Some(Bundle::load(bundle)?), sightings, 2).await
    }

    /// Every demo site reports its capture as its own participant.
    pub async fn run_demo_agents(&self) -> Result<()> {
        for site in demo_sites() {
            let bundle = self.issue(site.participant, Role::Agent, "gw-1");
            let sightings = self.sightings_of(&site)?;
            let delivery = self.send(&bundle, &sightings).await?;
            assert_eq!(delivery.stored, sightings.len() as u64);
        }
        Ok(())
    }

    /// Runs `zdn <args>` in-process against this collector and returns its stdout.
    pub async fn zdn(&self, identity: Option<&Path>, args: &[&str]) -> Result<String> {
        self.zdn_at(&self.url, identity, args).await
    }

    /// Runs `zdn <args>` in-process against the collector at `url`.
    pub async fn zdn_at(&self, url: &str, identity: Option<&Path>, args: &[&str]) -> Result<String> {
        let mut argv = vec!["zdn".to_owned(), "--collector".into(), url.to_owned()];
        if let Some(id) = identity {
            argv.extend(["--identity".into(), id.display().to_string()]);
        }
        argv.extend(args.iter().map(|a| a.to_string()));
        let cli = zdn_client::Cli::try_parse_from(argv)?;
        let mut out = Vec::new();
        zdn_client::run(cli, &mut out).await?;
        Ok(String::from_utf8(out)?)
    }

    /// A `WatchCorrelations` stream as `identity`: once this returns, the collector has
    /// subscribed it, so every later event arrives on it.
    pub async fn watch(&self, identity: &Path) -> Result<tonic::Streaming<zdn_proto::v1::CorrelationEvent>> {
        let channel = zdn_transport::client::connect(&self.url, Some(&Bundle::load(identity)?)).await?;
        Ok(zdn_proto::v1::analyst_service_client::AnalystServiceClient::new(channel)
            .watch_correlations(zdn_proto::v1::WatchCorrelationsRequest {})
            .await?
            .into_inner())
    }

    /// `zdn ... --format json` parsed.
    pub async fn zdn_json(&self, identity: &Path, args: &[&str]) -> Result<serde_json::Value> {
        let mut args = args.to_vec();
        args.extend(["--format", "json"]);
        Ok(serde_json::from_str(&self.zdn(Some(identity), &args).await?)?)
    }
}

fn collector_config(dir: &Path, pki: &Path, store: &str) -> Result<Config> {
    Ok(Config {
        listen: "127.0.0.1:0".parse()?,
        data_dir: dir.join("data"),
        store: store.to_owned(),
        identity: Some(pki.join("collector")),
        cert_participant: CERT.into(),
        console: ConsoleConfig { listen: "127.0.0.1:0".parse()?, ..ConsoleConfig::default() },
        ..Config::default()
    })
}

/// Runs OASIS's `stix2_validator` on `path`; `None` when it is not installed here (CI installs
/// it and sets `ZDN_REQUIRE_STIX_VALIDATOR=1`, which makes its absence a failure).
pub fn validate_stix(path: &std::path::Path) -> Option<(bool, String)> {
    match std::process::Command::new("stix2_validator")
        .args(["--strict-types", "--no-cache"])
        .arg(path)
        .output()
    {
        Ok(out) => {
            let text =
                String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
            Some((out.status.success(), text))
        }
        Err(_) => {
            let needs = "stix2_validator (pip install stix2-validator)";
            zdn_loud_skip::skip("STIX validation", needs, "ZDN_REQUIRE_STIX_VALIDATOR");
            None
        }
    }
}

pub fn site(participant: &str) -> DemoSite {
    demo_sites().into_iter().find(|s| s.participant == participant).expect("demo site")
}

/// The `zdn-agent` binary of this build: see [`workspace_binary`].
pub fn agent_binary() -> PathBuf {
    workspace_binary("zdn-agent", "zdn-agent")
}

/// The binary `name` of the workspace's package `package`, from this build
/// (`target/<profile>/<name>`). `cargo test --workspace` builds every binary before any test
/// runs; when this package's tests run alone and one is missing, it is built here, once. (A
/// binary left from an earlier build is used as it is: after changing a part, test the
/// workspace.)
pub fn workspace_binary(package: &str, name: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/<test>: the binaries are one level up.
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let binary = profile_dir.join(name);
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if !binary.exists() && !built.iter().any(|b| b == name) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = std::process::Command::new(cargo);
        build.args(["build", "-q", "-p", package, "--bin", name]);
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        let status = build.status().expect("running cargo build");
        assert!(status.success(), "cargo build -p {package} --bin {name} failed");
        built.push(name.to_owned());
    }
    binary
}

/// Delivers `sightings` once through the agent's delivery code (a temporary spool drained by
/// one session), in batches of `batch_size`.
pub async fn deliver(
    url: &str,
    bundle: Option<Bundle>,
    sightings: &[Sighting],
    batch_size: usize,
) -> Result<Delivered> {
    let uplink =
        Uplink { url: url.to_owned(), bundle, batch_size, reconnect_max: std::time::Duration::from_secs(1) };
    let wire: Vec<_> = sightings.iter().map(Sighting::to_proto).collect();
    Ok(delivery::deliver_once(&uplink, &wire).await?)
}
