//! Rows out: an aligned table for people, JSON (an array) and CSV for programs; and
//! [`Stream`] for rows that arrive one at a time (`zdn watch`): JSON lines, CSV and a table
//! each with one header.
//!
//! Every command turns its results into [`Row`]s (ordered JSON objects), so the three formats
//! show the same fields in the same order and no command formats by hand.

use serde_json::Value;
use std::io::Write;

pub use crate::rows::Row;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

impl Format {
    /// The name `--format` takes.
    pub fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Json => "json",
            Format::Csv => "csv",
        }
    }
}

/// `rows` in `format`, tables as wide as their values need.
pub fn write(out: &mut dyn Write, format: Format, rows: &[Row]) -> anyhow::Result<()> {
    write_fitted(out, format, rows, None)
}

/// [`write`], with tables fitted into `width` columns (a terminal's; `None`: no limit).
pub fn write_fitted(
    out: &mut dyn Write,
    format: Format,
    rows: &[Row],
    width: Option<u16>,
) -> anyhow::Result<()> {
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, rows)?;
            writeln!(out)?;
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            if let Some(first) = rows.first() {
                w.write_record(first.keys())?;
            }
            for row in rows {
                w.write_record(row.values().map(|v| spreadsheet_safe(cell(v))))?;
            }
            w.flush()?;
        }
        Format::Table => table(out, rows, width)?,
    }
    Ok(())
}

/// Rows written as they come, for a stream that never ends: JSON lines (one compact object per
/// row, what `jq` and log shippers read), CSV with one header, or a table whose header and
/// column widths come from the first row (a later, longer value widens only its own line).
pub struct Stream {
    format: Format,
    widths: Option<Vec<usize>>,
    csv_header: bool,
}

impl Stream {
    pub fn new(format: Format) -> Stream {
        Stream { format, widths: None, csv_header: false }
    }

    /// Writes `row` (and, before the first, the header).
    pub fn write(&mut self, out: &mut dyn Write, row: &Row) -> anyhow::Result<()> {
        match self.format {
            Format::Json => {
                serde_json::to_writer(&mut *out, row)?;
                writeln!(out)?;
            }
            Format::Csv => {
                let mut w = csv::Writer::from_writer(&mut *out);
                if !std::mem::replace(&mut self.csv_header, true) {
                    w.write_record(row.keys())?;
                }
                w.write_record(row.values().map(|v| spreadsheet_safe(cell(v))))?;
                w.flush()?;
            }
            Format::Table => {
                let cells: Vec<String> = row.values().map(cell).collect();
                let widths = self.widths.get_or_insert_with(|| {
                    let widths: Vec<usize> =
                        row.keys().zip(&cells).map(|(k, c)| k.len().max(c.chars().count())).collect();
                    let header: Vec<String> = row.keys().map(|k| k.to_uppercase()).collect();
                    let _ = writeln!(out, "{}", padded(&header, &widths));
                    widths
                });
                writeln!(out, "{}", padded(&cells, widths))?;
            }
        }
        out.flush()?;
        Ok(())
    }
}

/// `values` left-aligned in `widths`, two spaces apart, without trailing blanks.
fn padded(values: &[String], widths: &[usize]) -> String {
    let cells: Vec<String> = values
        .iter()
        .zip(widths.iter().chain(std::iter::repeat(&0)))
        .map(|(v, w)| format!("{v:<w$}"))
        .collect();
    cells.join("  ").trim_end().to_owned()
}

/// A value as one cell: strings bare, arrays comma-joined, null empty.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// A CSV cell a spreadsheet will not run: one that starts with `=`, `+`, `-`, `@`, a tab or a
/// carriage return gets a leading `'` (OWASP's rule against CSV injection). Observed values
/// come from traffic, so a DNS name like `=HYPERLINK(...)` is an attacker's cell.
fn spreadsheet_safe(cell: String) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{cell}") } else { cell }
}

