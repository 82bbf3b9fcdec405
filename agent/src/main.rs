//! `zdn-agent`: the command line of the sensor.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use ipnet::IpNet;
use std::io::Write;
use std::path::{Path, PathBuf};
use zdn_agent::config::AgentConfig;
use zdn_agent::inspect::HomeNet;
use zdn_agent::pseudonym::Pseudonymiser;
use zdn_agent::replay::{self, AGGREGATE_CAPACITY};
use zdn_agent::service::Controls;
use zdn_agent::sighting::Aggregator;
use zdn_agent::sync::Synced;
use zdn_agent::uplink;
use zdn_indicators::signing::{Publisher, VerifyingKey};
use zdn_telemetry::LogFormat;

#[derive(Parser)]
#[command(
    name = "zdn-agent",
    version,
    about = "ZDN sensor agent: matches traffic against indicators and reports sightings"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the sensor: capture, match, spool and send sightings, follow the collector's
    /// indicator set. SIGHUP reloads local lists and reopens the alert log; SIGTERM stops
    /// after flushing open sightings into the spool.
    ///
    /// Example: zdn-agent run --config /etc/zdn/agent.toml
    #[command(verbatim_doc_comment)]
    Run {
        #[arg(long, default_value = "/etc/zdn/agent.toml")]
        config: PathBuf,
    },
    /// Install the credential bundle the CERT issued (`bundle.pem` from `zdn-collector pki
    /// issue`) as this agent's identity, after checking that it chains to its CA, that the key
    /// belongs to the certificate and that it is an agent's.
    ///
    /// Example: zdn-agent enrol --bundle gw-1-bundle.pem
    #[command(verbatim_doc_comment)]
    Enrol {
        #[arg(long)]
        bundle: PathBuf,
        /// Identity directory to write (cert.pem, key.pem, ca.pem).
        #[arg(long, default_value = "/etc/zdn/identity")]
        identity: PathBuf,
        /// Group that may read the key (the service's).
        #[arg(long, default_value = "zdn-agent")]
        group: String,
        /// Do not set a group on the key (developer machines without the package's user).
        #[arg(long, conflicts_with = "group")]
        no_group: bool,
        /// Replace an identity already there.
        #[arg(long)]
        force: bool,
    },
    /// Check a configuration file: syntax, values, identity, indicator sources, state directory.
    ///
    /// Example: zdn-agent check-config --config /etc/zdn/agent.toml
    #[command(verbatim_doc_comment)]
    CheckConfig {
        #[arg(long, default_value = "/etc/zdn/agent.toml")]
        config: PathBuf,
    },
    /// Match the traffic in capture files and print or send the sightings.
    ///
    /// Examples:
    ///   zdn-agent replay --pcap gw.pcap --indicators iocs.txt
    ///   zdn-agent replay --pcap gw.pcap --indicators iocs.txt --home-net 10.0.0.0/8 \
    ///       --collector https://collector.example:7443 --identity /etc/zdn/identity
    #[command(verbatim_doc_comment)]
    Replay(ReplayArgs),
    /// Print every observable found in capture files — destinations, DNS names, TLS/QUIC
    /// server names, JA3/JA4, HTTP hosts and URLs, blind spots — matched or not.
    ///
    /// Example: zdn-agent observe --pcap gw.pcap --format jsonl
    #[command(verbatim_doc_comment)]
    Observe {
        /// Capture file (pcap or pcapng); repeat for several.
        #[arg(long = "pcap", required = true)]
        pcaps: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "text")]
        format: ObserveFormat,
    },
    /// Load indicator sources and allowlists and print the load report: what was accepted,
    /// rejected (with file and line), skipped and suppressed.
    ///
    /// Example: zdn-agent check-indicators --indicators feeds/ --allowlist misp-warninglists/lists
    #[command(verbatim_doc_comment)]
    CheckIndicators(IndicatorArgs),
    /// Load indicator sources and allowlists, print the load report, and write the compiled
    /// set that `--indicators` loads in a fraction of the time.
    ///
    /// Example: zdn-agent compile-indicators --indicators feeds/ --output /var/lib/zdn-agent/indicators.zdn
    #[command(verbatim_doc_comment)]
    CompileIndicators {
        #[command(flatten)]
        sources: IndicatorArgs,
        /// Where to write the compiled set.
        #[arg(long)]
        output: PathBuf,
        /// Version number stored in the set (0: a local set).
        #[arg(long, default_value_t = 0)]
        set_version: u64,
        /// Sign the set with this Ed25519 key file (created if missing); prints the public key
        /// that agents pin.
        #[arg(long)]
        sign_key: Option<PathBuf>,
    },
    /// Fetch the collector's signed indicator set and install it if it verifies against the
    /// pinned key, is newer and plausible; the installed set is what `--indicators` then loads.
    ///
    /// Example: zdn-agent sync-indicators --collector https://collector.example:7443 --identity /etc/zdn/identity \
    ///     --pinned-key 3b6a… --installed /var/lib/zdn-agent/indicators.zdn
    #[command(verbatim_doc_comment)]
    SyncIndicators {
        #[arg(long)]
        collector: String,
        #[arg(long)]
        identity: PathBuf,
        #[command(flatten)]
        target: InstallTarget,
    },
    /// Find the internal address behind a pseudonym from this agent's sightings, by
    /// recomputing pseudonyms of the home networks with the local secret.
    ///
    /// Example: zdn-agent resolve h-3f9a1c2b7d4e5f60 --secret-file /var/lib/zdn-agent/pseudonym.key --home-net 10.0.0.0/16
    #[command(verbatim_doc_comment)]
    Resolve {
        pseudonym: String,
        #[arg(long)]
        secret_file: PathBuf,
        /// Networks to search (CIDR, comma-separated or repeated), at most 2^24 addresses.
        #[arg(long, value_delimiter = ',', required = true)]
        home_net: Vec<IpNet>,
    },
    /// Install a signed set as this agent's last good set, if it verifies against the pinned
    /// key, is newer than the installed one and does not shrink it below half (unless --force).
    /// On any refusal the installed set stays in force.
    ///
    /// Example: zdn-agent install-indicators --set iocs-v42.zdn --pinned-key 3b6a… --installed /var/lib/zdn-agent/indicators.zdn
    #[command(verbatim_doc_comment)]
    InstallIndicators {
        #[arg(long)]
        set: PathBuf,
        #[command(flatten)]
        target: InstallTarget,
    },
}

