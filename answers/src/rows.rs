//! Each analyst answer as JSON rows: one shape shared by `zdn` (table, JSON, CSV) and the
//! HTTP API, so both show the same fields under the same names.
//!
//! Times are RFC 3339 in UTC; where the caller may not see other institutions' names, a
//! correlation's `participants` is their number instead of a list, and a timeline entry of
//! another institution reads `(another institution)`.

use serde_json::{Map, Value, json};
use zdn_indicators::Kind;
use zdn_proto::v1;
use zdn_proto::{kind_from_wire, via_from_wire};
use zdn_timestamps::format_unix_ms;

/// One ordered JSON object.
pub type Row = Map<String, Value>;

/// The name of a correlation event's change: `opened`, `escalated`, `closed`,
/// `closed_false_positive`, `reduced`.
pub fn change_name(change: i32) -> &'static str {
    use v1::correlation_event::Change;
    match Change::try_from(change) {
        Ok(Change::Opened) => "opened",
        Ok(Change::Escalated) => "escalated",
        Ok(Change::Closed) => "closed",
        Ok(Change::ClosedFalsePositive) => "closed_false_positive",
        Ok(Change::Reduced) => "reduced",
        _ => "unknown",
    }
}

/// A time, or `null` for 0 (not yet, or withheld from this caller).
fn time(unix_ms: i64) -> Value {
    if unix_ms == 0 { Value::Null } else { json!(format_unix_ms(unix_ms)) }
}

fn kind_name(kind: i32) -> &'static str {
    kind_from_wire(kind).map_or("unknown", Kind::as_str)
}

/// The columns a table shows of each answer unless `zdn --wide` asks for all of them (JSON
/// and CSV always carry all): what an analyst scans first, few enough to fit a terminal.
pub mod brief {
    pub const CORRELATION: &[&str] =
        &["indicator", "kind", "wave", "status", "participant_count", "last_seen", "sightings", "campaign"];
    pub const SIGHTING: &[&str] =
        &["participant", "indicator", "via", "observed", "last_seen", "count", "src"];
    pub const AGENT: &[&str] = &[
        "participant",
        "agent",
        "status",
        "last_heartbeat",
        "indicator_version",
        "kernel_drops",
        "sent",
        "queued",
    ];
    pub const AUDIT: &[&str] = &["at", "participant", "name", "action", "detail"];
}

/// `rows` with only the `columns` they have, in the rows' own order.
pub fn only(rows: Vec<Row>, columns: &[&str]) -> Vec<Row> {
    rows.into_iter()
        .map(|row| row.into_iter().filter(|(k, _)| columns.contains(&k.as_str())).collect())
        .collect()
}

pub fn to_row(value: Value) -> Row {
    match value {
        Value::Object(map) => map,
        _ => Row::new(),
    }
}

/// `participants` is the list of ids where the caller may see them, else their count. Times a
/// caller may not see (participant analysts: the packet times summed over other institutions)
/// are `null`.
pub fn correlation_row(c: &v1::Correlation) -> Row {
    let participants =
        if c.participants.is_empty() { json!(c.participant_count) } else { json!(c.participants) };
    to_row(json!({
        "indicator": c.indicator,
        "kind": kind_name(c.kind),
        "wave": c.wave,
        "status": c.status,
        "participants": participants,
        "participant_count": c.participant_count,
        "first_seen": time(c.first_seen_unix_ms),
        "last_seen": time(c.last_seen_unix_ms),
        "sightings": c.sightings,
        "opened": time(c.opened_unix_ms),
        "updated": time(c.updated_unix_ms),
        "closed": time(c.closed_unix_ms),
        "close_reason": c.close_reason,
        "scope": c.scope,
        "campaign": c.campaign,
    }))
}

/// An event: its change, who joined (names, or their number), and the incident's row.
pub fn event_row(e: &v1::CorrelationEvent) -> Row {
    let mut row = Row::new();
    row.insert("change".into(), json!(change_name(e.change)));
    let joined = if e.joined.is_empty() { json!(e.joined_count) } else { json!(e.joined) };
    row.insert("joined".into(), joined);
    row.extend(e.correlation.as_ref().map(correlation_row).unwrap_or_default());
    row
}

/// The members of an incident in join order (the spread).
pub fn member_rows(c: &v1::Correlation) -> Vec<Row> {
    c.members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            to_row(json!({
                "order": i + 1,
                "participant": m.participant,
                "joined": time(m.joined_unix_ms),
                "first_seen": time(m.first_seen_unix_ms),
                "last_seen": time(m.last_seen_unix_ms),
                "sightings": m.sightings,
            }))
        })
        .collect()
}

