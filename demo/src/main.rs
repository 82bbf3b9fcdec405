//! # zdn-demo
//!
//! `zdn-demo`: the whole path on one machine, offline, in a few seconds.
//!
//! It creates a PKI, starts a collector on the embedded store (real TLS on loopback), runs
//! three agents as three institutions over the deterministic demo captures
//! (`zdn-sample-traffic`), then queries the collector as a CERT analyst and prints what
//! correlates — and the `zdn` commands to explore further while it keeps running.
//!
//! It is the one crate that links agent, collector and client together: the parts stay
//! siblings, and only the demo (and the workspace's end-to-end tests) put them side by side.

#![forbid(unsafe_code)]

use anyhow::{Context, Result};
use clap::Parser;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use zdn_agent::delivery::{self, Uplink};
use zdn_agent::heartbeat;
use zdn_agent::packet_path::HomeNet;
use zdn_agent::pseudonym::Pseudonymiser;
use zdn_agent::replay::{self, AGGREGATE_CAPACITY};
use zdn_agent::sighting::{Aggregator, Sighting};
use zdn_answers::output::{self, Format};
use zdn_answers::rows::{correlation_row, sighting_row};
use zdn_client::connect;
use zdn_collector::config::{Config, ConsoleConfig};
use zdn_collector::{pki, server};
use zdn_proto::v1::{self, analyst_service_client::AnalystServiceClient};
use zdn_sample_traffic::{DEMO_INDICATORS, demo_sites};
use zdn_transport::{Bundle, Role};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    zdn_telemetry::init_logging(zdn_telemetry::LogFormat::Text, "warn");
    let args = DemoArgs::parse();
    let mut stdout = std::io::stdout();
    match run(args, &mut stdout).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zdn-demo: {}", zdn_client::describe(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// Start a collector and three agents over demo captures, and show what correlates.
#[derive(clap::Parser)]
#[command(name = "zdn-demo", version)]
struct DemoArgs {
    /// Keep everything (PKI, captures, database) in this directory; default: a temporary one.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Address for the demo collector (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// Address for the demo's web console (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    console_listen: std::net::SocketAddr,
    /// Stop after printing the results instead of serving until Ctrl-C.
    #[arg(long)]
    exit: bool,
}

/// The CERT's participant id in the demo.
const CERT: &str = "z-cert";

