//! What loading a source produced, and how every loader builds it.
//!
//! All loaders go through [`ListBuilder`]: one place normalises values, drops duplicates,
//! records each rejected entry with its line and reason, and counts entries that are
//! deliberately not indicators (`to_ids: false`, expired, revoked, unsupported types).

use crate::model::{Indicator, Kind, Meta};
use crate::normalise::{RejectReason, normalise};
use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::sync::Arc;

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

/// Accumulates a source's indicators and report.
pub struct ListBuilder {
    source: String,
    /// The metadata record of the previous entry, reused while entries share it.
    last_meta: Option<Arc<Meta>>,
    /// Indexes into `indicators` with the top 32 bits of their hash, keyed by the hash of
    /// (kind, value): duplicates are found without keeping a second copy of every value.
    seen: hashbrown::HashTable<(u32, u32)>,
    indicators: Vec<Indicator>,
    report: LoadReport,
}

/// Longest entry we look at; longer ones are rejected without being copied whole.
const MAX_ENTRY: usize = 4096;

impl ListBuilder {
    pub fn new(source: &str, format: &str) -> ListBuilder {
        ListBuilder {
            source: source.to_owned(),
            last_meta: None,
            seen: hashbrown::HashTable::new(),
            indicators: Vec::new(),
            report: LoadReport {
                source: source.to_owned(),
                format: format.to_owned(),
                ..LoadReport::default()
            },
        }
    }

    /// Normalises `raw` and adds it with its source's `id` (if any) and metadata (`source` is
    /// filled in here), or records why not.
    pub fn add(&mut self, location: impl fmt::Display, raw: &str, id: Option<&str>, meta: &Meta) {
        match self.check(raw) {
            Ok(n) => self.add_normalised(n.kind, n.value, id, meta),
            Err(reason) => self.reject(location, raw, reason),
        }
    }

    /// Adds a value already known to be `kind` (the source said so): rejected if its canonical
    /// form is of another kind.
    pub fn add_as(
        &mut self,
        location: impl fmt::Display,
        raw: &str,
        expected: &[Kind],
        id: Option<&str>,
        meta: &Meta,
    ) {
        match self.check(raw) {
            Ok(n) if expected.contains(&n.kind) => self.add_normalised(n.kind, n.value, id, meta),
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

    /// The shared record for `meta` (with this source's name).
    fn shared(&mut self, meta: &Meta) -> Arc<Meta> {
        if let Some(last) = &self.last_meta {
            let same = last.event == meta.event
                && last.tlp == meta.tlp
                && last.confidence == meta.confidence
                && last.valid_from_unix_ms == meta.valid_from_unix_ms
                && last.valid_until_unix_ms == meta.valid_until_unix_ms
                && last.tags == meta.tags;
            if same {
                return last.clone();
            }
        }
        let record = Arc::new(Meta { source: self.source.clone(), ..meta.clone() });
        self.last_meta = Some(record.clone());
        record
    }

    fn add_normalised(&mut self, kind: Kind, value: String, id: Option<&str>, meta: &Meta) {
        let hash = HASH.hash_one((kind, value.as_str()));
        // The table keeps 32 bits of each hash beside the index: a probe that meets another
        // indicator's control byte compares those bits first, not the other value, whose text
        // lies in a cold cache line (about 3 % of a text load of the trails).
        let check = (hash >> 32) as u32;
        let indicators = &self.indicators;
        let same = |&(i, c): &(u32, u32)| {
            c == check && indicators[i as usize].kind == kind && indicators[i as usize].value == value
        };
        if self.seen.find(hash, same).is_some() {
            self.report.duplicates += 1;
            return;
        }
        let rehash = |&(i, _): &(u32, u32)| {
            HASH.hash_one((indicators[i as usize].kind, indicators[i as usize].value.as_str()))
        };
        self.seen.insert_unique(hash, (self.indicators.len() as u32, check), rehash);
        let meta = self.shared(meta);
        let id = id.map(str::to_owned);
        self.indicators.push(Indicator { id, kind, value, meta, exact_only: false });
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
