//! The agent's running counters: written by the capture workers and the uplink, read by the
//! heartbeat, the final log line and the Prometheus endpoint ([`crate::metrics`]).
//!
//! Each is a `prometheus-client` counter — an atomic that never goes down — so the hot path
//! pays one relaxed atomic add and the exposition format is the library's, not ours.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use zdn_proto::v1;

#[derive(Debug, Default)]
pub struct Counters {
    pub packets: Counter,
    pub undecodable: Counter,
    /// Packets the kernel dropped before capture (not readable through pnet yet: stays 0).
    pub kernel_drops: Counter,
    pub dns_queries: Counter,
    pub dns_malformed: Counter,
    pub hits: Counter,
    /// Sightings written to the spool.
    pub spooled: Counter,
    /// Sightings the collector acknowledged.
    pub sent: Counter,
    /// Sightings the rate limits held back (in the local alert log, not sent).
    pub held_back: Counter,
    /// Sightings refused because the spool was at its byte bound.
    pub spool_full: Counter,
    /// Sightings lost to a failed spool write (disk full, I/O error).
    pub spool_failed: Counter,
    /// Aggregates closed before their window ended because the table was full.
    pub evicted_early: Counter,
    /// Indicator updates refused (bad signature, older, implausible).
    pub updates_refused: Counter,
}

impl Counters {
    /// Registers every counter (shared, not copied) under `zdn_agent_<name>_total`.
    pub fn register(&self, registry: &mut Registry) {
        let all: [(&str, &str, &Counter); 13] = [
            ("packets", "Packets seen", &self.packets),
            ("packets_undecodable", "Packets that could not be decoded", &self.undecodable),
            ("packets_dropped_kernel", "Packets the kernel dropped before capture", &self.kernel_drops),
            ("dns_queries", "DNS query names inspected", &self.dns_queries),
            ("dns_malformed", "Malformed DNS messages", &self.dns_malformed),
            ("hits", "Indicator hits", &self.hits),
            ("sightings_spooled", "Sightings written to the spool", &self.spooled),
            ("sightings_sent", "Sightings acknowledged by the collector", &self.sent),
            ("sightings_held_back", "Sightings held back by rate limits", &self.held_back),
            ("sightings_refused_spool_full", "Sightings refused by a full spool", &self.spool_full),
            ("sightings_spool_failed", "Sightings lost to spool write errors", &self.spool_failed),
            ("aggregates_evicted_early", "Aggregates closed early (table full)", &self.evicted_early),
            ("indicator_updates_refused", "Indicator updates refused", &self.updates_refused),
        ];
        for (name, help, counter) in all {
            registry.register(format!("zdn_agent_{name}"), help, counter.clone());
        }
    }

    /// What the heartbeat carries of these counters. The spool's refusals travel as blind
    /// spots: sightings the collector will never hear of.
    pub fn heartbeat(&self) -> v1::HeartbeatRequest {
        let blind_spots = HashMap::from([
            ("spool_full".to_owned(), self.spool_full.get()),
            ("spool_failed".to_owned(), self.spool_failed.get()),
        ]);
        v1::HeartbeatRequest {
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            packets_seen: self.packets.get(),
            packets_dropped_kernel: self.kernel_drops.get(),
            packets_undecodable: self.undecodable.get(),
            sightings_sent: self.sent.get(),
            sightings_held_back: self.held_back.get(),
            blind_spots,
            ..Default::default()
        }
    }
}