pub fn sighting_row(s: &v1::StoredSighting) -> Row {
    let w = s.sighting.clone().unwrap_or_default();
    to_row(json!({
        "participant": s.participant,
        "agent": s.agent,
        "indicator": w.indicator,
        "kind": kind_name(w.kind),
        "via": via_from_wire(w.via).map_or("unknown", |v| v.as_str()),
        "observed": w.observed,
        "resolved_name": w.resolved_name,
        "first_seen": format_unix_ms(w.first_seen_unix_ms),
        "last_seen": format_unix_ms(w.last_seen_unix_ms),
        "count": w.count,
        "src": w.src,
        "dst_ip": w.dst_ip,
        "dst_port": w.dst_port,
        "proto": w.proto,
        "retro": w.retro,
        "id": w.id,
    }))
}

/// One agent's answer to a retro-hunt.
pub fn hunt_answer_row(a: &v1::HuntAgentAnswer) -> Row {
    to_row(json!({
        "participant": a.participant,
        "agent": a.agent,
        "sightings": a.sightings,
        "hours_searched": a.hours_searched,
        "not_searched": a.not_searched,
        "answered": format_unix_ms(a.answered_unix_ms),
    }))
}

pub fn indicator_rows(d: &v1::IndicatorDetail) -> Vec<Row> {
    d.participants
        .iter()
        .map(|p| {
            let vias: Vec<&str> =
                p.vias.iter().filter_map(|v| via_from_wire(*v).ok()).map(|v| v.as_str()).collect();
            let participant = if p.participant.is_empty() { "(another institution)" } else { &p.participant };
            to_row(json!({
                "indicator": d.indicator,
                "participant": participant,
                "first_seen": format_unix_ms(p.first_seen_unix_ms),
                "last_seen": format_unix_ms(p.last_seen_unix_ms),
                "sightings": p.sightings,
                "vias": vias,
            }))
        })
        .collect()
}

pub fn agent_row(a: &v1::AgentStatus) -> Row {
    to_row(json!({
        "participant": a.participant,
        "agent": a.agent,
        "status": if a.stale { "STALE" } else { "ok" },
        "last_heartbeat": format_unix_ms(a.last_heartbeat_unix_ms),
        "version": a.agent_version,
        "indicator_version": a.indicator_version,
        "indicators": a.indicator_count,
        "packets": a.packets_seen,
        "kernel_drops": a.packets_dropped_kernel,
        "ring_full": a.capture_workers.iter().map(|w| w.queue_freezes).sum::<u64>(),
        "capture": capture_summary(&a.capture_workers),
        "sent": a.sightings_sent,
        "queued": a.sightings_queued,
        "held_back": a.sightings_held_back,
        "blind_spots": a.blind_spots.values().sum::<u64>(),
        "rss_mb": a.rss_bytes / (1024 * 1024),
    }))
}

/// Each capture worker in a word: `eth0/0 ring 1234567 read, 12 dropped`.
fn capture_summary(workers: &[v1::CaptureWorker]) -> String {
    let each = workers.iter().map(|w| {
        let drops = if w.kernel_drops > 0 { format!(", {} dropped", w.kernel_drops) } else { String::new() };
        format!("{}/{} {} {} read{drops}", w.interface, w.worker, w.method, w.packets)
    });
    each.collect::<Vec<_>>().join("; ")
}

pub fn top_row(t: &v1::TopIndicator) -> Row {
    to_row(json!({
        "indicator": t.indicator,
        "kind": kind_name(t.kind),
        "participants": t.participant_count,
        "sightings": t.sightings,
        "last_seen": time(t.last_seen_unix_ms),
        "campaign": t.campaign,
    }))
}

pub fn host_row(h: &v1::SuspectHost) -> Row {
    to_row(json!({
        "participant": h.participant,
        "host": h.host,
        "campaign": h.campaign,
        "indicators": h.indicators,
        "first_seen": format_unix_ms(h.first_seen_unix_ms),
        "last_seen": format_unix_ms(h.last_seen_unix_ms),
    }))
}

pub fn audit_row(e: &v1::AuditEntry) -> Row {
    to_row(json!({
        "at": format_unix_ms(e.at_unix_ms),
        "participant": e.participant,
        "name": e.name,
        "role": e.role,
        "action": e.action,
        "detail": e.detail,
    }))
}
