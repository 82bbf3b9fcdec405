//! `zdn export`: sightings as a document for other tools (STIX 2.1, MISP, CSV), written to
//! stdout, or with `--post` sent to a MISP instance ([`crate::misp`]).
//!
//! The document type is the command's argument; the global `--format` may name it instead
//! (`--format csv` is `zdn export csv`) but not contradict it: `--format json` fits both
//! JSON documents and so names neither, and `--format table` is refused rather than ignored.

use crate::misp;
use anyhow::{Result, bail};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use tonic::transport::Channel;
use zdn_answers::output::{self, Format};
use zdn_answers::rows::to_row;
use zdn_proto::v1::{self, analyst_service_client::AnalystServiceClient};

#[derive(Args)]
pub struct ExportArgs {
    /// stix (a STIX 2.1 bundle of Sighting objects), misp (MISP sightings) or csv; or give
    /// --format csv.
    #[arg(value_name = "FORMAT", value_parser = ["stix", "misp", "csv"])]
    document: Option<String>,
    #[command(flatten)]
    filter: crate::SightingFilterArgs,
    /// MISP: name the institution in each sighting's source ("ZDN/<participant>"); by default
    /// MISP shows them as the CERT's, naming none.
    #[arg(long)]
    name_institutions: bool,
    /// Send the MISP sightings to this MISP instance (https://misp.example) instead of
    /// printing them; prints what was sent, refused and failed.
    #[arg(long, value_name = "URL", requires = "misp_key_file")]
    post: Option<String>,
    /// File holding the MISP API key (the Authorization header of MISP's API).
    #[arg(long, value_name = "FILE")]
    misp_key_file: Option<PathBuf>,
    /// An extra CA (PEM) for the MISP instance's certificate.
    #[arg(long, value_name = "FILE")]
    misp_ca: Option<PathBuf>,
    /// Tries per sighting when MISP is unreachable or answers 5xx/429.
    #[arg(long, default_value_t = 5)]
    attempts: u32,
}

/// The document type `args` and the global `format` ask for together.
fn document(args: &ExportArgs, format: Option<Format>) -> Result<v1::export_sightings_request::Format> {
    use v1::export_sightings_request::Format as Wire;
    let named = match (args.document.as_deref(), format) {
        (Some(d), None) => d,
        (Some(d @ ("stix" | "misp")), Some(Format::Json)) => d,
        (Some("csv"), Some(Format::Csv)) | (None, Some(Format::Csv)) => "csv",
        (None, Some(Format::Json)) => bail!("--format json fits stix and misp: name one (zdn export stix)"),
        (None, None) => bail!("name the document: zdn export stix|misp|csv"),
        (Some(d), Some(f)) => bail!("zdn export {d} writes {d}; --format {} does not apply to it", f.name()),
        (None, Some(f)) => bail!("--format {}: zdn export writes stix, misp or csv", f.name()),
    };
    if args.post.is_some() && named != "misp" {
        bail!("--post sends MISP sightings: zdn export misp --post URL");
    }
    Ok(match named {
        "stix" => Wire::Stix,
        "misp" => Wire::Misp,
        _ => Wire::Csv,
    })
}

pub async fn run(
    client: &mut AnalystServiceClient<Channel>,
    args: ExportArgs,
    format: Option<Format>,
    out: &mut (dyn Write + Send),
) -> Result<()> {
    let wire = document(&args, format)?;
    let target = match (&args.post, &args.misp_key_file) {
        (Some(url), Some(key)) => Some(misp::Target::new(url, key, args.misp_ca.as_deref(), args.attempts)?),
        _ => None,
    };
    let (indicator, participant, since_unix_ms, until_unix_ms) = args.filter.request_fields()?;
    let request = v1::ExportSightingsRequest {
        format: wire as i32,
        indicator,
        participant,
        since_unix_ms,
        until_unix_ms,
        name_institutions: args.name_institutions,
    };
    let mut chunks = client.export_sightings(request).await?.into_inner();
    let mut document = Vec::new();
    while let Some(chunk) = chunks.message().await? {
        if !chunk.media_type.is_empty() {
            eprintln!("{} sightings ({})", chunk.sightings, chunk.media_type);
        }
        match target {
            Some(_) => document.extend_from_slice(&chunk.data),
            None => out.write_all(&chunk.data)?,
        }
    }
    let Some(target) = target else { return Ok(out.flush()?) };
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&document)?;
    let report = target.send(&entries).await?;
    let row = |outcome: &str, reasons: &[String], count: usize| {
        to_row(serde_json::json!({
            "outcome": outcome, "sightings": count, "first_reason": reasons.first().cloned().unwrap_or_default(),
        }))
    };
    let rows = [
        row("sent", &[], report.sent),
        row("refused", &report.refused, report.refused.len()),
        row("failed", &report.failed, report.failed.len()),
    ];
    output::write(out, format.unwrap_or(Format::Table), &rows)?;
    for why in report.refused.iter().chain(&report.failed).skip(1).take(20) {
        eprintln!("  {why}");
    }
    let missed = report.refused.len() + report.failed.len();
    if missed > 0 {
        bail!(
            "{missed} of {} sightings not added to MISP ({} refused, {} failed)",
            entries.len(),
            report.refused.len(),
            report.failed.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> (ExportArgs, Option<Format>) {
        let cli = crate::Cli::try_parse_from([&["zdn"], args].concat()).unwrap();
        match cli.command {
            crate::Command::Export(a) => (a, cli.format),
            _ => unreachable!(),
        }
    }

    #[test]
    fn the_format_names_the_document_or_is_refused_never_ignored() {
        use v1::export_sightings_request::Format as Wire;
        let wire = |args: &[&str]| {
            let (a, f) = parse(args);
            document(&a, f).map_err(|e| e.to_string())
        };
        assert_eq!(wire(&["export", "stix"]), Ok(Wire::Stix));
        assert_eq!(wire(&["--format", "csv", "export"]), Ok(Wire::Csv));
        assert_eq!(wire(&["export", "misp", "--format", "json"]), Ok(Wire::Misp));
        assert!(wire(&["export", "stix", "--format", "csv"]).unwrap_err().contains("does not apply"));
        assert!(wire(&["export", "--format", "table"]).unwrap_err().contains("stix, misp or csv"));
        assert!(wire(&["export", "--format", "json"]).unwrap_err().contains("name one"));
        assert!(wire(&["export"]).unwrap_err().contains("name the document"));
        let post = ["export", "stix", "--post", "https://misp.example", "--misp-key-file", "k"];
        assert!(wire(&post).unwrap_err().contains("zdn export misp --post"));
    }
}