/// `rows` as a table: columns as wide as their widest value, two spaces apart; with `width`,
/// no line longer than it — comfy-table narrows the widest columns first and a value cut
/// short ends in "…" (`zdn --wide` prints every value whole).
fn table(out: &mut dyn Write, rows: &[Row], width: Option<u16>) -> std::io::Result<()> {
    use comfy_table::{CellAlignment, ColumnConstraint, ContentArrangement, Table, Width, presets};
    let Some(first) = rows.first() else {
        return writeln!(out, "(none)");
    };
    let mut table = Table::new();
    table.load_style(presets::NOTHING).set_truncation_indicator("…");
    match width {
        Some(w) => table.set_content_arrangement(ContentArrangement::Dynamic).set_width(w),
        None => table.set_content_arrangement(ContentArrangement::Disabled),
    };
    table.set_header(first.keys().map(|k| k.to_uppercase()));
    for row in rows {
        let mut cells = comfy_table::Row::from(row.values().map(cell));
        cells.max_height(1);
        table.add_row(cells);
    }
    let last = first.len().saturating_sub(1);
    for ((i, column), name) in table.column_iter_mut().enumerate().zip(first.keys()) {
        let gap = if i == last { 0 } else { 2 };
        column.set_padding((0, gap)).set_cell_alignment(CellAlignment::Left);
        // Headers are not cut (the boundary counts the padding): values are, and `--wide`
        // shows them whole.
        let header = u16::try_from(name.chars().count()).unwrap_or(u16::MAX).saturating_add(gap);
        column.set_constraint(ColumnConstraint::LowerBoundary(Width::Fixed(header)));
    }
    for line in table.lines() {
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows() -> Vec<Row> {
        let v = json!([{"indicator": "evil.example", "participants": ["a", "b"], "n": 2},
                       {"indicator": "x,\"y\"", "participants": 3, "n": null}]);
        v.as_array().unwrap().iter().map(|r| r.as_object().unwrap().clone()).collect()
    }

    fn render(format: Format) -> String {
        let mut out = Vec::new();
        write(&mut out, format, &rows()).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn three_formats_same_fields() {
        assert_eq!(
            render(Format::Table),
            "INDICATOR     PARTICIPANTS  N\nevil.example  a,b           2\nx,\"y\"         3\n"
        );
        assert_eq!(
            render(Format::Csv),
            "indicator,participants,n\nevil.example,\"a,b\",2\n\"x,\"\"y\"\"\",3,\n"
        );
        let parsed: Value = serde_json::from_str(&render(Format::Json)).unwrap();
        assert_eq!(parsed[0]["participants"], json!(["a", "b"]));
        let mut empty = Vec::new();
        write(&mut empty, Format::Table, &[]).unwrap();
        assert_eq!(empty, b"(none)\n");
    }

    #[test]
    fn tables_fit_a_width_by_cutting_the_widest_values() {
        let long = "h-55da4db8f828d2d3a91c0e7b6f4c2a19e8d7b6a5";
        let rows: Vec<Row> = (0..5)
            .map(|i| {
                let observed = format!("{i}.a-very-long-subdomain-name.of.updates.evil-cdn.example");
                json!({"participant": "umc-noord", "host": long, "observed": observed, "n": i})
                    .as_object()
                    .unwrap()
                    .clone()
            })
            .collect();
        let mut wide = Vec::new();
        write(&mut wide, Format::Table, &rows).unwrap();
        let wide = String::from_utf8(wide).unwrap();
        assert!(wide.contains(long) && wide.lines().any(|l| l.chars().count() > 100), "{wide}");
        let mut fitted = Vec::new();
        write_fitted(&mut fitted, Format::Table, &rows, Some(80)).unwrap();
        let fitted = String::from_utf8(fitted).unwrap();
        assert_eq!(fitted.lines().count(), 6, "one line per row, none wrapped: {fitted}");
        assert!(fitted.lines().all(|l| l.chars().count() <= 80), "{fitted}");
        assert!(fitted.contains('…') && fitted.contains("umc-noord"), "{fitted}");
        assert!(fitted.starts_with("PARTICIPANT  HOST"), "{fitted}");
    }

    #[test]
    fn a_stream_has_one_header_and_json_lines() {
        let stream = |format| {
            let mut out = Vec::new();
            let mut stream = Stream::new(format);
            for row in rows() {
                stream.write(&mut out, &row).unwrap();
            }
            String::from_utf8(out).unwrap()
        };
        let lines = stream(Format::Json);
        let parsed: Vec<Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(parsed.len(), 2, "one JSON object per line: {lines}");
        assert_eq!(parsed[1]["indicator"], "x,\"y\"");
        assert_eq!(stream(Format::Csv), render(Format::Csv), "the same CSV as a whole answer: one header");
        let table = stream(Format::Table);
        assert_eq!(table.matches("INDICATOR").count(), 1, "{table}");
        assert_eq!(
            table,
            "INDICATOR     PARTICIPANTS  N\nevil.example  a,b           2\nx,\"y\"         3\n"
        );
    }

    #[test]
    fn csv_cells_that_a_spreadsheet_would_run_are_neutralised() {
        let hostile = ["=HYPERLINK(\"http://x\"),1.evil.example", "+1", "-2", "@SUM(A1)", "\tx", "\rx"];
        let mut rows: Vec<Row> =
            hostile.iter().map(|v| json!({ "observed": v }).as_object().unwrap().clone()).collect();
        rows.push(json!({ "observed": "plain.example" }).as_object().unwrap().clone());
        let mut out = Vec::new();
        write(&mut out, Format::Csv, &rows).unwrap();
        let mut read = csv::Reader::from_reader(out.as_slice());
        let cells: Vec<String> = read.records().map(|r| r.unwrap()[0].to_owned()).collect();
        let expected: Vec<String> =
            hostile.iter().map(|v| format!("'{v}")).chain(["plain.example".into()]).collect();
        assert_eq!(cells, expected);
    }
}
