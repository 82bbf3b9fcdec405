//! `zdn-collector`: serve the collector, or manage its PKI. See `zdn-collector --help`.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
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
    CheckConfig {
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
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        participant: String,
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
            eprintln!("zdn-collector: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<()> {
    match command {
        Command::Serve { config, insecure_dev } => {
            let config = load_config(&config)?;
            server::start(config, insecure_dev).await?.serve_until_signal().await
        }
        Command::CheckConfig { config } => {
            let config = load_config(&config)?;
            zdn_transport::Bundle::load(&config.identity_dir())
                .with_context(|| format!("credentials in {}", config.identity_dir().display()))?;
            if !config.indicators.is_empty() {
                println!(
                    "{}",
                    zdn_indicators::build_set(&config.indicators, &config.allowlists, None)?.summary()
                );
            }
            println!("configuration OK: listen {}, data in {}", config.listen, config.data_dir.display());
            Ok(())
        }
        Command::Pki(PkiCommand::Init { dir, san }) => {
            let server = pki::init(&dir, &san)?;
            let key = dir.join("publish.key");
            let publisher = zdn_indicators::signing::Publisher::load_or_create(&key)?;
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
    }
}