/// Where a signed set is installed, and how it is checked.
#[derive(clap::Args)]
struct InstallTarget {
    /// Public key (64 hex digits) the set must be signed with.
    #[arg(long, value_parser = parse_key)]
    pinned_key: VerifyingKey,
    /// The last good set: replaced only by a newer, plausible set that verifies.
    #[arg(long)]
    installed: PathBuf,
    /// Install even if the new set is less than half the size of the installed one.
    #[arg(long)]
    force: bool,
}

#[derive(clap::Args)]
struct IndicatorArgs {
    /// Indicator source: a file or directory in any supported format (plain or trail lists,
    /// CSV, Zeek Intel, MISP feed or event, STIX 2.1 bundle); repeat for several.
    #[arg(long = "indicators", required = true)]
    indicators: Vec<PathBuf>,
    /// MISP warninglist (list.json or a directory of them): indicators it covers never match.
    #[arg(long = "allowlist")]
    allowlists: Vec<PathBuf>,
    /// Public key (64 hex digits) that compiled sets must be signed with.
    #[arg(long, value_parser = parse_key)]
    pinned_key: Option<VerifyingKey>,
}

fn parse_key(text: &str) -> Result<VerifyingKey, String> {
    zdn_indicators::signing::parse_public_key(text).map_err(|e| e.to_string())
}

impl IndicatorArgs {
    fn build(&self) -> Result<zdn_indicators::BuiltSet> {
        Ok(zdn_indicators::build_set(&self.indicators, &self.allowlists, self.pinned_key.as_ref())?)
    }
}

