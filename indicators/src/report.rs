//! What loading a source produced, and how every loader builds it.
//!
//! All loaders go through [`ListBuilder`]: one place normalises values, drops duplicates,
//! records each rejected entry with its line and reason, and counts entries that are
//! deliberately not indicators (`to_ids: false`, expired, revoked, unsupported types).

use crate::model::{Indicator, Kind};
use crate::normalise::{RejectReason, normalise};
use std::collections::BTreeMap;
use std::hash::BuildHasher;

/// Hashing for de-duplication: fast, and no DoS concern (the input is the operator's own lists).
const HASH: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(1);
use std::fmt;
use thiserror::Error;

/// The indicators of one source, and what happened to each entry.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub indicators: Vec<Indicator>,
    pub report: LoadReport,
}

/// Counts and rejected entries of one load.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub source: String,
    /// The detected format ("plain", "misp-feed", "stix2.1", ...).
    pub format: String,
    pub accepted: usize,
    /// Entries whose canonical value was already in this source.
    pub duplicates: usize,
    /// Entries that are deliberately not indicators, by reason.
    pub skipped: BTreeMap<String, usize>,
    pub rejected: Vec<Rejected>,
}

/// One entry that is not an indicator; `line` is the line (text formats) or the entry's
/// position (JSON formats: 1-based index of the attribute or STIX object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub location: String,
    pub text: String,
    pub reason: RejectReason,
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {} indicators, {} duplicates, {} rejected",
            self.source,
            self.format,
            self.accepted,
            self.duplicates,
            self.rejected.len()
        )?;
        for (why, n) in &self.skipped {
            write!(f, ", {n} skipped ({why})")?;
        }
        for r in &self.rejected {
            write!(f, "\n  {}: {}: {:?}", r.location, r.reason, r.text)?;
        }
        Ok(())
    }
}

#[derive(Debug, Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path} is not a text indicator list (line {line} is not UTF-8 text)")]
    NotText { path: String, line: usize },
    #[error("{path}: not valid {format}: {what}")]
    Malformed { path: String, format: &'static str, what: String },
    #[error("{path} holds no indicators ({rejected} entries rejected); refusing an empty set\n{report}")]
    Empty { path: String, rejected: usize, report: Box<LoadReport> },
}

/// Metadata an entry carries besides its value.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    /// Stable id from the source; `None` uses the canonical value.
    pub id: Option<String>,
    pub event: String,
    pub tlp: String,
    pub confidence: u8,
    pub valid_from_unix_ms: Option<i64>,
    pub valid_until_unix_ms: Option<i64>,
    pub tags: Vec<String>,
}

/// Accumulates a source's indicators and report.
pub struct ListBuilder {
    source: std::sync::Arc<str>,
    /// Indexes into `indicators`, keyed by the hash of (kind, value): duplicates are found
    /// without keeping a second copy of every value.
    seen: hashbrown::HashTable<u32>,
    indicators: Vec<Indicator>,
    report: LoadReport,
}

/// Longest entry we look at; longer ones are rejected without being copied whole.
const MAX_ENTRY: usize = 4096;

impl ListBuilder {
    pub fn new(source: &str, format: &str) -> ListBuilder {
        ListBuilder {
            source: source.into(),
            seen: hashbrown::HashTable::new(),
            indicators: Vec::new(),
            report: LoadReport {
                source: source.to_owned(),
                format: format.to_owned(),
                ..LoadReport::default()
            },
        }
    }

    /// Normalises `raw` and adds it, or records why not.
    pub fn add(&mut self, location: impl fmt::Display, raw: &str, meta: &Meta) {
        match self.check(raw) {
            Ok(n) => self.add_normalised(n.kind, n.value, meta),
            Err(reason) => self.reject(location, raw, reason),
        }
    }

    /// Adds a value already known to be `kind` (the source said so): rejected if its canonical
    /// form is of another kind.
    pub fn add_as(&mut self, location: impl fmt::Display, raw: &str, expected: &[Kind], meta: &Meta) {
        match self.check(raw) {
            Ok(n) if expected.contains(&n.kind) => self.add_normalised(n.kind, n.value, meta),
            Ok(n) => {
                let reason =
                    RejectReason::Format(format!("declared {:?} but the value is a {}", expected, n.kind));
                self.reject(location, raw, reason)
            }
            Err(reason) => self.reject(location, raw, reason),
        }
    }

    fn check(&self, raw: &str) -> Result<crate::normalise::Normalised, RejectReason> {
        if raw.len() > MAX_ENTRY {
            return Err(RejectReason::TooLong { max: MAX_ENTRY });
        }
        normalise(raw)
    }

    fn add_normalised(&mut self, kind: Kind, value: String, meta: &Meta) {
        let hash = HASH.hash_one((kind, value.as_str()));
        let indicators = &self.indicators;
        let same = |&i: &u32| indicators[i as usize].kind == kind && indicators[i as usize].value == value;
        if self.seen.find(hash, same).is_some() {
            self.report.duplicates += 1;
            return;
        }
        let rehash =
            |&i: &u32| HASH.hash_one((indicators[i as usize].kind, indicators[i as usize].value.as_str()));
        self.seen.insert_unique(hash, self.indicators.len() as u32, rehash);
        self.indicators.push(Indicator {
            id: meta.id.clone().unwrap_or_else(|| value.clone()),
            kind,
            value,
            source: self.source.clone(),
            event: meta.event.clone(),
            tlp: meta.tlp.clone(),
            confidence: meta.confidence,
            valid_from_unix_ms: meta.valid_from_unix_ms,
            valid_until_unix_ms: meta.valid_until_unix_ms,
            tags: meta.tags.clone(),
            exact_only: false,
        });
    }

    pub fn reject(&mut self, location: impl fmt::Display, raw: &str, reason: RejectReason) {
        let text = if raw.len() > 80 {
            format!("{}…", &raw[..raw.floor_char_boundary(80)])
        } else {
            raw.to_owned()
        };
        self.report.rejected.push(Rejected { location: format!("{}:{location}", self.source), text, reason });
    }

    /// Counts an entry that is deliberately not an indicator.
    pub fn skip(&mut self, why: impl Into<String>) {
        *self.report.skipped.entry(why.into()).or_default() += 1;
    }

    pub fn finish(mut self) -> Loaded {
        self.report.accepted = self.indicators.len();
        Loaded { indicators: self.indicators, report: self.report }
    }
}
