//! CSV with a header row. The value column is the first of `value`, `indicator`, `ioc`,
//! `observable`; optional columns by name: `type`/`kind` (checked against the detected kind),
//! `id`/`uuid`, `event`/`campaign`/`family`, `tlp`, `confidence`, `tags` (`;`-separated).

use crate::model::Kind;
use crate::model::Meta;
use crate::report::{ListBuilder, LoadError, Loaded};

pub fn parse(source: &str, text: &str) -> Result<Loaded, LoadError> {
    let malformed = |what: String| LoadError::Malformed { path: source.to_owned(), format: "CSV", what };
    let mut reader =
        csv::ReaderBuilder::new().flexible(true).comment(Some(b'#')).from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| malformed(e.to_string()))?
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let col = |names: &[&str]| names.iter().find_map(|n| headers.iter().position(|h| h == n));
    let value_col = col(&["value", "indicator", "ioc", "observable"]).ok_or_else(|| {
        malformed(format!("no value column (value, indicator, ioc, observable) in header {headers:?}"))
    })?;
    let (kind_col, id_col, event_col) =
        (col(&["type", "kind"]), col(&["id", "uuid"]), col(&["event", "campaign", "family"]));
    let (tlp_col, conf_col, tags_col) = (col(&["tlp"]), col(&["confidence"]), col(&["tags"]));
    let mut list = ListBuilder::new(source, "csv");
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                list.reject(line, "", crate::RejectReason::Format(e.to_string()));
                continue;
            }
        };
        let get = |c: Option<usize>| c.and_then(|c| record.get(c)).map(str::trim).unwrap_or("");
        let id = Some(get(id_col)).filter(|s| !s.is_empty());
        let meta = Meta {
            event: get(event_col).to_owned(),
            tlp: get(tlp_col).to_ascii_lowercase().trim_start_matches("tlp:").to_owned(),
            confidence: get(conf_col).parse::<u8>().unwrap_or(0).min(100),
            tags: get(tags_col)
                .split(';')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect(),
            ..Meta::default()
        };
        match Kind::parse(&get(kind_col).to_ascii_lowercase()) {
            Some(kind) if kind_col.is_some() => list.add_as(line, get(Some(value_col)), &[kind], id, &meta),
            _ => list.add(line, get(Some(value_col)), id, &meta),
        }
    }
    Ok(list.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_columns_by_name() {
        let text = "Indicator,Type,Campaign,TLP,Confidence,Tags\nevil.example,domain,fam,TLP:AMBER,80,a;b\n\"1.2.3.4\",ipv4,,,,\nbad value,domain,,,,\n";
        let loaded = parse("c.csv", text).unwrap();
        assert_eq!(loaded.indicators.len(), 2);
        let first = &loaded.indicators[0];
        assert_eq!(
            (first.meta.event.as_str(), first.meta.tlp.as_str(), first.meta.confidence),
            ("fam", "amber", 80)
        );
        assert_eq!(first.meta.tags, ["a", "b"]);
        assert_eq!(loaded.report.rejected[0].location, "c.csv:4");
        assert!(parse("c.csv", "a,b\n1,2\n").is_err());
    }
}