#[derive(clap::Args)]
struct ReplayArgs {
    /// Capture file (pcap or pcapng); repeat for several, replayed in order.
    #[arg(long = "pcap", required = true)]
    pcaps: Vec<PathBuf>,
    #[command(flatten)]
    sources: IndicatorArgs,
    /// Internal networks (CIDR, comma-separated or repeated). Without it, every source counts
    /// as internal and every destination as external.
    #[arg(long, value_delimiter = ',')]
    home_net: Vec<IpNet>,
    /// Aggregation window in seconds of packet time.
    #[arg(long, default_value_t = 60)]
    window: u32,
    /// File holding the pseudonym secret (created if missing). Without it, a throw-away secret
    /// is used and pseudonyms cannot be resolved later.
    #[arg(long)]
    secret_file: Option<PathBuf>,
    /// Report internal addresses instead of pseudonyms (only if the participant opted in).
    #[arg(long)]
    share_internal_addresses: bool,
    /// Send the sightings to this collector (https://HOST:PORT) instead of printing them.
    #[arg(long, requires = "identity")]
    collector: Option<String>,
    /// Credential directory (cert.pem, key.pem, ca.pem) for the collector.
    #[arg(long)]
    identity: Option<PathBuf>,
    /// Sightings per batch sent to the collector.
    #[arg(long, default_value_t = 500)]
    batch_size: usize,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    zdn_telemetry::init_logging(cli.log_format, "info");
    let result = match cli.command {
        Command::Run { config } => run(&config),
        Command::Enrol { bundle, identity, group, no_group, force } => {
            enrol(&bundle, &identity, (!no_group).then_some(group.as_str()), force)
        }
        Command::Observe { pcaps, format } => observe(&pcaps, format),
        Command::CheckConfig { config } => check_config(&config),
        Command::Replay(args) => run_replay(args),
        Command::CheckIndicators(args) => args.build().map(|built| println!("{}", built.summary())),
        Command::CompileIndicators { sources, output, set_version, sign_key } => {
            compile(&sources, &output, set_version, sign_key.as_deref())
        }
        Command::InstallIndicators { set, target } => install(&set, &target),
        Command::Resolve { pseudonym, secret_file, home_net } => resolve(&pseudonym, &secret_file, &home_net),
        Command::SyncIndicators { collector, identity, target } => {
            sync_indicators(&collector, &identity, &target)
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zdn-agent: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ObserveFormat {
    /// One line per observable: time, via, value, src -> dst:port.
    Text,
    /// One JSON object per line.
    Jsonl,
}

fn observe(pcaps: &[PathBuf], format: ObserveFormat) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut failed = None;
    let stats = zdn_agent::observe::observe(pcaps, |o| {
        let written = match format {
            ObserveFormat::Jsonl => serde_json::to_writer(&mut out, &o)
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n")),
            ObserveFormat::Text => {
                writeln!(
                    out,
                    "{}  {:<14} {:<40} {} -> {}:{}",
                    o.time, o.via, o.value, o.src, o.dst, o.dst_port
                )
            }
        };
        if let Err(e) = written {
            failed.get_or_insert(e);
        }
    })?;
    let flushed = out.flush();
    // A reader that stopped early (`| head`) is not an error.
    match failed.map_or(flushed, Err) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
        other => other?,
    }
    eprintln!(
        "{} DNS queries ({} malformed), {} TLS ClientHellos ({} malformed), {} HTTP requests ({} malformed); blind spots: {} ECH, {} DoT, {} DoH",
        stats.dns_queries,
        stats.dns_malformed,
        stats.tls_hellos,
        stats.tls_malformed,
        stats.http_requests,
        stats.http_malformed,
        stats.blind_ech,
        stats.blind_dot,
        stats.blind_doh
    );
    Ok(())
}

fn run(path: &Path) -> Result<()> {
    let config = AgentConfig::load(path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let (reload_tx, reload) = tokio::sync::mpsc::channel(1);
        let (mut term, mut int, mut hup) = (
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
            signal(SignalKind::hangup())?,
        );
        let path = path.to_owned();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = term.recv() => break,
                    _ = int.recv() => break,
                    _ = hup.recv() => match AgentConfig::load(&path) {
                        Ok(config) => {
                            tracing::info!(config = %path.display(), "SIGHUP: reloading");
                            let _ = reload_tx.send(config).await;
                        }
                        Err(e) => tracing::error!(error = %e, "SIGHUP: configuration not reloaded"),
                    },
                }
            }
            stop_tx.send_replace(true);
        });
        zdn_agent::service::run(config, Controls { stop, reload }).await
    })
}

fn enrol(bundle: &Path, identity: &Path, group: Option<&str>, force: bool) -> Result<()> {
    let pem = std::fs::read(bundle).with_context(|| format!("reading {}", bundle.display()))?;
    let id = zdn_agent::enrol::enrol(&pem, identity, group, force)?;
    println!(
        "enrolled as participant {} ({}), identity in {}; set collector.identity to it in agent.toml",
        id.participant,
        id.name,
        identity.display()
    );
    Ok(())
}

fn check_config(path: &Path) -> Result<()> {
    let config = AgentConfig::load(path)?;
    println!("{}: syntax and values ok", path.display());
    if !config.collector.url.is_empty() && !config.collector.url.starts_with("http://") {
        let bundle = zdn_transport::Bundle::load(&config.collector.identity)?;
        let cert = bundle.certs.first().context("identity: no certificate")?;
        let id = zdn_transport::identity::Identity::from_certificate(cert)?;
        if id.role != zdn_transport::Role::Agent {
            bail!(
                "identity {}: the certificate is for role {}, not agent",
                config.collector.identity.display(),
                id.role
            );
        }
        println!(
            "identity {}: participant {} ({})",
            config.collector.identity.display(),
            id.participant,
            id.name
        );
    }
    let pinned = config.pinned_key().map_err(anyhow::Error::msg)?;
    if !config.indicators.local.is_empty() || !config.indicators.allowlists.is_empty() {
        let built = zdn_indicators::build_set(
            &config.indicators.local,
            &config.indicators.allowlists,
            pinned.as_ref(),
        )?;
        println!("local indicators:\n{}", built.summary());
    }
    for name in &config.capture.interfaces {
        if !pnet_datalink::interfaces().iter().any(|i| &i.name == name) {
            bail!("capture.interfaces: no interface named {name:?}");
        }
    }
    for file in &config.capture.pcap {
        if !file.is_file() {
            bail!("capture.pcap: {} is not a file", file.display());
        }
    }
    println!("configuration ok");
    Ok(())
}

