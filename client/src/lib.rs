//! # zdn-client
//!
//! `zdn`, the analysts' and operators' command line over the collector's gRPC API.
//!
//! Every command connects with the caller's own certificate (`--identity DIR`), so the
//! collector applies the caller's role: what `zdn` prints is what that role may see.
//!
//! A client only: it links the contract (`zdn-proto`), the TLS client (`zdn-transport`) and
//! the answer rows (`zdn-answers`), never capture or store code, so it installs on an
//! analyst's workstation on its own (the `zdn-client` package).
//!
//! | module | job |
//! | --- | --- |
//! | this file | the command line (clap), one request per command, rows out |
//! | [`export`] | `zdn export`: the document to stdout, or with `--post` to MISP |
//! | [`misp`] | MISP's `/sightings/add`, one request per sighting: API key, retries, refusals reported |
//! | [`hunt`] | `zdn hunt`: an indicator looked up in every agent's destination history, with the coverage |
//! | [`import`] | `zdn indicators import`: a file or directory streamed in pieces, with progress |
//! | [`tokens`] | `zdn admin token`: console sign-in tokens |
//! | `main.rs` | the binary: logging, exit codes, one line per error |

#![forbid(unsafe_code)]

pub mod export;
pub mod hunt;
pub mod import;
pub mod misp;
pub mod tokens;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use output::Format;
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use tonic::transport::Channel;
use zdn_answers::output;
use zdn_answers::rows::{
    agent_row, audit_row, correlation_row, event_row, host_row, indicator_rows, sighting_row, to_row, top_row,
};
use zdn_indicators::Kind;
use zdn_proto::v1::{self, analyst_service_client::AnalystServiceClient};

