//! The plain-text list format: one indicator a line, kind detected per line, `#` comments
//! (whole-line, or trailing after whitespace). Maltrail's static trail files are this format;
//! for them the file name is the malware family (the indicators' `event`).

use crate::model::Meta;
use crate::report::{ListBuilder, Loaded};

/// Parses list text; `source` names it in indicators and the report.
pub fn parse(source: &str, format: &str, text: &str, meta: &Meta) -> Loaded {
    let mut list = ListBuilder::new(source, format);
    for (i, raw_line) in text.lines().enumerate() {
        let line = strip_comment(raw_line).trim();
        if !line.is_empty() {
            list.add(i + 1, line, None, meta);
        }
    }
    list.finish()
}

/// Removes a `#` comment: a line starting with `#`, or ` #...` after a value. A `#` inside a
/// value (a URL fragment) is kept.
fn strip_comment(line: &str) -> &str {
    if line.trim_start().starts_with('#') {
        return "";
    }
    // By byte: a substring search (`find(" #")`) builds a searcher per line, 3 % of a trails load.
    let bytes = line.as_bytes();
    let comment =
        line.match_indices('#').map(|(i, _)| i).find(|&i| i > 0 && matches!(bytes[i - 1], b' ' | b'\t'));
    match comment {
        Some(i) => &line[..i - 1],
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
        let loaded = parse("t.txt", "plain", text, &Meta::default());
        let kinds: Vec<_> = loaded.indicators.iter().map(|i| (i.kind, i.value.as_str())).collect();
        assert_eq!(
            kinds,
            [(Kind::Domain, "evil.example"), (Kind::Ipv4, "203.0.113.9"), (Kind::Url, "1.2.3.4/x#frag")]
        );
        assert_eq!(loaded.report.accepted, 3);
        assert_eq!(loaded.report.duplicates, 1);
        assert_eq!(loaded.report.rejected.len(), 1);
        assert_eq!(loaded.report.rejected[0].location, "t.txt:6");
        assert!(loaded.report.to_string().contains("t.txt:6: invalid domain name"));
    }
}
