//! From configured paths to one matcher: every indicator source loaded and detected, the
//! allowlists applied, duplicates across sources folded.

use crate::allowlist::Allowlist;
use crate::model::Indicator;
use crate::report::{LoadError, LoadReport};
use crate::set::IndicatorSet;
use ed25519_dalek::VerifyingKey;
use std::path::PathBuf;

/// A built set and everything an operator should see about how it was built.
#[derive(Debug)]
pub struct BuiltSet {
    pub set: IndicatorSet,
    pub reports: Vec<LoadReport>,
    pub allowlist_reports: Vec<LoadReport>,
    /// Indicators withdrawn because an allowlist covers them.
    pub suppressed: Vec<Indicator>,
}

impl BuiltSet {
    /// A human summary: one line per source, then what the allowlists withdrew.
    pub fn summary(&self) -> String {
        let mut out: Vec<String> = self.reports.iter().map(|r| r.to_string()).collect();
        out.extend(self.allowlist_reports.iter().map(|r| format!("allowlist {r}")));
        if !self.allowlist_reports.is_empty() {
            let examples: Vec<&str> = self.suppressed.iter().take(5).map(|i| i.value.as_str()).collect();
            out.push(format!(
                "{} indicators suppressed by allowlists (e.g. {})",
                self.suppressed.len(),
                examples.join(", ")
            ));
        }
        let bytes = self.set.heap_bytes();
        out.push(format!(
            "{} indicators in the set, {:.1} MB in memory ({:.1} bytes per indicator)",
            self.set.len(),
            bytes as f64 / 1e6,
            bytes as f64 / self.set.len().max(1) as f64
        ));
        out.join("\n")
    }
}

/// Loads `indicators` (files or directories, any supported format, or a compiled set) and
/// withdraws what the `allowlists` (MISP warninglists) cover. With a `pinned` key, compiled
/// sets must be signed by it; signed sets always need the key to be read.
pub fn build_set(
    indicators: &[PathBuf],
    allowlists: &[PathBuf],
    pinned: Option<&VerifyingKey>,
) -> Result<BuiltSet, LoadError> {
    // The fast start: one compiled set and nothing to merge into it.
    if let ([path], []) = (indicators, allowlists)
        && is_compiled(path)
    {
        let (set, report) = load_compiled(path, pinned)?;
        return Ok(BuiltSet {
            set,
            reports: vec![report],
            allowlist_reports: Vec::new(),
            suppressed: Vec::new(),
        });
    }
    let mut sources: Vec<Vec<Indicator>> = Vec::new();
    let mut reports = Vec::new();
    for path in indicators {
        if is_compiled(path) {
            let (set, report) = load_compiled(path, pinned)?;
            reports.push(report);
            sources.push(set.iter().map(|m| m.to_indicator()).collect());
            continue;
        }
        for loaded in crate::formats::load(path)? {
            sources.push(loaded.indicators);
            reports.push(loaded.report);
        }
    }
    let mut allow = Allowlist::default();
    for path in allowlists {
        let more = Allowlist::load(path)?;
        allow.merge(more);
    }
    let mut suppressed = Vec::new();
    if !allow.is_empty() {
        for source in &mut sources {
            let (kept, gone) = allow.apply(std::mem::take(source));
            *source = kept;
            suppressed.extend(gone);
        }
    }
    let set = IndicatorSet::from_sources(&sources);
    // Freeing 1.8M indicators' strings takes a tenth of a second; the set no longer needs
    // them, so another core does it.
    std::thread::spawn(move || drop(sources));
    Ok(BuiltSet { set, reports, allowlist_reports: allow.reports, suppressed })
}

/// Whether `path` is a compiled set, signed or not (by its magic bytes).
pub fn is_compiled(path: &std::path::Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 8];
    path.is_file()
        && std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok()
        && (magic.starts_with(b"ZDNSET") || magic.starts_with(b"ZDNSIG"))
}

fn load_compiled(
    path: &std::path::Path,
    pinned: Option<&VerifyingKey>,
) -> Result<(IndicatorSet, LoadReport), LoadError> {
    let name = path.display().to_string();
    let malformed =
        |what: String| LoadError::Malformed { path: name.clone(), format: "compiled indicator set", what };
    let io = |source| LoadError::Io { path: name.clone(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    // SAFETY: read-only and dropped before returning; sets are replaced by rename, never
    // rewritten in place (`compiled::write`, `signing::install`). Mapping is `unsafe` in
    // memmap2's API; it lets a 100 MB set be read without a copy.
    #[allow(unsafe_code)]
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    let bytes: &[u8] = &map;
    let (set, version, format) = match (crate::signing::is_signed(bytes), pinned) {
        (true, Some(key)) => {
            let (set, version) = crate::signing::verify(bytes, key).map_err(|e| malformed(e.to_string()))?;
            (set, version, "signed")
        }
        (true, None) => {
            return Err(malformed("the set is signed: pass the pinned public key to verify it".into()));
        }
        (false, Some(_)) => return Err(malformed(crate::signing::SignedError::Unsigned.to_string())),
        (false, None) => {
            let (set, version) = crate::set::compiled::decode(bytes).map_err(|e| malformed(e.to_string()))?;
            (set, version, "compiled")
        }
    };
    let report = LoadReport {
        source: name,
        format: format!("{format}, version {version}"),
        accepted: set.len(),
        ..LoadReport::default()
    };
    Ok((set, report))
}
