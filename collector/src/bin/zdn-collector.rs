//! `zdn-collector`: serve the collector, or manage its PKI. See `zdn-collector --help`.

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use zdn_collector::config::Config;
use zdn_collector::{pki, server};
use zdn_telemetry::LogFormat;
use zdn_transport::Role;

const DEFAULT_CONFIG: &str = "/etc/zdn/collector.toml";

#[derive(Parser)]
#[command(
    name = "zdn-collector",
    version,
    about = "ZDN collector: stores and correlates sightings from ZDN agents"
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
    /// Print a shell completion script: bash, zsh, fish, elvish or powershell.
    ///
    /// Example: zdn-collector completions bash > /etc/bash_completion.d/zdn-collector
    Completions {
        /// The shell the script is for.
        shell: clap_complete::Shell,
    },
    /// Write a manual page for the program and one for each subcommand into DIR (packaging).
    #[command(hide = true)]
    ManPages { dir: std::path::PathBuf },
    /// Serve the gRPC API until SIGINT/SIGTERM.
    ///
    /// Example: zdn-collector serve --config /etc/zdn/collector.toml
    Serve {
        #[command(flatten)]
        config: ConfigArgs,
        /// Plain TCP without authentication; every caller is admin. Development only.
        #[arg(long)]
        insecure_dev: bool,
    },
    /// Load and check the configuration (and the credentials it names), then exit.
    ///
    /// Example: zdn-collector check-config --config /etc/zdn/collector.toml --verbose
    CheckConfig {
        #[command(flatten)]
        config: ConfigArgs,
        /// Print every indicator source's report and every rejected entry, not only the totals.
        #[arg(long)]
        verbose: bool,
    },
    /// Check that a running collector answers: its gRPC port accepts connections and, with
    /// metrics.listen set, /metrics answers (which reads the store). Exits non-zero if not.
    ///
    /// Example (a container's health check): zdn-collector probe --config /etc/zdn/collector.toml
    Probe {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Certificate authority for agents, analysts and the collector itself.
    #[command(subcommand)]
    Pki(PkiCommand),
}

#[derive(clap::Args)]
struct ConfigArgs {
    /// Configuration file; without it /etc/zdn/collector.toml if present, else defaults.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Overrides `data_dir`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Overrides `listen`.
    #[arg(long)]
    listen: Option<SocketAddr>,
}

