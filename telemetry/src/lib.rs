//! # zdn-telemetry
//!
//! How every ZDN program reports on itself. Now: structured logs on stderr via `tracing`,
//! journald-friendly text or JSON lines (`--log-format`), filtered by `ZDN_LOG` (`tracing`
//! env-filter syntax, e.g. `ZDN_LOG=debug` or `ZDN_LOG=zdn_collector=debug`).

#![forbid(unsafe_code)]

/// The `--log-format` option of every ZDN binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, as journald shows them.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Installs the process-wide subscriber. `default_filter` applies when `ZDN_LOG` is not set.
pub fn init_logging(format: LogFormat, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ZDN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A closed stderr (journald restarting, a reader gone) must not panic the process.
        .log_internal_errors(false);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
