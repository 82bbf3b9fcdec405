//! STIX 2.1 bundles: `indicator` objects with `pattern_type: stix`.
//!
//! Each observation expression (`[...]`) is read on its own; its comparisons on
//! `ipv4-addr:value`, `ipv6-addr:value`, `domain-name:value`, `url:value`,
//! `domain-name:resolves_to_refs[*].value` and `network-traffic:dst_ref.value` (with
//! `network-traffic:dst_port` in the same expression: an IP:port) become indicators. `OR`
//! gives one indicator per value. `AND` across different observables cannot be decided per
//! packet, so each supported term is matched on its own — broader than the pattern, never
//! narrower (no false negatives). Revoked indicators and those past `valid_until` are skipped
//! and counted; other object paths (file hashes, ...) are counted as unsupported.

use crate::model::Meta;
use crate::normalise::RejectReason;
use crate::report::{ListBuilder, LoadError, Loaded};
use serde_json::Value;

pub fn parse(source: &str, bundle: &Value, now_ms: i64) -> Result<Loaded, LoadError> {
    let objects = bundle.get("objects").and_then(Value::as_array).ok_or_else(|| LoadError::Malformed {
        path: source.to_owned(),
        format: "STIX 2.1 bundle",
        what: "no objects array".into(),
    })?;
    let mut list = ListBuilder::new(source, "stix2.1");
    for (i, object) in objects.iter().enumerate() {
        if object.get("type").and_then(Value::as_str) != Some("indicator") {
            continue;
        }
        let location =
            format!("object {} ({})", i + 1, object.get("id").and_then(Value::as_str).unwrap_or("no id"));
        if object.get("revoked").and_then(Value::as_bool) == Some(true) {
            list.skip("revoked");
            continue;
        }
        let time = |key: &str| object.get(key).and_then(Value::as_str).and_then(parse_time);
        let valid_until = time("valid_until");
        if valid_until.is_some_and(|t| t <= now_ms) {
            list.skip("expired");
            continue;
        }
        if object.get("pattern_type").and_then(Value::as_str).unwrap_or("stix") != "stix" {
            list.skip("non-STIX pattern");
            continue;
        }
        let Some(pattern) = object.get("pattern").and_then(Value::as_str) else {
            list.reject(&location, "", RejectReason::Format("indicator without pattern".into()));
            continue;
        };
        let labels: Vec<String> = object
            .get("labels")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        let id = object.get("id").and_then(Value::as_str);
        let meta = Meta {
            event: labels
                .first()
                .cloned()
                .unwrap_or_else(|| object.get("name").and_then(Value::as_str).unwrap_or("").to_owned()),
            confidence: object.get("confidence").and_then(Value::as_u64).map_or(0, |c| c.min(100) as u8),
            valid_from_unix_ms: time("valid_from"),
            valid_until_unix_ms: valid_until,
            tags: labels,
            ..Meta::default()
        };
        match observations(pattern) {
            Ok(obs) => {
                for terms in obs {
                    add_observation(&mut list, &location, &terms, id, &meta);
                }
            }
            Err(why) => list.reject(&location, pattern, RejectReason::Format(format!("bad pattern: {why}"))),
        }
    }
    Ok(list.finish())
}