#[derive(Parser)]
#[command(
    name = "zdn",
    version,
    about = "Query a ZDN collector: correlations, sightings, indicators, fleet",
    after_help = "Examples:\n  \
        zdn --identity ~/.zdn/analyst correlations\n  \
        zdn --identity ~/.zdn/analyst sightings --indicator evil.example --format json\n  \
        zdn --identity ~/.zdn/analyst indicator evil.example"
)]
pub struct Cli {
    /// Collector address.
    #[arg(long, env = "ZDN_COLLECTOR", default_value = "https://127.0.0.1:7443", global = true)]
    pub collector: String,
    /// Your credential directory (cert.pem, key.pem, ca.pem) from `zdn-collector pki issue`.
    #[arg(long, env = "ZDN_IDENTITY", global = true)]
    pub identity: Option<PathBuf>,
    /// Output format [default: table].
    #[arg(long, value_enum, global = true)]
    pub format: Option<Format>,
    /// Tables print every value whole, however wide the terminal (by default a table on a
    /// terminal fits its width, long values cut short with "…").
    #[arg(long, global = true)]
    pub wide: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Print a shell completion script: bash, zsh, fish, elvish or powershell.
    ///
    /// Example: zdn completions bash > /etc/bash_completion.d/zdn
    Completions {
        /// The shell the script is for.
        shell: clap_complete::Shell,
    },
    /// Write a manual page for the program and one for each subcommand into DIR (packaging).
    #[command(hide = true)]
    ManPages { dir: std::path::PathBuf },
    /// Indicators seen at several institutions, most recently changed first.
    ///
    /// Example: zdn correlations --since 24h --kind domain
    Correlations(CorrelationsArgs),
    /// Stored sightings, newest first.
    ///
    /// Example: zdn sightings --indicator evil.example --since 7d --format csv
    Sightings(SightingsArgs),
    /// One indicator: who saw it, when, how often, through which mechanisms.
    ///
    /// Example: zdn indicator evil.example
    Indicator {
        /// The indicator as sightings and correlations name it.
        value: String,
    },
    /// Agents, their last heartbeat and counters (indicator version, kernel drops, ring
    /// freezes, each capture worker); stale agents may be down.
    ///
    /// Example: zdn fleet --format json
    Fleet,
    /// The indicators seen at the most institutions, then with the most sightings.
    ///
    /// Example: zdn top --since 7d --limit 10
    Top {
        /// Only what was seen since: RFC 3339 time, or an age like 24h, 7d.
        #[arg(long)]
        since: Option<String>,
        /// At most this many indicators.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Hosts that hit several indicators of one campaign: likely compromised.
    ///
    /// Example: zdn hosts --participant umc-noord
    Hosts {
        /// Only this institution's hosts (participant id).
        #[arg(long)]
        participant: Option<String>,
        /// At most this many hosts.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// The audit log: who asked what, when (admin certificates only).
    ///
    /// Example: zdn audit --since 24h
    Audit {
        /// Only entries since this time (RFC 3339) or age (`2h`, `7d`).
        #[arg(long)]
        since: Option<String>,
        /// At most this many entries.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Export sightings for other tools: a STIX 2.1 bundle, MISP sightings or CSV; or send
    /// the MISP sightings to a MISP instance.
    ///
    /// Example: zdn export stix --since 7d > sightings.stix.json
    ///
    /// Example: zdn export misp --since 24h --post https://misp.example --misp-key-file ~/.misp-key
    Export(export::ExportArgs),
    /// Asks every agent to look an indicator up in its destination history (the past 14 days
    /// by default) and shows who answered, with how many retro sightings (CERT analysts).
    ///
    /// Example: zdn hunt c2.evil.example --days 7
    Hunt(hunt::HuntArgs),
    /// Admin operations (admin certificates only): privacy exports and erasure, console tokens.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Manage the published indicators (CERT analysts and admins).
    #[command(subcommand)]
    Indicators(IndicatorsCommand),
    /// Print correlations as they open and escalate: JSON lines with --format json, one
    /// header for csv and table.
    ///
    /// Example: zdn watch --format json | jq -r 'select(.change == "opened") | .indicator'
    Watch {
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
    },
}

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Everything held about a participant, as one JSON document (subject access).
    ///
    /// Example: zdn admin export --participant umc-noord > umc-noord.json
    Export {
        /// The institution (participant id).
        #[arg(long)]
        participant: String,
    },
    /// Erase what is held about a participant: all of it, or one pseudonymised host's sightings.
    ///
    /// Example: zdn admin erase --participant umc-noord --host h-1a2b3c4d5e6f7081 --yes
    Erase {
        /// The institution (participant id).
        #[arg(long)]
        participant: String,
        /// Only this host's sightings (its pseudonym, as sightings show it in `src`).
        #[arg(long)]
        host: Option<String>,
        /// Confirm: erasing cannot be undone.
        #[arg(long)]
        yes: bool,
    },
    /// Web-console sign-in tokens: issue, revoke, list.
    #[command(subcommand)]
    Token(tokens::TokenCommand),
}

#[derive(Subcommand)]
pub enum IndicatorsCommand {
    /// Add (or replace) an indicator source on the collector (admins): a file or a directory
    /// (a MISP feed) in any supported format. It is checked against the collector's
    /// allowlists, every rejected entry is reported, and a new set is published at once.
    ///
    /// Example: zdn indicators import ./misp-feed/ --name misp-community
    Import {
        /// The file or directory to import.
        path: PathBuf,
        /// Its name on the collector (default: the file or directory name, lowercased);
        /// importing under a name again replaces that import.
        #[arg(long)]
        name: Option<String>,
        /// Accept a replacement with less than half the indicators of the one it replaces.
        #[arg(long)]
        force: bool,
    },
    /// Mark an indicator as a false positive: it is withdrawn from the published set at once
    /// (agents stop reporting it after their next sync) and its correlations are closed.
    ///
    /// Example: zdn indicators false-positive cdn.vendor.example --reason "shared CDN"
    FalsePositive {
        /// The indicator as sightings and correlations name it.
        value: String,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: String,
    },
}

#[derive(Args)]
pub struct CorrelationsArgs {
    /// Only correlations changed since: RFC 3339 time, or an age like 30m, 24h, 7d.
    #[arg(long)]
    since: Option<String>,
    /// Only correlations of at least this many institutions (0: the collector's threshold).
    #[arg(long, default_value_t = 0)]
    min_participants: u32,
    /// Only indicators of this kind (domain, ipv4, ipv6, cidr, ip_port, url, ja3, ja4).
    #[arg(long)]
    kind: Option<String>,
    /// At most this many correlations.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Only indicators of this campaign (event, family).
    #[arg(long)]
    campaign: Option<String>,
    /// Campaigns seen at several institutions, instead of single indicators.
    #[arg(long)]
    campaigns: bool,
}

/// Which sightings: the filters `zdn sightings` and `zdn export` share.
#[derive(Args)]
pub struct SightingFilterArgs {
    /// Only sightings of this indicator (e.g. one correlation's).
    #[arg(long)]
    indicator: Option<String>,
    /// Only this institution's sightings (participant id).
    #[arg(long)]
    participant: Option<String>,
    /// Only sightings last seen since: RFC 3339 time, or an age like 30m, 24h, 7d.
    #[arg(long)]
    since: Option<String>,
    /// Only sightings first seen until: RFC 3339 time, or an age.
    #[arg(long)]
    until: Option<String>,
}

impl SightingFilterArgs {
    /// (indicator, participant, since, until) as a request carries them (0: unbounded).
    pub(crate) fn request_fields(self) -> Result<(String, String, i64, i64)> {
        let time = |t: Option<String>| t.as_deref().map(parse_since).transpose().map(|t| t.unwrap_or(0));
        Ok((
            self.indicator.unwrap_or_default(),
            self.participant.unwrap_or_default(),
            time(self.since)?,
            time(self.until)?,
        ))
    }
}

#[derive(Args)]
pub struct SightingsArgs {
    #[command(flatten)]
    filter: SightingFilterArgs,
    /// At most this many sightings per page.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Continue after a previous page (printed on stderr when there is more).
    #[arg(long)]
    page_token: Option<String>,
}

/// Runs a parsed command line, writing results to `out`.
pub async fn run(cli: Cli, out: &mut (dyn Write + Send)) -> Result<()> {
    let format = cli.format.unwrap_or(Format::Table);
    // The program's own documentation needs no collector.
    match &cli.command {
        Command::Completions { shell } => {
            // Into memory first: clap_complete panics on a failed write (a closed pipe).
            let mut script = Vec::new();
            clap_complete::generate(
                *shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "zdn",
                &mut script,
            );
            return Ok(out.write_all(&script)?);
        }
        Command::ManPages { dir } => {
            return Ok(clap_mangen::generate_to(<Cli as clap::CommandFactory>::command(), dir)?);
        }
        _ => {}
    }
    let channel = connect(&cli.collector, cli.identity.as_deref()).await?;
    let mut client = AnalystServiceClient::new(channel);
    // On a terminal a table shows the brief columns, fitted; a pipe or a file gets them all.
    let width = table_width(cli.wide);
    let brief = brief_columns(&cli.command).filter(|_| format == Format::Table && width.is_some());
    let rows = match cli.command {
        // Written above, before connecting.
        Command::Completions { .. } | Command::ManPages { .. } => return Ok(()),
        Command::Correlations(a) => {
            let kind = match a.kind.as_deref() {
                None => 0,
                Some(k) => {
                    v1::IndicatorKind::from(Kind::parse(k).with_context(|| format!("unknown kind {k:?}"))?)
                        as i32
                }
            };
            let request = v1::ListCorrelationsRequest {
                since_unix_ms: a.since.as_deref().map(parse_since).transpose()?.unwrap_or(0),
                min_participants: a.min_participants,
                kind,
                limit: a.limit,
                campaign: a.campaign.unwrap_or_default(),
                campaigns: a.campaigns,
            };
            let response = client.list_correlations(request).await?.into_inner();
            response.correlations.iter().map(correlation_row).collect()
        }
        Command::Sightings(a) => {
            let (indicator, participant, since_unix_ms, until_unix_ms) = a.filter.request_fields()?;
            let request = v1::ListSightingsRequest {
                indicator,
                participant,
                since_unix_ms,
                until_unix_ms,
                page_size: a.limit,
                page_token: a.page_token.unwrap_or_default(),
            };
            let response = client.list_sightings(request).await?.into_inner();
            if !response.next_page_token.is_empty() {
                eprintln!("more: --page-token {}", response.next_page_token);
            }
            response.sightings.iter().map(sighting_row).collect()
        }
        Command::Indicator { value } => {
            let detail =
                client.get_indicator(v1::GetIndicatorRequest { indicator: value }).await?.into_inner();
            indicator_rows(&detail)
        }
        Command::Top { since, limit } => {
            let since_unix_ms = since.as_deref().map(parse_since).transpose()?.unwrap_or(0);
            let request = v1::TopIndicatorsRequest { since_unix_ms, limit };
            client.top_indicators(request).await?.into_inner().indicators.iter().map(top_row).collect()
        }
        Command::Hosts { participant, limit } => {
            let request = v1::ListSuspectHostsRequest { participant: participant.unwrap_or_default(), limit };
            client.list_suspect_hosts(request).await?.into_inner().hosts.iter().map(host_row).collect()
        }
        Command::Fleet => {
            let response = client.fleet_status(v1::FleetStatusRequest {}).await?.into_inner();
            response.agents.iter().map(agent_row).collect()
        }
        Command::Audit { since, limit } => {
            let since_unix_ms = since.as_deref().map(parse_since).transpose()?.unwrap_or(0);
            let response =
                client.list_audit(v1::ListAuditRequest { since_unix_ms, limit }).await?.into_inner();
            response.entries.iter().map(audit_row).collect()
        }
        Command::Export(a) => return export::run(&mut client, a, cli.format, out).await,
        Command::Hunt(a) => hunt::run(&mut client, a).await?,
        Command::Admin(AdminCommand::Export { participant }) => {
            let mut chunks =
                client.export_participant(v1::ExportParticipantRequest { participant }).await?.into_inner();
            while let Some(chunk) = chunks.message().await? {
                out.write_all(&chunk.data)?;
            }
            return Ok(out.flush()?);
        }
        Command::Admin(AdminCommand::Erase { participant, host, yes }) => {
            if !yes {
                bail!("erasing {participant}'s data cannot be undone; run again with --yes to confirm");
            }
            let request = v1::EraseParticipantRequest {
                participant: participant.clone(),
                host: host.unwrap_or_default(),
            };
            let e = client.erase_participant(request).await?.into_inner();
            vec![to_row(json!({
                "participant": participant,
                "sightings": e.sightings,
                "aggregates": e.aggregates,
                "agents": e.agents,
                "correlations_changed": e.correlations_changed,
                "correlations_removed": e.correlations_removed,
            }))]
        }
        Command::Admin(AdminCommand::Token(command)) => tokens::run(&mut client, command).await?,
        Command::Indicators(IndicatorsCommand::Import { path, name, force }) => {
            let name = match name {
                Some(n) => n,
                None => import_name(&path),
            };
            let r = import::run(&mut client, &path, &name, force).await?;
            for line in r.reports.iter().chain(&r.rejected_examples) {
                eprintln!("{line}");
            }
            if r.held_back > 0 {
                eprintln!("held back by allowlists ({}): {}", r.held_back, r.held_back_examples.join(", "));
            }
            vec![to_row(json!({
                "import": name,
                "accepted": r.accepted,
                "rejected": r.rejected,
                "held_back": r.held_back,
                "published_version": r.published_version,
            }))]
        }
        Command::Indicators(IndicatorsCommand::FalsePositive { value, reason }) => {
            let request = v1::MarkFalsePositiveRequest { indicator: value.clone(), reason };
            let answer = client.mark_false_positive(request).await?.into_inner();
            vec![to_row(json!({
                "indicator": value,
                "status": "false_positive",
                "correlations_closed": answer.correlations_closed,
                "published_version": answer.published_version,
            }))]
        }
        Command::Watch { count } => {
            let mut events = client.watch_correlations(v1::WatchCorrelationsRequest {}).await?.into_inner();
            let (mut seen, mut stream) = (0, output::Stream::new(format));
            while count.is_none_or(|c| seen < c) {
                let Some(event) = events.message().await? else { break };
                stream.write(out, &event_row(&event))?;
                seen += 1;
            }
            return Ok(());
        }
    };
    let rows = match brief {
        Some(columns) => zdn_answers::rows::only(rows, columns),
        None => rows,
    };
    output::write_fitted(out, format, &rows, width)
}

/// The columns a table of this command's answer shows without `--wide`; `None`: all.
fn brief_columns(command: &Command) -> Option<&'static [&'static str]> {
    use zdn_answers::rows::brief;
    match command {
        Command::Correlations(_) => Some(brief::CORRELATION),
        Command::Sightings(_) => Some(brief::SIGHTING),
        Command::Fleet => Some(brief::AGENT),
        Command::Audit { .. } => Some(brief::AUDIT),
        _ => None,
    }
}

/// The width a table must fit: the terminal's, unless `--wide` or stdout is not a terminal
/// (a file or a pipe gets every value whole).
fn table_width(wide: bool) -> Option<u16> {
    use std::io::IsTerminal;
    let stdout = std::io::stdout();
    if wide || !stdout.is_terminal() {
        return None;
    }
    terminal_size::terminal_size_of(&stdout).map(|(terminal_size::Width(w), _)| w)
}

/// The default name of an import: its file stem, lowercased, other characters as '-'.
fn import_name(path: &std::path::Path) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().to_lowercase()).unwrap_or_default();
    stem.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' }).take(64).collect()
}

