//! The agent's running counters: written by the capture workers and the uplink, read by the
//! heartbeat and the metrics endpoint. Plain relaxed atomics — each is a tally, no counter
//! is used to order memory, and a reader that is a packet behind is fine.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use zdn_proto::v1;

#[derive(Debug, Default)]
pub struct Counters {
    pub packets: AtomicU64,
    pub undecodable: AtomicU64,
    pub kernel_drops: AtomicU64,
    pub dns_queries: AtomicU64,
    pub dns_malformed: AtomicU64,
    pub hits: AtomicU64,
    /// Sightings written to the spool.
    pub spooled: AtomicU64,
    /// Sightings the collector acknowledged.
    pub sent: AtomicU64,
    /// Sightings the rate limits held back (in the local alert log, not sent).
    pub held_back: AtomicU64,
    /// Sightings refused because the spool was at its byte bound.
    pub spool_full: AtomicU64,
    /// Sightings lost to a failed spool write (disk full, I/O error).
    pub spool_failed: AtomicU64,
    /// Aggregates closed before their window ended because the table was full.
    pub evicted_early: AtomicU64,
    /// Indicator updates refused (bad signature, older, implausible).
    pub updates_refused: AtomicU64,
}

/// One counter's name and help text for the metrics endpoint, with its value.
pub struct Reading {
    pub name: &'static str,
    pub help: &'static str,
    pub value: u64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// Every counter, named for Prometheus (`zdn_agent_<name>_total`).
    pub fn readings(&self) -> Vec<Reading> {
        let r = |name, help, c: &AtomicU64| Reading { name, help, value: c.load(Relaxed) };
        vec![
            r("packets", "Packets seen", &self.packets),
            r("packets_undecodable", "Packets that could not be decoded", &self.undecodable),
            r("packets_dropped_kernel", "Packets the kernel dropped before capture", &self.kernel_drops),
            r("dns_queries", "DNS query names inspected", &self.dns_queries),
            r("dns_malformed", "Malformed DNS messages", &self.dns_malformed),
            r("hits", "Indicator hits", &self.hits),
            r("sightings_spooled", "Sightings written to the spool", &self.spooled),
            r("sightings_sent", "Sightings acknowledged by the collector", &self.sent),
            r("sightings_held_back", "Sightings held back by rate limits", &self.held_back),
            r("sightings_refused_spool_full", "Sightings refused by a full spool", &self.spool_full),
            r("sightings_spool_failed", "Sightings lost to spool write errors", &self.spool_failed),
            r("aggregates_evicted_early", "Aggregates closed early (table full)", &self.evicted_early),
            r("indicator_updates_refused", "Indicator updates refused", &self.updates_refused),
        ]
    }

    /// What the heartbeat carries of these counters.
    pub fn heartbeat(&self) -> v1::HeartbeatRequest {
        let get = |c: &AtomicU64| c.load(Relaxed);
        let mut blind_spots = BTreeMap::new();
        blind_spots.insert("spool_full".to_owned(), get(&self.spool_full));
        blind_spots.insert("spool_failed".to_owned(), get(&self.spool_failed));
        v1::HeartbeatRequest {
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            packets_seen: get(&self.packets),
            packets_dropped_kernel: get(&self.kernel_drops),
            packets_undecodable: get(&self.undecodable),
            sightings_sent: get(&self.sent),
            sightings_held_back: get(&self.held_back),
            blind_spots: blind_spots.into_iter().collect(),
            ..Default::default()
        }
    }
}
