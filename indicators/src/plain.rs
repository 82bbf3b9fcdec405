//! The plain-text list format: one indicator a line, kind detected per line, `#` comments
//! (whole-line, or trailing after whitespace). Maltrail's static trails are this format too.
//!
//! Every line that is not an indicator is reported with its line number and reason in the
//! [`LoadReport`]; a list with no indicator at all is an error, so an empty or wrong file can
//! never silently replace a working set.

use crate::model::Indicator;
use crate::normalise::{RejectReason, normalise};
use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use thiserror::Error;

/// The indicators of one list, and what happened to each line.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub indicators: Vec<Indicator>,
    pub report: LoadReport,
}

/// What loading a list did: counts, and each rejected line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub source: String,
    pub accepted: usize,
    /// Lines whose canonical value was already in this list.
    pub duplicates: usize,
    pub rejected: Vec<Rejected>,
}

/// One line that is not an indicator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub line: usize,
    pub text: String,
    pub reason: RejectReason,
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} indicators, {} duplicates, {} rejected",
            self.source,
            self.accepted,
            self.duplicates,
            self.rejected.len()
        )?;
        for r in &self.rejected {
            write!(f, "\n  {}:{}: {}: {:?}", self.source, r.line, r.reason, r.text)?;
        }
        Ok(())
    }
}

#[derive(Debug, Error)]
pub enum LoadError {
    #[error("cannot read indicator list {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path} is not a text indicator list (line {line} is not UTF-8 text)")]
    NotText { path: String, line: usize },
    #[error("{path} holds no indicators ({rejected} lines rejected); refusing an empty set\n{report}")]
    Empty { path: String, rejected: usize, report: Box<LoadReport> },
}

/// Longest line we look at; longer lines are rejected without being copied whole.
const MAX_LINE: usize = 4096;

/// Reads and parses a plain-text list from disk.
pub fn load_plain(path: &Path) -> Result<Loaded, LoadError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| LoadError::Io { path: name.clone(), source })?;
    let text = match std::str::from_utf8(&bytes) {
        Ok(t) if !t.contains('\0') => t,
        Ok(t) => {
            let line = t[..t.find('\0').unwrap_or(0)].lines().count().max(1);
            return Err(LoadError::NotText { path: name, line });
        }
        Err(e) => {
            let line = bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1;
            return Err(LoadError::NotText { path: name, line });
        }
    };
    let loaded = parse_plain(&name, text);
    if loaded.indicators.is_empty() {
        let rejected = loaded.report.rejected.len();
        return Err(LoadError::Empty { path: name, rejected, report: Box::new(loaded.report) });
    }
    Ok(loaded)
}

/// Parses list text; `source` names it in indicators and the report.
pub fn parse_plain(source: &str, text: &str) -> Loaded {
    let mut report = LoadReport { source: source.to_owned(), ..LoadReport::default() };
    let mut seen = HashSet::new();
    let mut indicators = Vec::new();
    for (i, raw_line) in text.lines().enumerate() {
        let line = strip_comment(raw_line).trim();
        if line.is_empty() {
            continue;
        }
        if line.len() > MAX_LINE {
            let text = line[..line.floor_char_boundary(80)].to_owned() + "…";
            let reason = RejectReason::TooLong { max: MAX_LINE };
            report.rejected.push(Rejected { line: i + 1, text, reason });
            continue;
        }
        match normalise(line) {
            Ok(n) => {
                if seen.insert((n.kind, n.value.clone())) {
                    indicators.push(Indicator::bare(n.kind, n.value, source));
                } else {
                    report.duplicates += 1;
                }
            }
            Err(reason) => report.rejected.push(Rejected { line: i + 1, text: line.to_owned(), reason }),
        }
    }
    report.accepted = indicators.len();
    Loaded { indicators, report }
}

/// Removes a `#` comment: a line starting with `#`, or ` #...` after a value. A `#` inside a
/// value (a URL fragment) is kept.
fn strip_comment(line: &str) -> &str {
    if line.trim_start().starts_with('#') {
        return "";
    }
    match line.find(" #").or_else(|| line.find("\t#")) {
        Some(i) => &line[..i],
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Kind;

    #[test]
    fn parses_values_comments_duplicates_and_rejects_with_line_numbers() {
        let text = "# header\n\nevil.example\nEVIL.example.  # same again\n203.0.113.9\nnot a value\n1.2.3.4/x#frag\n";
        let loaded = parse_plain("t.txt", text);
        let kinds: Vec<_> = loaded.indicators.iter().map(|i| (i.kind, i.value.as_str())).collect();
        assert_eq!(
            kinds,
            [(Kind::Domain, "evil.example"), (Kind::Ipv4, "203.0.113.9"), (Kind::Url, "1.2.3.4/x#frag")]
        );
        assert_eq!(loaded.report.accepted, 3);
        assert_eq!(loaded.report.duplicates, 1);
        assert_eq!(loaded.report.rejected.len(), 1);
        assert_eq!(loaded.report.rejected[0].line, 6);
        assert!(loaded.report.to_string().contains("t.txt:6: invalid domain name"));
    }

    #[test]
    fn refuses_files_that_are_not_lists() {
        let dir = std::env::temp_dir().join(format!("zdn-plain-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.txt");
        std::fs::write(&empty, "# nothing\nnot-a-domain\n").unwrap();
        assert!(matches!(load_plain(&empty), Err(LoadError::Empty { rejected: 1, .. })));
        let binary = dir.join("bin.txt");
        std::fs::write(&binary, b"evil.example\n\xff\xfe\x00").unwrap();
        assert!(matches!(load_plain(&binary), Err(LoadError::NotText { line: 2, .. })));
        assert!(matches!(load_plain(&dir.join("missing")), Err(LoadError::Io { .. })));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
