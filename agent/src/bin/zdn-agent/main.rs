//! `zdn-agent`: the command line of the sensor. `cli` says what the commands and their
//! arguments are; this file carries each one out with the library (`zdn_agent`).

use anyhow::{Context, Result, bail};
use clap::Parser;
use ipnet::IpNet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use zdn_agent::config::AgentConfig;
use zdn_agent::delivery::{self, Uplink};
use zdn_agent::heartbeat;
use zdn_agent::packet_path::HomeNet;
use zdn_agent::pseudonym::Pseudonymiser;
use zdn_agent::replay::{self, AGGREGATE_CAPACITY};
use zdn_agent::service::Controls;
use zdn_agent::sighting::{Aggregator, Sighting};
use zdn_agent::sync::Synced;
use zdn_indicators::signing::Publisher;

mod cli;

use cli::{Cli, Command, IndicatorArgs, InstallTarget, ObserveFormat, ReplayArgs};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    zdn_telemetry::init_logging(cli.log_format, "info");
    let result = match cli.command {
        Command::Completions { shell } => {
            // Into memory first: clap_complete panics on a failed write (a closed pipe).
            let mut script = Vec::new();
            clap_complete::generate(
                shell,
                &mut <cli::Cli as clap::CommandFactory>::command(),
                "zdn-agent",
                &mut script,
            );
            std::io::Write::write_all(&mut std::io::stdout(), &script).map_err(Into::into)
        }
        Command::ManPages { dir } => {
            clap_mangen::generate_to(<cli::Cli as clap::CommandFactory>::command(), &dir).map_err(Into::into)
        }
        Command::Run { config } => run(&config),
        Command::Enrol { bundle, identity, group, no_group, force } => {
            enrol(&bundle, &identity, (!no_group).then_some(group.as_str()), force)
        }
        Command::Observe { pcaps, format } => observe(&pcaps, format),
        Command::CheckConfig { config } => check_config(&config),
        Command::Replay(args) => run_replay(args),
        Command::CheckIndicators(args) => args.build().map(|built| println!("{}", args.report(&built))),
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
            eprintln!("zdn-agent: {}", zdn_telemetry::error_text(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
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
        "{} packets ({} undecodable), {} DNS queries ({} malformed), {} TLS ClientHellos ({} malformed), {} HTTP requests ({} malformed); blind spots: {} ECH, {} DoT, {} DoH",
        stats.packets,
        stats.undecodable_total(),
        stats.extract.dns_queries,
        stats.extract.dns_malformed,
        stats.extract.tls_hellos,
        stats.extract.tls_malformed,
        stats.extract.http_requests,
        stats.extract.http_malformed,
        stats.extract.blind_ech,
        stats.extract.blind_dot,
        stats.extract.blind_doh
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
        let allowlists = zdn_indicators::Allowlists {
            paths: &config.indicators.allowlists,
            policies: &config.indicators.warninglist_policy,
        };
        let built = zdn_indicators::build_set(&config.indicators.local, allowlists, pinned.as_ref())?;
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
    println!("{}", sources.report(&built));
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
    eprintln!("{}", args.sources.report(&built));
    let set = built.set;
    let pseudonyms = match &args.secret_file {
        Some(path) => Pseudonymiser::load_or_create(path)
            .with_context(|| format!("pseudonym secret {}", path.display()))?,
        None => Pseudonymiser::ephemeral(),
    }
    .sharing_addresses(args.share_internal_addresses);
    let aggregator = Aggregator::new(i64::from(args.window) * 1000, AGGREGATE_CAPACITY, pseudonyms);
    let home = HomeNet::new(args.home_net);
    let (sightings, stats, errors) = replay::replay_all(&set, &home, &args.pcaps, aggregator);
    // What was read is reported (and delivered) first; a damaged capture fails the command after.
    let damaged = || {
        for error in errors.iter().skip(1) {
            eprintln!("zdn-agent: {error}");
        }
        match errors.first() {
            None => Ok(()),
            Some(first) => Err(anyhow::anyhow!(
                "{} of {} capture files could not be read to their end (the sightings reported are from what was read): {first}",
                errors.len(),
                args.pcaps.len()
            )),
        }
    };
    eprintln!(
        "replayed {} packets ({} undecodable), {} DNS queries ({} malformed), {} hits, {} sightings",
        stats.path.packets,
        stats.path.undecodable_total(),
        stats.path.extract.dns_queries,
        stats.path.extract.dns_malformed,
        stats.path.hits,
        sightings.len()
    );
    let Some(url) = args.collector else {
        let mut out = std::io::stdout().lock();
        for s in &sightings {
            serde_json::to_writer(&mut out, s)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        return damaged();
    };
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let identity = args.identity.expect("clap requires --identity with --collector");
    let bundle = zdn_transport::Bundle::load(&identity)?;
    let uplink = Uplink {
        url,
        bundle: Some(bundle),
        batch_size: args.batch_size,
        reconnect_max: Duration::from_secs(1),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let wire: Vec<_> = sightings.iter().map(Sighting::to_proto).collect();
        let delivery = delivery::deliver_once(&uplink, &wire).await?;
        heartbeat::send(uplink.connect().await?, stats.heartbeat(&set)).await?;
        eprintln!(
            "collector acknowledged {} batches: {} stored, {} already stored, {} rejected",
            delivery.batches, delivery.stored, delivery.duplicates, delivery.rejected
        );
        anyhow::Ok(())
    })?;
    damaged()
}
