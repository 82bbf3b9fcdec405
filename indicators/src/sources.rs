//! From configured paths to one matcher: every indicator source loaded and detected, the
//! allowlists applied, duplicates across sources folded.

use crate::allowlist::{Allowlist, List, Policies};
use crate::model::Indicator;
use crate::report::{LoadError, LoadReport};
use crate::set::IndicatorSet;
use ed25519_dalek::VerifyingKey;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;

/// A built set and everything an operator should see about how it was built.
#[derive(Debug)]
pub struct BuiltSet {
    pub set: IndicatorSet,
    pub reports: Vec<LoadReport>,
    /// The warninglists, with what each withdrew and flagged.
    pub warninglists: Vec<List>,
    /// Indicators withdrawn because a warninglist names them.
    pub suppressed: Vec<Indicator>,
    /// Indicators kept but flagged by a warninglist.
    pub flagged: usize,
    /// Indicators kept after the warninglists, before duplicates across sources were folded.
    kept: usize,
}

/// Where the allowlists come from and what each does.
#[derive(Debug, Clone, Copy)]
pub struct Allowlists<'a> {
    pub paths: &'a [PathBuf],
    pub policies: &'a Policies,
}

impl Allowlists<'_> {
    /// No allowlists.
    pub const NONE: Allowlists<'static> = Allowlists { paths: &[], policies: &NO_POLICIES };
}

static NO_POLICIES: Policies =
    Policies { default: crate::allowlist::Policy::Specific, lists: BTreeMap::new() };

impl BuiltSet {
    /// The totals an operator reads first (and the logs carry): what was read, kept, folded,
    /// rejected by reason, and what each warninglist that acted withdrew or flagged.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let count = |f: fn(&LoadReport) -> usize| self.reports.iter().map(f).sum::<usize>();
        let (accepted, duplicates) = (count(|r| r.accepted), count(|r| r.duplicates));
        let rejected = count(|r| r.rejected.len());
        let across = self.kept.saturating_sub(self.set.len());
        let mut formats: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &self.reports {
            *formats.entry(&r.format).or_default() += 1;
        }
        let formats: Vec<String> =
            by_count(formats.into_iter()).iter().map(|(f, n)| format!("{f}: {n}")).collect();
        let _ = write!(
            out,
            "{} sources ({}): {accepted} indicators read, {} duplicates ({duplicates} within a source, {across} across sources), {rejected} rejected",
            self.reports.len(),
            formats.join(", "),
            duplicates + across,
        );
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        let mut skipped: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &self.reports {
            for x in &r.rejected {
                *reasons.entry(x.reason.to_string()).or_default() += 1;
            }
            for (why, n) in &r.skipped {
                *skipped.entry(why).or_default() += n;
            }
        }
        for (why, n) in by_count(reasons.iter().map(|(k, &n)| (k.as_str(), n))) {
            let _ = write!(out, "\n  rejected {n}: {why}");
        }
        for (why, n) in by_count(skipped.into_iter()) {
            let _ = write!(out, "\n  skipped {n}: {why}");
        }
        if !self.warninglists.is_empty() {
            let entries: usize = self.warninglists.iter().map(|l| l.report.accepted).sum();
            let _ = write!(
                out,
                "\nwarninglists: {} lists, {entries} entries; {} indicators withdrawn, {} kept and flagged",
                self.warninglists.len(),
                self.suppressed.len(),
                self.flagged
            );
            let mut acting: Vec<&List> =
                self.warninglists.iter().filter(|l| l.suppressed + l.flagged > 0).collect();
            acting.sort_by_key(|l| std::cmp::Reverse(l.suppressed + l.flagged));
            for l in acting {
                let _ = write!(
                    out,
                    "\n  {} ({}, policy {}): {} withdrawn, {} flagged",
                    l.slug, l.report.format, l.policy, l.suppressed, l.flagged
                );
            }
        }
        let bytes = self.set.heap_bytes();
        let _ = write!(
            out,
            "\n{} indicators in the set, {:.1} MB in memory ({:.1} bytes per indicator)",
            self.set.len(),
            bytes as f64 / 1e6,
            bytes as f64 / self.set.len().max(1) as f64
        );
        out
    }

    /// Everything: one report per source with each rejected entry, one per warninglist, and
    /// examples of what was withdrawn; then the totals.
    pub fn details(&self) -> String {
        let mut out: Vec<String> = self.reports.iter().map(|r| r.to_string()).collect();
        for l in &self.warninglists {
            out.push(format!(
                "warninglist {} [{}, policy {}]: {} withdrawn, {} flagged",
                l.report, l.slug, l.policy, l.suppressed, l.flagged
            ));
        }
        if !self.suppressed.is_empty() {
            let examples: Vec<&str> = self.suppressed.iter().take(20).map(|i| i.value.as_str()).collect();
            out.push(format!("withdrawn by warninglists, e.g. {}", examples.join(", ")));
        }
        out.push(self.summary());
        out.join("\n")
    }
}