fn compile(sources: &IndicatorArgs, output: &Path, version: u64, sign_key: Option<&Path>) -> Result<()> {
    let built = sources.build()?;
    println!("{}", built.summary());
    match sign_key {
        None => zdn_indicators::set::compiled::write(&built.set, version, output)?,
        Some(key) => {
            let publisher = Publisher::load_or_create(key)?;
            std::fs::write(output, publisher.sign(&built.set, version))
                .with_context(|| format!("writing {}", output.display()))?;
            println!(
                "signed with public key {} (pin it on agents with --pinned-key)",
                publisher.public_hex()
            );
        }
    }
    println!("compiled set version {version} written to {}", output.display());
    Ok(())
}

fn resolve(pseudonym: &str, secret_file: &Path, home_net: &[IpNet]) -> Result<()> {
    if !secret_file.exists() {
        bail!(
            "{}: no pseudonym secret here (it is created by the agent on first use)",
            secret_file.display()
        );
    }
    let secret = Pseudonymiser::load_or_create(secret_file)
        .with_context(|| format!("pseudonym secret {}", secret_file.display()))?;
    match secret.resolve(pseudonym, home_net)? {
        Some(ip) => {
            println!("{pseudonym} = {ip}");
            Ok(())
        }
        None => bail!("{pseudonym} is not an address of {home_net:?} under this secret"),
    }
}

fn sync_indicators(url: &str, identity: &Path, target: &InstallTarget) -> Result<()> {
    let InstallTarget { pinned_key, installed, force } = target;
    let bundle = zdn_transport::Bundle::load(identity)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let channel = zdn_transport::client::connect(url, Some(&bundle)).await?;
        let wait = std::time::Duration::from_secs(10);
        match zdn_agent::sync::sync(channel, pinned_key, installed, *force, wait).await? {
            Synced::Current => println!("{} is current", installed.display()),
            Synced::Installed { version, set } => {
                println!("installed version {version} ({} indicators) at {}", set.len(), installed.display())
            }
        }
        Ok(())
    })
}

fn install(set: &Path, target: &InstallTarget) -> Result<()> {
    let InstallTarget { pinned_key, installed, force } = target;
    let bytes = std::fs::read(set).with_context(|| format!("reading {}", set.display()))?;
    let (new, version) = zdn_indicators::signing::install(&bytes, pinned_key, installed, *force)?;
    println!("installed version {version} ({} indicators) at {}", new.len(), installed.display());
    Ok(())
}

fn run_replay(args: ReplayArgs) -> Result<()> {
    let built = args.sources.build()?;
    eprintln!("{}", built.summary());
    let set = built.set;
    let pseudonyms = match &args.secret_file {
        Some(path) => Pseudonymiser::load_or_create(path)
            .with_context(|| format!("pseudonym secret {}", path.display()))?,
        None => Pseudonymiser::ephemeral(),
    }
    .sharing_addresses(args.share_internal_addresses);
    let aggregator = Aggregator::new(i64::from(args.window) * 1000, AGGREGATE_CAPACITY, pseudonyms);
    let home = HomeNet::new(args.home_net);
    let (sightings, stats) = replay::replay(&set, &home, &args.pcaps, aggregator)?;
    eprintln!(
        "replayed {} packets ({} undecodable), {} DNS queries ({} malformed), {} hits, {} sightings",
        stats.packets,
        stats.undecodable_total(),
        stats.inspect.dns_queries,
        stats.inspect.dns_malformed,
        stats.hits,
        sightings.len()
    );
    let Some(url) = args.collector else {
        let mut out = std::io::stdout().lock();
        for s in &sightings {
            serde_json::to_writer(&mut out, s)?;
            out.write_all(b"\n")?;
        }
        return Ok(out.flush()?);
    };
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let identity = args.identity.expect("clap requires --identity with --collector");
    let bundle = zdn_transport::Bundle::load(&identity)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let channel = zdn_transport::client::connect(&url, Some(&bundle)).await?;
        let delivery = uplink::report(channel.clone(), &sightings, args.batch_size).await?;
        uplink::heartbeat(channel, stats.heartbeat(&set)).await?;
        eprintln!(
            "collector acknowledged {} batches: {} stored, {} already stored, {} rejected",
            delivery.batches, delivery.stored, delivery.duplicates, delivery.rejected
        );
        anyhow::Ok(())
    })
}