#[derive(Subcommand)]
enum PkiCommand {
    /// Create the CA and the collector's server certificate.
    ///
    /// Example: zdn-collector pki init --dir /var/lib/zdn-collector/pki --san collector.zcert.example
    Init {
        /// The PKI directory to create (the CA, the collector's credentials, the publishing key).
        #[arg(long)]
        dir: PathBuf,
        /// Extra DNS name or IP address of the collector (localhost, 127.0.0.1, ::1 are always in).
        #[arg(long)]
        san: Vec<String>,
    },
    /// Issue a certificate bundle for an agent, analyst or admin.
    ///
    /// Example: zdn-collector pki issue --dir /var/lib/zdn-collector/pki --participant umc-noord --role agent --name gw-1
    Issue {
        /// The PKI directory `pki init` made.
        #[arg(long)]
        dir: PathBuf,
        /// The holder's institution (participant id, e.g. umc-noord).
        #[arg(long)]
        participant: String,
        /// agent, analyst or admin.
        #[arg(long, value_parser = ["agent", "analyst", "admin"])]
        role: String,
        /// Holder name (the certificate's common name, e.g. the agent's host); default the role.
        #[arg(long)]
        name: Option<String>,
        /// Bundle directory; default <dir>/issued/<participant>/<name>.
        #[arg(long)]
        out: Option<PathBuf>,
        /// The CERT's participant (`cert_participant` in collector.toml): the only one that
        /// may hold admin certificates.
        #[arg(long, default_value = zdn_collector::config::DEFAULT_CERT_PARTICIPANT)]
        cert_participant: String,
    },
    /// Revoke a certificate: marks it in the register and writes <dir>/ca/crl.pem with every
    /// revoked certificate. Put that file in `revocation_lists` and send the collector SIGHUP.
    ///
    /// Example: zdn-collector pki revoke --dir /var/lib/zdn-collector/pki --participant umc-noord --name gw-1
    #[command(group(clap::ArgGroup::new("which").required(true).args(["serial", "name"])))]
    Revoke {
        /// The PKI directory `pki init` made.
        #[arg(long)]
        dir: PathBuf,
        /// The certificate's serial number (hex, as `pki list` shows it).
        #[arg(long)]
        serial: Option<String>,
        /// Every certificate of this holder (with --participant).
        #[arg(long, requires = "participant")]
        name: Option<String>,
        /// The holder's institution (with --name).
        #[arg(long)]
        participant: Option<String>,
    },
    /// The certificates this CA issued: serial, holder, validity, revocation.
    ///
    /// Example: zdn-collector pki list --dir /var/lib/zdn-collector/pki
    List {
        /// The PKI directory `pki init` made.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Print the public half of the indicator publishing key, as agents pin it
    /// (`indicators.pinned_key` in agent.toml).
    ///
    /// Example: zdn-collector pki show-publish-key --config /etc/zdn/collector.toml
    ShowPublishKey {
        #[command(flatten)]
        config: ConfigArgs,
    },
}

fn load_config(args: &ConfigArgs) -> Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None if Path::new(DEFAULT_CONFIG).exists() => Config::load(Path::new(DEFAULT_CONFIG))?,
        None => Config::default(),
    };
    if let Some(d) = &args.data_dir {
        config.data_dir = d.clone();
    }
    if let Some(l) = args.listen {
        config.listen = l;
    }
    config.validate()?;
    Ok(config)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    zdn_telemetry::init_logging(cli.log_format, "info");
    match run(cli.command).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zdn-collector: {}", zdn_telemetry::error_text(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<()> {
    match command {
        Command::Completions { shell } => {
            // Into memory first: clap_complete panics on a failed write (a closed pipe).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "zdn-collector", &mut script);
            std::io::Write::write_all(&mut std::io::stdout(), &script).map_err(Into::into)
        }
        Command::ManPages { dir } => clap_mangen::generate_to(Cli::command(), &dir).map_err(Into::into),
        Command::Serve { config, insecure_dev } => {
            let config = load_config(&config)?;
            server::start(config, insecure_dev).await?.serve_until_signal().await
        }
        Command::CheckConfig { config, verbose } => {
            let config = load_config(&config)?;
            let bundle = zdn_collector::tls::credentials(&config)?;
            let key = config.publish_key_path();
            match config.existing_publisher()? {
                Some(publisher) => {
                    println!("indicator publishing key {}: {}", key.display(), publisher.public_hex())
                }
                None => println!(
                    "indicator publishing key: none yet, made at {} on the first start",
                    key.display()
                ),
            }
            let crls = zdn_collector::tls::revocation_lists(&bundle, &config.revocation_lists)?;
            if !crls.is_empty() {
                let revoked: usize = crls.iter().map(|c| c.revoked.len()).sum();
                println!(
                    "revocation lists: {} from {} file(s), {revoked} certificate(s) revoked",
                    crls.len(),
                    config.revocation_lists.len()
                );
            }
            if !config.indicators.is_empty() {
                let allowlists = zdn_indicators::Allowlists {
                    paths: &config.allowlists,
                    policies: &config.warninglist_policy,
                };
                let progress = zdn_telemetry::spinner(format!(
                    "loading {} indicator source(s) and {} warninglist(s)",
                    config.indicators.len(),
                    config.allowlists.len()
                ));
                let built = zdn_indicators::build_set(&config.indicators, allowlists, None)?;
                drop(progress);
                println!("{}", if verbose { built.details() } else { built.summary() });
            }
            println!("configuration OK: listen {}, data in {}", config.listen, config.data_dir.display());
            Ok(())
        }
        Command::Probe { config } => {
            println!("{}", zdn_collector::probe::probe(&load_config(&config)?).await?);
            Ok(())
        }
        Command::Pki(PkiCommand::ShowPublishKey { config }) => {
            let config = load_config(&config)?;
            match config.existing_publisher()? {
                Some(publisher) => println!("{}", publisher.public_hex()),
                None => anyhow::bail!(
                    "no indicator publishing key at {} yet: `pki init` makes one (or the first start, with neither identity nor publish_key set)",
                    config.publish_key_path().display()
                ),
            }
            Ok(())
        }
        Command::Pki(PkiCommand::Init { dir, san }) => {
            let server = pki::init(&dir, &san)?;
            let key = dir.join(pki::PUBLISH_KEY);
            let publisher = zdn_indicators::signing::Publisher::load(&key)?;
            println!(
                "CA created in {}\ncollector credentials in {}",
                dir.join("ca").display(),
                server.display()
            );
            println!(
                "indicator publishing key {} (pin it on agents): {}",
                key.display(),
                publisher.public_hex()
            );
            Ok(())
        }
        Command::Pki(PkiCommand::Issue { dir, participant, role, name, out, cert_participant }) => {
            let role = Role::parse(&role).context("role")?;
            let request = pki::Request {
                participant: &participant,
                role,
                name: name.as_deref(),
                out: out.as_deref(),
                cert_participant: &cert_participant,
            };
            let bundle = pki::issue(&dir, &request)?;
            println!("{}", bundle.display());
            Ok(())
        }
        Command::Pki(PkiCommand::Revoke { dir, serial, name, participant }) => {
            let which = match (&serial, &name, &participant) {
                (Some(serial), _, _) => pki::revoke::Which::Serial(serial),
                (None, Some(name), Some(participant)) => pki::revoke::Which::Holder { participant, name },
                _ => anyhow::bail!("name a certificate: --serial, or --participant with --name"),
            };
            let (crl, revoked) = pki::revoke::revoke(&dir, &which)?;
            for r in &revoked {
                println!("revoked {} ({} {} of {})", r.serial, r.role, r.name, r.participant);
            }
            println!(
                "revocation list written to {}: list it in `revocation_lists` and send the collector SIGHUP",
                crl.display()
            );
            Ok(())
        }
        Command::Pki(PkiCommand::List { dir }) => {
            println!(
                "{:<40}  {:<16} {:<8} {:<20} {:<20} revoked",
                "serial", "participant", "role", "name", "valid until"
            );
            for i in pki::register::read(&dir)? {
                let revoked = i.revoked.as_deref().unwrap_or("-");
                println!(
                    "{:<40}  {:<16} {:<8} {:<20} {:<20} {revoked}",
                    i.serial, i.participant, i.role, i.name, i.not_after
                );
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod help_tests {
    /// Every subcommand says what it does and shows an example; every option says what it is.
    #[test]
    fn every_command_has_an_example_and_every_option_a_description() {
        let gaps = zdn_telemetry::undocumented(&<super::Cli as clap::CommandFactory>::command());
        assert!(gaps.is_empty(), "without help:\n{}", gaps.join("\n"));
    }
}