/// Largest count first; ties in name order.
fn by_count<'a>(counts: impl Iterator<Item = (&'a str, usize)>) -> Vec<(&'a str, usize)> {
    let mut all: Vec<_> = counts.collect();
    all.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
    all
}

/// Loads `indicators` (files or directories, any supported format, or a compiled set) and
/// applies the `allowlists` (MISP warninglists) under their policies. With a `pinned` key,
/// compiled sets must be signed by it; signed sets always need the key to be read.
pub fn build_set(
    indicators: &[PathBuf],
    allowlists: Allowlists<'_>,
    pinned: Option<&VerifyingKey>,
) -> Result<BuiltSet, LoadError> {
    // The fast start: one compiled set and nothing to merge into it.
    if let ([path], []) = (indicators, allowlists.paths)
        && is_compiled(path)
    {
        let (set, report) = load_compiled(path, pinned)?;
        let kept = set.len();
        return Ok(BuiltSet {
            set,
            reports: vec![report],
            warninglists: Vec::new(),
            suppressed: Vec::new(),
            flagged: 0,
            kept,
        });
    }
    Ok(Screened::load(indicators, allowlists, pinned)?.build())
}

/// The sources loaded and the allowlists applied, before the set is built: the collector
/// leaves out what analysts withdrew here, so the set is built once.
pub struct Screened {
    sources: Vec<Vec<Indicator>>,
    reports: Vec<LoadReport>,
    warninglists: Vec<List>,
    suppressed: Vec<Indicator>,
    flagged: usize,
}

impl Screened {
    /// Loads the sources and applies the allowlists (see [`build_set`]).
    pub fn load(
        indicators: &[PathBuf],
        allowlists: Allowlists<'_>,
        pinned: Option<&VerifyingKey>,
    ) -> Result<Screened, LoadError> {
        // The warninglists load on another core while the sources do.
        let (loaded, allow) = std::thread::scope(|scope| {
            let allow = scope.spawn(|| Allowlist::load(allowlists.paths, allowlists.policies));
            let loaded = load_sources(indicators, pinned);
            (loaded, allow.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
        });
        let ((mut sources, reports), mut allow) = (loaded?, allow?);
        let suppressed = allow.apply(&mut sources);
        let flagged = allow.flagged();
        Ok(Screened { sources, reports, warninglists: allow.lists().to_vec(), suppressed, flagged })
    }

    /// Keeps only the indicators `keep` accepts; returns how many it left out.
    pub fn retain(&mut self, keep: impl Fn(&Indicator) -> bool) -> usize {
        let before: usize = self.sources.iter().map(Vec::len).sum();
        self.sources.iter_mut().for_each(|source| source.retain(&keep));
        before - self.sources.iter().map(Vec::len).sum::<usize>()
    }

    /// The screened indicators, by source.
    pub fn sources(&self) -> &[Vec<Indicator>] {
        &self.sources
    }

    /// The report for `set`, made from these indicators some other way (the collector applies
    /// the change since its last version to that version instead of building them anew).
    pub fn into_built(self, set: IndicatorSet) -> BuiltSet {
        let Screened { sources, reports, warninglists, suppressed, flagged } = self;
        let kept = sources.iter().map(Vec::len).sum();
        std::thread::spawn(move || drop(sources));
        BuiltSet { set, reports, warninglists, suppressed, flagged, kept }
    }

    /// Builds the set.
    pub fn build(self) -> BuiltSet {
        let Screened { sources, reports, warninglists, suppressed, flagged } = self;
        let kept = sources.iter().map(Vec::len).sum();
        let set = IndicatorSet::from_sources(&sources);
        // Freeing 1.8M indicators' strings takes a tenth of a second; the set no longer needs
        // them, so another core does it.
        std::thread::spawn(move || drop(sources));
        BuiltSet { set, reports, warninglists, suppressed, flagged, kept }
    }
}

/// Every indicator source, in order, with its report.
fn load_sources(
    indicators: &[PathBuf],
    pinned: Option<&VerifyingKey>,
) -> Result<(Vec<Vec<Indicator>>, Vec<LoadReport>), LoadError> {
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
    Ok((sources, reports))
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
