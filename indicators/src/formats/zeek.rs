//! Zeek Intel framework files: a `#fields` header naming tab-separated columns, of which
//! `indicator` and `indicator_type` (`Intel::ADDR`, `Intel::SUBNET`, `Intel::DOMAIN`,
//! `Intel::URL`, ...) matter; `meta.source` and `meta.desc` become source tag and event.

use crate::model::{Kind, Meta};
use crate::report::{ListBuilder, LoadError, Loaded};

pub fn parse(source: &str, text: &str) -> Result<Loaded, LoadError> {
    let malformed =
        |what: String| LoadError::Malformed { path: source.to_owned(), format: "Zeek Intel", what };
    let mut list = ListBuilder::new(source, "zeek-intel");
    let mut columns: Option<Vec<&str>> = None;
    for (i, line) in text.lines().enumerate() {
        if let Some(fields) = line.strip_prefix("#fields") {
            columns = Some(fields.trim_start_matches(['\t', ' ']).split('\t').collect());
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let cols = columns
            .as_ref()
            .ok_or_else(|| malformed(format!("line {}: data before the #fields header", i + 1)))?;
        let col = |name: &str| cols.iter().position(|c| *c == name);
        let (Some(ind), Some(typ)) = (col("indicator"), col("indicator_type")) else {
            return Err(malformed("#fields lacks indicator or indicator_type".into()));
        };
        let values: Vec<&str> = line.split('\t').collect();
        let get =
            |i: Option<usize>| i.and_then(|i| values.get(i)).copied().filter(|v| *v != "-").unwrap_or("");
        let meta = Meta {
            event: get(col("meta.desc")).to_owned(),
            tags: Some(get(col("meta.source")))
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .into_iter()
                .collect(),
            ..Meta::default()
        };
        let (value, kind) = (get(Some(ind)), get(Some(typ)));
        let expected: &[Kind] = match kind {
            "Intel::ADDR" => &[Kind::Ipv4, Kind::Ipv6],
            "Intel::SUBNET" => &[Kind::Cidr, Kind::Ipv4, Kind::Ipv6],
            "Intel::DOMAIN" => &[Kind::Domain],
            "Intel::URL" => &[Kind::Url, Kind::Domain],
            "Intel::JA3" => &[Kind::Ja3],
            other => {
                list.skip(format!("unsupported type {other}"));
                continue;
            }
        };
        // Zeek writes URLs without their scheme; put one back so a bare host stays a URL.
        let value = if kind == "Intel::URL" && !value.contains("://") && !value.starts_with('/') {
            format!("http://{value}")
        } else {
            value.to_owned()
        };
        list.add_as(i + 1, &value, expected, None, &meta);
    }
    if columns.is_none() {
        return Err(malformed("no #fields header".into()));
    }
    Ok(list.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_typed_columns_and_refuses_headerless_files() {
        let text = "#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\n\
                    evil.example\tIntel::DOMAIN\tcert\tfam\n10.0.0.1\tIntel::ADDR\tcert\t-\n\
                    f00\tIntel::FILE_HASH\tcert\tx\nevil.example\tIntel::ADDR\tcert\tx\n";
        let loaded = parse("z", text).unwrap();
        assert_eq!(loaded.indicators.len(), 2);
        assert_eq!(loaded.indicators[0].meta.event, "fam");
        assert_eq!(loaded.report.skipped["unsupported type Intel::FILE_HASH"], 1);
        assert_eq!(loaded.report.rejected.len(), 1, "a domain declared as ADDR");
        assert!(parse("z", "evil.example\tIntel::DOMAIN\n").is_err());
    }
}
