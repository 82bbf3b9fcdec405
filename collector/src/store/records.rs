//! Stored records: the engine-neutral shape of stored rows: the column lists both engines select, and the
//! conversion of each row to its wire type, so each engine only reads columns.

use zdn_indicators::{Kind, Via};
use zdn_proto::v1;

/// A stored sighting as both engines read it.
pub(crate) struct SightingRow {
    pub row: i64,
    pub id: String,
    pub participant: String,
    pub agent: String,
    pub indicator: String,
    pub kind: String,
    pub via: String,
    pub observed: String,
    pub indicator_id: String,
    pub first_seen: i64,
    pub last_seen: i64,
    pub count: i64,
    pub src: String,
    pub dst_ip: String,
    pub dst_port: u32,
    pub proto: String,
    pub received: i64,
    pub resolved_name: String,
    pub retro: bool,
}

/// Columns of [`SightingRow`], in its order, for both engines' queries.
pub(crate) const SIGHTING_COLUMNS: &str =
    "id, participant, agent, indicator, kind, via, observed, indicator_id,
    first_seen, last_seen, count, src, dst_ip, dst_port, proto, received, resolved_name, retro";

impl SightingRow {
    pub fn into_wire(self) -> (i64, v1::StoredSighting) {
        let sighting = v1::Sighting {
            id: self.id,
            indicator: self.indicator,
            kind: kind_wire(&self.kind),
            via: Via::parse(&self.via).map_or(0, |v| v1::Via::from(v) as i32),
            observed: self.observed,
            indicator_id: self.indicator_id,
            first_seen_unix_ms: self.first_seen,
            last_seen_unix_ms: self.last_seen,
            count: self.count.max(0) as u64,
            src: self.src,
            dst_ip: self.dst_ip,
            dst_port: self.dst_port,
            proto: self.proto,
            resolved_name: self.resolved_name,
            retro: self.retro,
        };
        let stored = v1::StoredSighting {
            sighting: Some(sighting),
            participant: self.participant,
            agent: self.agent,
            received_unix_ms: self.received,
        };
        (self.row, stored)
    }
}

/// The ranking of `Store::top_indicators`; the engines differ only in placeholders. The
/// campaign comes from the indicator's incidents, if it had any.
pub(crate) fn top_indicators_sql(since: &str, limit: &str) -> String {
    format!(
        "SELECT a.indicator, a.kind, count(*) AS participants, CAST(sum(a.sightings) AS BIGINT) AS total, max(a.last_seen),
                coalesce((SELECT max(c.campaign) FROM incidents c
                          WHERE c.scope = 'indicator' AND c.subject = a.indicator), '')
         FROM indicator_participants a
         WHERE a.last_seen >= {since}
         GROUP BY a.indicator, a.kind
         ORDER BY participants DESC, total DESC, a.indicator
         LIMIT {limit}"
    )
}

/// Columns of the agents table, in the order [`AgentRow`] holds them.
pub(crate) const AGENT_COLUMNS: &str = "participant, agent, last_heartbeat, agent_version, indicator_version,
    indicator_count, packets_seen, packets_dropped_kernel, sightings_sent, blind_spots, cpu_percent, rss_bytes,
    sightings_queued, sightings_held_back, spool_bytes, uptime_seconds, capture_workers";

/// A heartbeat as stored: counters clamped to the engines' signed 64-bit integers.
pub(crate) struct AgentRow {
    pub participant: String,
    pub agent: String,
    pub last_heartbeat: i64,
    pub agent_version: String,
    /// indicator_version, indicator_count, packets_seen, packets_dropped_kernel, sightings_sent
    pub counters: [i64; 5],
    pub blind_spots: String,
    pub cpu_percent: f64,
    /// rss_bytes, sightings_queued, sightings_held_back, spool_bytes, uptime_seconds
    pub host: [i64; 5],
    /// The live-capture workers, as JSON ([`capture_workers_json`]).
    pub capture_workers: String,
}

