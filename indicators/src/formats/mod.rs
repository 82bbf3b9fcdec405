//! One way in: [`load`] takes a file or directory, detects its format and returns its sources.
//!
//! | input | detected by | loader |
//! | --- | --- | --- |
//! | directory with `manifest.json` | the manifest | [`misp::load_feed`] |
//! | other directory | — | every file below it, each detected on its own; `.txt` files are trail lists whose family is the file name (Maltrail's `static/*/*.txt`) |
//! | `.json` with `"type": "bundle"` | content | [`stix::parse`] |
//! | `.json` with `Event` / `response` | content | [`misp::parse_export`] |
//! | `manifest.json` | name | the feed in its directory |
//! | text starting with `#fields` | content | [`zeek::parse`] |
//! | `.csv` | extension | [`csv::parse`] |
//! | anything else that is text | — | [`plain::parse`] |
//!
//! A MISP warninglist given as indicators is refused with a pointer to `--allowlist`.

pub mod csv;
pub mod misp;
pub mod plain;
pub mod stix;
pub mod zeek;

use crate::model::Meta;
use crate::report::{LoadError, Loaded};
use std::path::Path;

/// Parses plain-list text (one value a line).
pub fn parse_plain(source: &str, text: &str) -> Loaded {
    plain::parse(source, "plain", text, &Meta::default())
}

/// Loads every source at `path`. Refuses a path that yields no indicator at all.
pub fn load(path: &Path) -> Result<Vec<Loaded>, LoadError> {
    let mut out = Vec::new();
    load_into(path, false, &mut out)?;
    let total: usize = out.iter().map(|l| l.indicators.len()).sum();
    if total == 0 {
        let rejected = out.iter().map(|l| l.report.rejected.len()).sum();
        let mut report = out.into_iter().next().map(|l| l.report).unwrap_or_default();
        report.source = path.display().to_string();
        return Err(LoadError::Empty {
            path: path.display().to_string(),
            rejected,
            report: Box::new(report),
        });
    }
    Ok(out)
}

fn load_into(path: &Path, in_directory: bool, out: &mut Vec<Loaded>) -> Result<(), LoadError> {
    let name = path.display().to_string();
    let io = |e| LoadError::Io { path: name.clone(), source: e };
    if path.is_dir() {
        if path.join("manifest.json").is_file() {
            out.push(misp::load_feed(path)?);
            return Ok(());
        }
        let mut entries: Vec<_> =
            std::fs::read_dir(path).map_err(io)?.filter_map(Result::ok).map(|e| e.path()).collect();
        entries.sort();
        entries.retain(|entry| {
            let file_name = entry.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let wanted = entry.is_dir()
                || ["txt", "csv", "json", "intel", "dat", "list"]
                    .iter()
                    .any(|e| file_name.ends_with(&format!(".{e}")));
            !file_name.starts_with('.') && wanted
        });
        return load_parallel(&entries, out);
    }
    if path.file_name().is_some_and(|n| n == "manifest.json") {
        let dir = path.parent().unwrap_or(Path::new("."));
        out.push(misp::load_feed(dir)?);
        return Ok(());
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let text = text_of(&name, &bytes)?;
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| LoadError::Malformed {
            path: name.clone(),
            format: "JSON",
            what: e.to_string(),
        })?;
        if doc.get("type").and_then(|t| t.as_str()) == Some("bundle") {
            out.push(stix::parse(&name, &doc, zdn_timestamps::now_ms())?);
        } else if doc.get("matching_attributes").is_some() && doc.get("list").is_some() {
            return Err(LoadError::Malformed {
                path: name,
                format: "indicator source",
                what: "this is a MISP warninglist: pass it as an allowlist".into(),
            });
        } else {
            out.push(misp::parse_export(&name, &doc)?);
        }
    } else if trimmed.starts_with("#fields") {
        out.push(zeek::parse(&name, text)?);
    } else if path.extension().is_some_and(|e| e == "csv") {
        out.push(csv::parse(&name, text)?);
    } else if in_directory {
        let family = path.file_stem().and_then(|s| s.to_str()).unwrap_or("").to_owned();
        out.push(plain::parse(&name, "trails", text, &Meta { event: family, ..Meta::default() }));
    } else {
        out.push(parse_plain(&name, text));
    }
    Ok(())
}

/// Loads directory entries on every core, keeping their order (and so which duplicate wins).
fn load_parallel(entries: &[std::path::PathBuf], out: &mut Vec<Loaded>) -> Result<(), LoadError> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(entries.len().max(1));
    let chunk = entries.len().div_ceil(workers).max(1);
    let results: Vec<Result<Vec<Loaded>, LoadError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = entries
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    for entry in part {
                        load_into(entry, true, &mut mine)?;
                    }
                    Ok(mine)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("loader thread panicked")).collect()
    });
    for result in results {
        out.extend(result?);
    }
    Ok(())
}

fn text_of<'a>(name: &str, bytes: &'a [u8]) -> Result<&'a str, LoadError> {
    match std::str::from_utf8(bytes) {
        Ok(t) if !t.contains('\0') => Ok(t),
        Ok(t) => Err(LoadError::NotText {
            path: name.into(),
            line: t[..t.find('\0').unwrap_or(0)].lines().count().max(1),
        }),
        Err(e) => Err(LoadError::NotText {
            path: name.into(),
            line: bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1,
        }),
    }
}
