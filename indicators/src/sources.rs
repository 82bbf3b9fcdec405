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
        out.push(format!("{} indicators in the set", self.set.len()));
        out.join("\n")
    }
}

/// Loads `indicators` (files or directories, any supported format) and withdraws what the
/// `allowlists` (MISP warninglists) cover.
pub fn build_set(indicators: &[PathBuf], allowlists: &[PathBuf]) -> Result<BuiltSet, LoadError> {
    let mut all = Vec::new();
    let mut reports = Vec::new();
    for path in indicators {
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