/// An error for people: a gRPC status as its code and message, anything else with its causes.
pub fn describe(e: &anyhow::Error) -> String {
    match e.downcast_ref::<tonic::Status>() {
        // tonic's own words for a message over a limit do not say whose limit it is.
        Some(status) if status.message().contains("message length too large") => format!(
            "collector answered {:?}: {} (the collector accepts messages up to max_message_bytes in collector.toml; raise it there)",
            status.code(),
            status.message()
        ),
        Some(status) => format!("collector answered {:?}: {}", status.code(), status.message()),
        None => zdn_telemetry::error_text(e.as_ref()),
    }
}

/// Connects with the caller's bundle (none needed for an `http://` insecure-dev collector).
pub async fn connect(url: &str, identity: Option<&std::path::Path>) -> Result<Channel> {
    let bundle = match identity {
        Some(dir) => Some(zdn_transport::Bundle::load(dir)?),
        None if url.starts_with("https://") => {
            bail!("an https:// collector needs your credentials: --identity DIR or ZDN_IDENTITY")
        }
        None => None,
    };
    Ok(zdn_transport::client::connect(url, bundle.as_ref()).await?)
}

/// `--since` and `--until`: an RFC 3339 time, or an age (`30m`, `24h`, `7d`) before now.
pub(crate) fn parse_since(text: &str) -> Result<i64> {
    zdn_timestamps::parse_time_or_age(text, zdn_timestamps::now_ms()).context("--since/--until")
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
