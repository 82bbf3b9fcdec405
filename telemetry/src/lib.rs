//! # zdn-telemetry
//!
//! How every ZDN program reports on itself. Now: structured logs on stderr via `tracing`,
//! journald-friendly text or JSON lines (`--log-format`), filtered by `ZDN_LOG` (`tracing`
//! env-filter syntax, e.g. `ZDN_LOG=debug` or `ZDN_LOG=zdn_collector=debug`); colours only
//! when stderr is a terminal and `NO_COLOR` is not set, so a log file holds no escape codes.
//! And how a failure reads: [`error_text`], each cause once; how a program explains itself:
//! [`undocumented`] finds what its `--help` leaves out; and long work shows a [`spinner`] on
//! a terminal.

#![forbid(unsafe_code)]

mod progress;

pub use progress::{Spinner, spinner};

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
    let colours =
        std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colours)
        .with_writer(std::io::stderr)
        // A closed stderr (journald restarting, a reader gone) must not panic the process.
        .log_internal_errors(false);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// An error and its causes on one line, `error: cause: cause`, for a person to read. A cause
/// the text already holds is not repeated: many errors name their cause in their own message
/// ("cannot read x: No such file or directory") and also return it as their `source`, which
/// a plain walk of the chain would print twice.
pub fn error_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let said = e.to_string();
        if !said.is_empty() && !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = e.source();
    }
    text
}

/// What `cmd`'s help leaves unexplained, one line each: an option or argument without a
/// description, a command that runs something (no subcommands of its own) without an
/// `Example:` in its help. Each program's tests assert this is empty.
pub fn undocumented(cmd: &clap::Command) -> Vec<String> {
    let mut gaps = Vec::new();
    walk(cmd, cmd.get_name(), &mut gaps);
    gaps
}

fn walk(cmd: &clap::Command, path: &str, gaps: &mut Vec<String>) {
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        let id = arg.get_id().as_str();
        if arg.get_help().is_none() && !matches!(id, "help" | "version") {
            gaps.push(format!("{path}: {id} has no description"));
        }
    }
    let runs_something = cmd.get_subcommands().next().is_none();
    let help = cmd.get_long_about().or(cmd.get_about()).map(ToString::to_string).unwrap_or_default();
    if runs_something && !help.contains("Example") {
        gaps.push(format!("{path}: no example"));
    }
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        walk(sub, &format!("{path} {}", sub.get_name()), gaps);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapper {
        says_cause: bool,
        source: std::io::Error,
    }

    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self.says_cause {
                true => write!(f, "cannot read /etc/zdn/x.toml: {}", self.source),
                false => f.write_str("cannot read /etc/zdn/x.toml"),
            }
        }
    }

    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn a_command_without_descriptions_or_examples_is_found_out() {
        let cmd = clap::Command::new("zdn-x")
            .subcommand(
                clap::Command::new("run")
                    .about("Run.\n\nExample: zdn-x run")
                    .arg(clap::Arg::new("config").long("config").help("The file")),
            )
            .subcommand(
                clap::Command::new("check").about("Check").arg(clap::Arg::new("quiet").long("quiet")),
            );
        assert_eq!(undocumented(&cmd), ["zdn-x check: quiet has no description", "zdn-x check: no example"]);
    }

    #[test]
    fn each_cause_is_said_once() {
        let missing = || std::io::Error::from_raw_os_error(2);
        let told = Wrapper { says_cause: true, source: missing() };
        assert_eq!(error_text(&told), "cannot read /etc/zdn/x.toml: No such file or directory (os error 2)");
        let untold = Wrapper { says_cause: false, source: missing() };
        assert_eq!(
            error_text(&untold),
            "cannot read /etc/zdn/x.toml: No such file or directory (os error 2)"
        );
        // anyhow's context chain, as the binaries hold it.
        let chained = anyhow::Error::new(told).context("loading the configuration");
        assert_eq!(
            error_text(chained.as_ref()),
            "loading the configuration: cannot read /etc/zdn/x.toml: No such file or directory (os error 2)"
        );
        assert_eq!(
            format!("{chained:#}").matches("os error 2").count(),
            2,
            "what the binaries printed before"
        );
    }
}
