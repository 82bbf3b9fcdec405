//! From configured paths to one matcher: every indicator source loaded and detected, the
//! allowlists applied, duplicates across sources folded.

use crate::allowlist::Allowlist;
use crate::model::Indicator;
use crate::report::{LoadError, LoadReport};
use crate::set::IndicatorSet;
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
/// withdraws what the `allowlists` (MISP warninglists) cover.
pub fn build_set(indicators: &[PathBuf], allowlists: &[PathBuf]) -> Result<BuiltSet, LoadError> {
    // The fast start: one compiled set and nothing to merge into it.
    if let ([path], []) = (indicators, allowlists)
        && is_compiled(path)
    {
        let set = load_compiled(path)?;
        let report = LoadReport {
            source: path.display().to_string(),
            format: "compiled".into(),
            accepted: set.len(),
            ..LoadReport::default()
        };
        return Ok(BuiltSet {
            set,
            reports: vec![report],
            allowlist_reports: Vec::new(),
            suppressed: Vec::new(),
        });
    }
    let mut all = Vec::new();
    let mut reports = Vec::new();
    for path in indicators {
        if is_compiled(path) {
            let set = load_compiled(path)?;
            reports.push(LoadReport {
                source: path.display().to_string(),
                format: "compiled".into(),
                accepted: set.len(),
                ..LoadReport::default()
            });
            all.extend(set.iter().map(|m| m.to_indicator()));
            continue;
        }
        for loaded in crate::formats::load(path)? {
            all.extend(loaded.indicators);
            reports.push(loaded.report);
        }
    }
    let mut allow = Allowlist::default();
    for path in allowlists {
        let more = Allowlist::load(path)?;
        allow.merge(more);
    }
    let (kept, suppressed) = allow.apply(all);
    Ok(BuiltSet { set: IndicatorSet::new(kept), reports, allowlist_reports: allow.reports, suppressed })
}

/// Whether `path` is a compiled set (by its magic bytes).
pub fn is_compiled(path: &std::path::Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 8];
    path.is_file()
        && std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok()
        && magic.starts_with(b"ZDNSET")
}

fn load_compiled(path: &std::path::Path) -> Result<IndicatorSet, LoadError> {
    crate::set::compiled::load(path).map(|(set, _)| set).map_err(|e| LoadError::Malformed {
        path: path.display().to_string(),
        format: "compiled indicator set",
        what: e.to_string(),
    })
}