fn parse_time(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// One comparison `path = value` of an observation expression.
#[derive(Debug, PartialEq, Eq)]
struct Term {
    path: String,
    value: String,
}

fn add_observation(list: &mut ListBuilder, location: &str, terms: &[Term], id: Option<&str>, meta: &Meta) {
    let port = terms.iter().find(|t| t.path == "network-traffic:dst_port").map(|t| t.value.as_str());
    for term in terms {
        match term.path.as_str() {
            "ipv4-addr:value"
            | "ipv6-addr:value"
            | "domain-name:value"
            | "url:value"
            | "domain-name:resolves_to_refs[*].value" => list.add(location, &term.value, id, meta),
            "network-traffic:dst_ref.value" => match port {
                Some(port) if term.value.contains(':') => {
                    list.add(location, &format!("[{}]:{port}", term.value), id, meta)
                }
                Some(port) => list.add(location, &format!("{}:{port}", term.value), id, meta),
                None => list.add(location, &term.value, id, meta),
            },
            "network-traffic:dst_port" | "network-traffic:dst_ref.type" => {}
            other => list.skip(format!("unsupported path {}", other.split(':').next().unwrap_or(other))),
        }
    }
}

/// Splits a pattern into its observation expressions, each a list of `=` comparisons.
/// Qualifiers and operators between expressions (`OR`, `AND`, `WITHIN ...`) are ignored: each
/// expression is matched on its own.
fn observations(pattern: &str) -> Result<Vec<Vec<Term>>, String> {
    let mut out = Vec::new();
    let mut tokens = lex(pattern)?.into_iter();
    while let Some(token) = tokens.next() {
        if token != Token::Open {
            continue;
        }
        let mut terms = Vec::new();
        loop {
            let path = match tokens.next() {
                Some(Token::Word(w)) => w,
                Some(Token::Close) if terms.is_empty() => return Err("empty [ ]".into()),
                other => return Err(format!("expected an object path, found {other:?}")),
            };
            let (path, op) = match path.strip_suffix('=') {
                Some(p) => (p.to_owned(), "=".to_owned()),
                None => match tokens.next() {
                    Some(Token::Word(op)) => (path, op),
                    other => return Err(format!("expected an operator after {path}, found {other:?}")),
                },
            };
            if op != "=" {
                return Err(format!("unsupported operator {op:?}"));
            }
            let value = match tokens.next() {
                Some(Token::Str(v)) => v,
                Some(Token::Word(n)) if n.bytes().all(|b| b.is_ascii_digit()) => n,
                other => return Err(format!("expected a value for {path}, found {other:?}")),
            };
            terms.push(Term { path, value });
            match tokens.next() {
                Some(Token::Close) => break,
                Some(Token::Word(w)) if w == "AND" || w == "OR" => {}
                other => return Err(format!("expected AND, OR or ], found {other:?}")),
            }
        }
        out.push(terms);
    }
    Ok(out)
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    Str(String),
    Word(String),
}

fn lex(pattern: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '[' => tokens.push(Token::Open),
            ']' => tokens.push(Token::Close),
            '\'' => {
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some('\\') => value.extend(chars.next()),
                        Some('\'') => break,
                        Some(c) => value.push(c),
                        None => return Err("unterminated string".into()),
                    }
                }
                tokens.push(Token::Str(value));
            }
            c if c.is_whitespace() => {}
            c => {
                let mut word = String::from(c);
                while let Some(&n) = chars.peek() {
                    // Object paths carry quoted keys (`hashes.'SHA-1'`) and list indexes
                    // (`resolves_to_refs[*]`): both belong to the word.
                    if n == '\'' && word.ends_with('.') || n == '[' {
                        let close = if n == '[' { ']' } else { '\'' };
                        word.push(n);
                        chars.next();
                        for c in chars.by_ref() {
                            word.push(c);
                            if c == close {
                                break;
                            }
                        }
                        continue;
                    }
                    if n.is_whitespace() || matches!(n, ']' | '\'') {
                        break;
                    }
                    word.push(n);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(p: &str) -> Vec<Vec<(String, String)>> {
        observations(p)
            .unwrap()
            .into_iter()
            .map(|o| o.into_iter().map(|t| (t.path, t.value)).collect())
            .collect()
    }

    #[test]
    fn reads_observations_with_or_and_and_ports() {
        assert_eq!(
            terms("[domain-name:value = 'a.example'] OR [url:value = 'http://b.example/it\\'s']"),
            [
                vec![("domain-name:value".into(), "a.example".into())],
                vec![("url:value".into(), "http://b.example/it's".into())]
            ]
        );
        assert_eq!(
            terms(
                "[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = '1.2.3.4' AND network-traffic:dst_port = 443]"
            ),
            [vec![
                ("network-traffic:dst_ref.type".into(), "ipv4-addr".into()),
                ("network-traffic:dst_ref.value".into(), "1.2.3.4".into()),
                ("network-traffic:dst_port".into(), "443".into()),
            ]]
        );
        assert!(observations("[domain-name:value = 'x'").is_err());
        assert_eq!(terms("[url:value='u'] WITHIN 60 SECONDS"), [vec![("url:value".into(), "u".into())]]);
        assert_eq!(
            terms("[file:hashes.'SHA-1' = 'ab' AND domain-name:resolves_to_refs[*].value = '1.2.3.4']"),
            [vec![
                ("file:hashes.'SHA-1'".into(), "ab".into()),
                ("domain-name:resolves_to_refs[*].value".into(), "1.2.3.4".into())
            ]]
        );
        assert!(observations("[domain-name:value LIKE 'x%']").is_err());
    }

    #[test]
    fn skips_revoked_and_expired_and_builds_ip_ports() {
        let bundle = serde_json::json!({"type": "bundle", "objects": [
            {"type": "indicator", "id": "indicator--1", "pattern": "[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = '1.2.3.4' AND network-traffic:dst_port = 8443]", "pattern_type": "stix", "labels": ["fam"]},
            {"type": "indicator", "id": "indicator--2", "pattern": "[domain-name:value = 'old.example']", "valid_until": "2020-01-01T00:00:00Z"},
            {"type": "indicator", "id": "indicator--3", "pattern": "[domain-name:value = 'gone.example']", "revoked": true},
            {"type": "indicator", "id": "indicator--4", "pattern": "[file:hashes.MD5 = 'abc']"},
        ]});
        let loaded = parse("b.json", &bundle, 1_700_000_000_000).unwrap();
        let values: Vec<&str> = loaded.indicators.iter().map(|i| i.value.as_str()).collect();
        assert_eq!(values, ["1.2.3.4:8443"]);
        assert_eq!(
            (loaded.indicators[0].id(), loaded.indicators[0].meta.event.as_str()),
            ("indicator--1", "fam")
        );
        assert_eq!(loaded.report.skipped["expired"], 1);
        assert_eq!(loaded.report.skipped["revoked"], 1);
        assert_eq!(loaded.report.skipped["unsupported path file"], 1);
    }
}