impl AgentRow {
    pub fn from_heartbeat(participant: &str, agent: &str, beat: &v1::HeartbeatRequest, now_ms: i64) -> Self {
        AgentRow {
            participant: participant.to_owned(),
            agent: agent.to_owned(),
            last_heartbeat: now_ms,
            agent_version: beat.agent_version.clone(),
            counters: [
                beat.indicator_version,
                beat.indicator_count,
                beat.packets_seen,
                beat.packets_dropped_kernel,
                beat.sightings_sent,
            ]
            .map(clamp),
            blind_spots: serde_json::to_string(&beat.blind_spots).unwrap_or_else(|_| "{}".into()),
            cpu_percent: f64::from(beat.cpu_percent),
            host: [
                beat.rss_bytes,
                beat.sightings_queued,
                beat.sightings_held_back,
                beat.spool_bytes,
                beat.uptime_seconds,
            ]
            .map(clamp),
            capture_workers: capture_workers_json(&beat.capture_workers),
        }
    }

    pub fn into_wire(self, now_ms: i64, stale_ms: i64) -> v1::AgentStatus {
        let [indicator_version, indicator_count, packets_seen, packets_dropped_kernel, sightings_sent] =
            self.counters.map(|v| v.max(0) as u64);
        let [rss_bytes, sightings_queued, sightings_held_back, spool_bytes, uptime_seconds] =
            self.host.map(|v| v.max(0) as u64);
        v1::AgentStatus {
            participant: self.participant,
            agent: self.agent,
            last_heartbeat_unix_ms: self.last_heartbeat,
            stale: now_ms.saturating_sub(self.last_heartbeat) > stale_ms,
            agent_version: self.agent_version,
            indicator_version,
            indicator_count,
            packets_seen,
            packets_dropped_kernel,
            sightings_sent,
            blind_spots: serde_json::from_str(&self.blind_spots).unwrap_or_default(),
            cpu_percent: self.cpu_percent as f32,
            rss_bytes,
            sightings_queued,
            sightings_held_back,
            spool_bytes,
            uptime_seconds,
            capture_workers: capture_workers_from_json(&self.capture_workers),
        }
    }
}

/// A heartbeat's capture workers as stored: a JSON array of objects named as the message's
/// fields (the column is read by people too, in `sqlite3` or `psql`).
fn capture_workers_json(workers: &[v1::CaptureWorker]) -> String {
    let all: Vec<serde_json::Value> = workers
        .iter()
        .map(|w| {
            serde_json::json!({
                "interface": w.interface, "worker": w.worker, "method": w.method,
                "packets": w.packets, "kernel_drops": w.kernel_drops, "queue_freezes": w.queue_freezes,
            })
        })
        .collect();
    serde_json::Value::Array(all).to_string()
}

/// The workers back from [`capture_workers_json`]; what cannot be read is left out.
fn capture_workers_from_json(text: &str) -> Vec<v1::CaptureWorker> {
    let all: Vec<serde_json::Value> = serde_json::from_str(text).unwrap_or_default();
    let number = |w: &serde_json::Value, key: &str| w[key].as_u64().unwrap_or(0);
    let text = |w: &serde_json::Value, key: &str| w[key].as_str().unwrap_or_default().to_owned();
    all.iter()
        .map(|w| v1::CaptureWorker {
            interface: text(w, "interface"),
            worker: number(w, "worker") as u32,
            method: text(w, "method"),
            packets: number(w, "packets"),
            kernel_drops: number(w, "kernel_drops"),
            queue_freezes: number(w, "queue_freezes"),
        })
        .collect()
}

pub(crate) fn kind_wire(kind: &str) -> i32 {
    Kind::parse(kind).map_or(0, |k| v1::IndicatorKind::from(k) as i32)
}

pub(crate) fn vias_wire(vias: &str) -> Vec<i32> {
    vias.split(',').filter_map(Via::parse).map(|v| v1::Via::from(v) as i32).collect()
}

/// The engines' integers are signed; counters beyond i64::MAX are clamped, not wrapped.
pub(crate) fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The next-page token of a page of `limit` rows: the last row's token when the page is full.
pub(crate) fn next_token(rows: &[(i64, v1::StoredSighting)], limit: u32) -> Option<i64> {
    (rows.len() == limit as usize).then(|| rows.last().map(|r| r.0)).flatten()
}