async fn run(args: DemoArgs, out: &mut (dyn Write + Send)) -> Result<()> {
    let temp;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            temp = tempfile::Builder::new().prefix("zdn-demo-").tempdir()?;
            temp.path().to_owned()
        }
    };
    let pki_dir = dir.join("pki");
    if !pki_dir.join("ca").join("ca.pem").exists() {
        pki::init(&pki_dir, &[])?;
    }
    let indicators = dir.join("indicators.txt");
    std::fs::write(&indicators, DEMO_INDICATORS)?;
    let captures = dir.join("captures");
    std::fs::create_dir_all(&captures)?;

    let config = Config {
        listen: args.listen,
        data_dir: dir.join("data"),
        identity: Some(pki_dir.join("collector")),
        cert_participant: CERT.to_owned(),
        console: ConsoleConfig { listen: args.console_listen, ..ConsoleConfig::default() },
        ..Config::default()
    };
    write_config(&dir.join("collector.toml"), &config)?;
    let collector = server::start(config, false).await?;
    let url = format!("https://{}", collector.addr);
    writeln!(out, "ZDN demo in {}\ncollector listening on {url} (embedded SQLite store)\n", dir.display())?;

    for site in demo_sites() {
        let pcap = site.write_capture(&captures)?;
        let bundle_dir =
            pki::issue(&pki_dir, &pki::Request::new(site.participant, Role::Agent, Some("gateway-1")))?;
        let set = zdn_indicators::build_set(
            std::slice::from_ref(&indicators),
            zdn_indicators::Allowlists::NONE,
            None,
        )?
        .set;
        let home = HomeNet::new(vec![site.home_net.parse()?]);
        let aggregator = Aggregator::new(60_000, AGGREGATE_CAPACITY, Pseudonymiser::ephemeral());
        let (sightings, stats) = replay::replay(&set, &home, &[&pcap], aggregator)?;
        let uplink = Uplink {
            url: url.clone(),
            bundle: Some(Bundle::load(&bundle_dir)?),
            batch_size: 500,
            reconnect_max: Duration::from_secs(1),
        };
        let wire: Vec<_> = sightings.iter().map(Sighting::to_proto).collect();
        let delivery = delivery::deliver_once(&uplink, &wire).await?;
        heartbeat::send(uplink.connect().await?, stats.heartbeat(&set)).await?;
        writeln!(
            out,
            "agent {:<16} replayed {:>2} packets -> {} sightings, {} stored by the collector",
            site.participant,
            stats.path.packets,
            sightings.len(),
            delivery.stored
        )?;
    }

    let analyst = pki::issue(&pki_dir, &pki::Request::new(CERT, Role::Analyst, None))?;
    let participant_analyst =
        pki::issue(&pki_dir, &pki::Request::new("umc-noord", Role::Analyst, Some("soc")))?;
    let mut client = AnalystServiceClient::new(connect(&url, Some(&analyst)).await?);
    let correlations =
        client.list_correlations(v1::ListCorrelationsRequest::default()).await?.into_inner().correlations;
    writeln!(out, "\nCorrelations (indicators seen at >= 2 institutions within 24 h):")?;
    output::write(out, Format::Table, &correlations.iter().map(correlation_row).collect::<Vec<_>>())?;
    let mut rows = Vec::new();
    for c in &correlations {
        let request = v1::ListSightingsRequest { indicator: c.indicator.clone(), ..Default::default() };
        let sightings = client.list_sightings(request).await?.into_inner().sightings;
        rows.extend(sightings.iter().map(|s| {
            let mut row = sighting_row(s);
            row.retain(|k, _| {
                ["participant", "indicator", "via", "observed", "first_seen", "count", "src"]
                    .contains(&k.as_str())
            });
            row
        }));
    }
    writeln!(out, "\nThe sightings behind them (src is the agent's keyed pseudonym of the internal host):")?;
    output::write(out, Format::Table, &rows)?;

    let admin = pki::issue(&pki_dir, &pki::Request::new(CERT, Role::Admin, Some("demo-admin")))?;
    let mut admin_client = AnalystServiceClient::new(connect(&url, Some(&admin)).await?);
    let mut token = async |participant: &str, name: &str| -> Result<String> {
        let request = v1::IssueConsoleTokenRequest {
            participant: participant.into(),
            role: "analyst".into(),
            name: name.into(),
            ttl_hours: 24,
        };
        Ok(admin_client.issue_console_token(request).await?.into_inner().token)
    };
    let (cert_token, participant_token) =
        (token(CERT, "demo CERT analyst").await?, token("umc-noord", "demo umc-noord analyst").await?);
    if let Some(console) = collector.console {
        writeln!(out, "\nWeb console: https://{console}/")?;
        writeln!(out, "  sign in as the CERT's analyst with    {cert_token}")?;
        writeln!(out, "  or as umc-noord's own analyst with    {participant_token}")?;
        writeln!(
            out,
            "  (its certificate is from the demo's own CA, {}: trust it, or accept the browser's warning)",
            pki_dir.join("ca").join("ca.pem").display()
        )?;
    }

    if args.exit {
        return collector.stop().await;
    }
    let zdn = zdn_command();
    writeln!(out, "\nExplore further (as the CERT's analyst):")?;
    writeln!(out, "  export ZDN_COLLECTOR={url} ZDN_IDENTITY={}", analyst.display())?;
    for cmd in [
        "correlations",
        "correlations --format json",
        "sightings",
        "indicator updates.evil-cdn.example",
        "fleet",
        "watch",
    ] {
        writeln!(out, "  {zdn} {cmd}")?;
    }
    writeln!(out, "As umc-noord's own analyst (other institutions are counted, not named):")?;
    writeln!(out, "  {zdn} --collector {url} --identity {} correlations", participant_analyst.display())?;
    writeln!(out, "\nThe collector keeps running; press Ctrl-C to stop.")?;
    out.flush()?;
    collector.serve_until_signal().await.context("demo collector")
}

/// How to run `zdn`: the binary beside this one (an installed package, or a cargo build of
/// the workspace), else through cargo.
fn zdn_command() -> String {
    let beside = std::env::current_exe().ok().and_then(|p| Some(p.parent()?.join("zdn")));
    match beside.filter(|p| p.exists()).and_then(|p| p.to_str().map(str::to_owned)) {
        Some(path) => path,
        None => "cargo run -q -p zdn-client --".into(),
    }
}

/// Writes the demo's configuration so the collector can be restarted by hand with
/// `zdn-collector serve --config <dir>/collector.toml`.
fn write_config(path: &Path, c: &Config) -> Result<()> {
    let text = format!(
        "# Written by `zdn-demo`.\nlisten = \"127.0.0.1:7443\"\ndata_dir = {:?}\nidentity = {:?}\ncert_participant = {:?}\n\
         [console]\nlisten = \"127.0.0.1:7444\"\n",
        c.data_dir.display().to_string(),
        c.identity_dir().display().to_string(),
        c.cert_participant
    );
    Ok(std::fs::write(path, text)?)
}
