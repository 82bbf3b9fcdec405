//! The register of issued certificates, `<pki>/ca/issued.jsonl`: one JSON line per
//! certificate the CA signed (serial, holder, validity) and when it was revoked, so that
//! `pki list` can show them and `pki revoke` can name one by its holder.
//!
//! Written whole to a temporary file and renamed over the old one: a crash leaves the old
//! register or the new one, never half of either.

use super::PkiError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One issued certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issued {
    /// Serial number, lower-case hex without leading zeros (as revocation lists show it).
    pub serial: String,
    pub participant: String,
    pub role: String,
    pub name: String,
    pub not_after: String,
    pub issued: String,
    /// When `pki revoke` revoked it (RFC 3339), or `None`.
    pub revoked: Option<String>,
}

pub fn path(dir: &Path) -> PathBuf {
    dir.join("ca").join("issued.jsonl")
}

/// Every certificate issued by the CA in `dir` (none before the first `issue`).
pub fn read(dir: &Path) -> Result<Vec<Issued>, PkiError> {
    let path = path(dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(PkiError::Io { path, source }),
    };
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            serde_json::from_str(line)
                .map_err(|e| PkiError::Register(format!("{} line {}: {e}", path.display(), n + 1)))
        })
        .collect()
}

/// Replaces the register with `entries`.
pub fn write(dir: &Path, entries: &[Issued]) -> Result<(), PkiError> {
    let path = path(dir);
    let mut text = String::new();
    for entry in entries {
        text.push_str(&serde_json::to_string(entry).map_err(|e| PkiError::Register(e.to_string()))?);
        text.push('\n');
    }
    let temporary = path.with_extension("jsonl.new");
    super::write(&temporary, text.as_bytes(), false)?;
    std::fs::rename(&temporary, &path).map_err(|source| PkiError::Io { path, source })
}

/// Adds one entry.
pub fn append(dir: &Path, entry: Issued) -> Result<(), PkiError> {
    let mut entries = read(dir)?;
    entries.push(entry);
    write(dir, &entries)
}
