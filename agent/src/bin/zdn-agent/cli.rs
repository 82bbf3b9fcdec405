//! The command line of `zdn-agent`: its commands and their arguments, as clap reads them.
//! `main.rs` carries them out.

use anyhow::Result;
use clap::{Parser, Subcommand};
use ipnet::IpNet;
use std::path::PathBuf;
use zdn_indicators::signing::VerifyingKey;
use zdn_telemetry::LogFormat;

#[derive(Parser)]
#[command(
    name = "zdn-agent",
    version,
    about = "ZDN sensor agent: matches traffic against indicators and reports sightings"
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Print a shell completion script: bash, zsh, fish, elvish or powershell.
    ///
    /// Example: zdn-agent completions bash > /etc/bash_completion.d/zdn-agent
    Completions {
        /// The shell the script is for.
        shell: clap_complete::Shell,
    },
    /// Write a manual page for the program and one for each subcommand into DIR (packaging).
    #[command(hide = true)]
    ManPages { dir: std::path::PathBuf },
    /// Run the sensor: capture, match, spool and send sightings, follow the collector's
    /// indicator set. SIGHUP reloads local lists and reopens the alert log; SIGTERM stops
    /// after flushing open sightings into the spool.
    ///
    /// Example: zdn-agent run --config /etc/zdn/agent.toml
    #[command(verbatim_doc_comment)]
    Run {
        /// The agent's configuration (packaging/agent.toml documents every key).
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
        /// The credential bundle `zdn-collector pki issue` wrote for this agent.
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
        /// The configuration to check.
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
        /// text (one observation per line) or jsonl (one JSON object per line).
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
        /// The collector, https://HOST:PORT.
        #[arg(long)]
        collector: String,
        /// This agent's credential directory (cert.pem, key.pem, ca.pem).
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
        /// The pseudonym as a sighting shows it (h-…).
        pseudonym: String,
        /// The agent's pseudonym secret (state_dir/pseudonym.key).
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
        /// The signed set to install (from `compile-indicators --sign-key` or the collector).
        #[arg(long)]
        set: PathBuf,
        #[command(flatten)]
        target: InstallTarget,
    },
}

/// Where a signed set is installed, and how it is checked.
#[derive(clap::Args)]
pub struct InstallTarget {
    /// Public key (64 hex digits) the set must be signed with.
    #[arg(long, value_parser = parse_key)]
    pub pinned_key: VerifyingKey,
    /// The last good set: replaced only by a newer, plausible set that verifies.
    #[arg(long)]
    pub installed: PathBuf,
    /// Install even if the new set is less than half the size of the installed one.
    #[arg(long)]
    pub force: bool,
}

#[derive(clap::Args)]
pub struct IndicatorArgs {
    /// Indicator source: a file or directory in any supported format (plain or trail lists,
    /// CSV, Zeek Intel, MISP feed or event, STIX 2.1 bundle); repeat for several.
    #[arg(long = "indicators", required = true)]
    pub indicators: Vec<PathBuf>,
    /// MISP warninglist (list.json or a directory of them), applied under its policy.
    #[arg(long = "allowlist")]
    pub allowlists: Vec<PathBuf>,
    /// What warninglists do to the indicators they cover: specific (withdraw what an entry
    /// names exactly, keep and flag what it covers more broadly), suppress (withdraw all),
    /// flag (withdraw none), off.
    #[arg(long, default_value = "specific", value_parser = parse_policy)]
    pub warninglist_policy: zdn_indicators::Policy,
    /// One list's policy, by its directory or name: LIST=POLICY (repeat for several).
    #[arg(long = "list-policy", value_parser = parse_list_policy)]
    pub list_policies: Vec<(String, zdn_indicators::Policy)>,
    /// Print every source's report and every rejected entry, not only the totals.
    #[arg(long)]
    pub verbose: bool,
    /// Public key (64 hex digits) that compiled sets must be signed with.
    #[arg(long, value_parser = parse_key)]
    pub pinned_key: Option<VerifyingKey>,
}

fn parse_policy(text: &str) -> Result<zdn_indicators::Policy, String> {
    text.parse()
}

fn parse_list_policy(text: &str) -> Result<(String, zdn_indicators::Policy), String> {
    let (list, policy) = text.split_once('=').ok_or("expected LIST=POLICY, e.g. amazon-aws=flag")?;
    Ok((list.to_owned(), policy.parse()?))
}

fn parse_key(text: &str) -> Result<VerifyingKey, String> {
    zdn_indicators::signing::parse_public_key(text).map_err(|e| e.to_string())
}

impl IndicatorArgs {
    pub fn build(&self) -> Result<zdn_indicators::BuiltSet> {
        let policies = zdn_indicators::Policies {
            default: self.warninglist_policy,
            lists: self.list_policies.iter().cloned().collect(),
        };
        let allowlists = zdn_indicators::Allowlists { paths: &self.allowlists, policies: &policies };
        let _progress = zdn_telemetry::spinner(format!(
            "loading {} indicator source(s) and {} allowlist(s)",
            self.indicators.len(),
            self.allowlists.len()
        ));
        Ok(zdn_indicators::build_set(&self.indicators, allowlists, self.pinned_key.as_ref())?)
    }

    /// The load report: the totals, or everything with `--verbose`.
    pub fn report(&self, built: &zdn_indicators::BuiltSet) -> String {
        if self.verbose { built.details() } else { built.summary() }
    }
}

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// Capture file (pcap or pcapng); repeat for several, replayed in order.
    #[arg(long = "pcap", required = true)]
    pub pcaps: Vec<PathBuf>,
    #[command(flatten)]
    pub sources: IndicatorArgs,
    /// Internal networks (CIDR, comma-separated or repeated). Without it, every source counts
    /// as internal and every destination as external.
    #[arg(long, value_delimiter = ',')]
    pub home_net: Vec<IpNet>,
    /// Aggregation window in seconds of packet time.
    #[arg(long, default_value_t = 60)]
    pub window: u32,
    /// File holding the pseudonym secret (created if missing). Without it, a throw-away secret
    /// is used and pseudonyms cannot be resolved later.
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
    /// Report internal addresses instead of pseudonyms (only if the participant opted in).
    #[arg(long)]
    pub share_internal_addresses: bool,
    /// Send the sightings to this collector (https://HOST:PORT) instead of printing them.
    #[arg(long, requires = "identity")]
    pub collector: Option<String>,
    /// Credential directory (cert.pem, key.pem, ca.pem) for the collector.
    #[arg(long)]
    pub identity: Option<PathBuf>,
    /// Sightings per batch sent to the collector.
    #[arg(long, default_value_t = 500)]
    pub batch_size: usize,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ObserveFormat {
    /// One line per observable: time, via, value, src -> dst:port.
    Text,
    /// One JSON object per line.
    Jsonl,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_policy_is_list_equals_policy() {
        assert_eq!(
            parse_list_policy("amazon-aws=flag"),
            Ok(("amazon-aws".into(), zdn_indicators::Policy::Flag))
        );
        assert!(parse_list_policy("amazon-aws").unwrap_err().contains("expected LIST=POLICY"));
        assert!(
            parse_list_policy("amazon-aws=hide").unwrap_err().contains("specific, suppress, flag or off")
        );
        assert!(parse_policy("quiet").is_err());
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
