//! The agent's running counters: written by the capture workers and the uplink, read by the
//! heartbeat, the final log line and the Prometheus endpoint ([`crate::metrics`]).
//!
//! Each is a `prometheus-client` counter — an atomic that never goes down — so the hot path
//! pays one relaxed atomic add and the exposition format is the library's, not ours.

use crate::packet_path::PathStats;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use zdn_proto::v1;

#[derive(Debug, Default)]
pub struct Counters {
    pub packets: Counter,
    pub undecodable: Counter,
    /// Packets that made the packet path panic: skipped, the path's state reset.
    pub packet_panics: Counter,
    /// Packets the kernel dropped before capture (`PACKET_STATISTICS` of the socket).
    pub kernel_drops: Counter,
    /// Times a capture ring was full, so that the kernel froze its queue (ring capture only).
    pub queue_freezes: Counter,
    /// The same per live-capture worker, labelled by interface, worker and method.
    workers: WorkerFamilies,
    pub dns_queries: Counter,
    pub dns_malformed: Counter,
    pub tls_hellos: Counter,
    pub tls_malformed: Counter,
    pub http_requests: Counter,
    pub http_malformed: Counter,
    /// Blind spots: ClientHellos with Encrypted Client Hello, DNS over TLS connections, TLS
    /// to public DNS-over-HTTPS resolvers.
    pub blind_ech: Counter,
    pub blind_dot: Counter,
    pub blind_doh: Counter,
    /// Bounded state dropped: client streams, fragmented datagrams; QUIC Initials that did
    /// not decrypt.
    pub streams_dropped: Counter,
    pub datagrams_dropped: Counter,
    pub quic_undecryptable: Counter,
    pub hits: Counter,
    /// Sightings written to the spool.
    pub spooled: Counter,
    /// Sightings the collector acknowledged.
    pub sent: Counter,
    /// Sightings the rate limits held back (in the local alert log, not sent).
    pub held_back: Counter,
    /// Sightings whose observed value (or a short field) exceeded the contract's limit and
    /// was cut to it, marked with `…` (`zdn_proto::limits`).
    pub truncated: Counter,
    /// Sightings refused because the spool was at its byte bound.
    pub spool_full: Counter,
    /// Sightings lost to a failed spool write (disk full, I/O error).
    pub spool_failed: Counter,
    /// Aggregates closed before their window ended because the table was full.
    pub evicted_early: Counter,
    /// Indicator updates refused (bad signature, older, implausible, a delta that did not apply).
    pub updates_refused: Counter,
    /// Indicator versions installed from a delta rather than a whole set.
    pub deltas_applied: Counter,
}

impl Counters {
    /// Registers every counter (shared, not copied) under `zdn_agent_<name>_total`.
    pub fn register(&self, registry: &mut Registry) {
        let all: [(&str, &str, &Counter); 27] = [
            ("packets", "Packets seen", &self.packets),
            ("packets_undecodable", "Packets that could not be decoded", &self.undecodable),
            ("packets_panicked", "Packets that made the packet path panic (skipped)", &self.packet_panics),
            ("packets_dropped_kernel", "Packets the kernel dropped before capture", &self.kernel_drops),
            (
                "capture_queue_freezes",
                "Times a capture ring was full (the kernel froze its queue)",
                &self.queue_freezes,
            ),
            ("dns_queries", "DNS query names inspected", &self.dns_queries),
            ("dns_malformed", "Malformed DNS messages", &self.dns_malformed),
            ("tls_client_hellos", "TLS ClientHellos read", &self.tls_hellos),
            ("tls_malformed", "Malformed TLS ClientHellos", &self.tls_malformed),
            ("http_requests", "HTTP requests read", &self.http_requests),
            ("http_malformed", "Malformed HTTP requests", &self.http_malformed),
            ("blind_tls_ech", "ClientHellos with Encrypted Client Hello", &self.blind_ech),
            ("blind_dns_over_tls", "DNS over TLS connections", &self.blind_dot),
            ("blind_dns_over_https", "TLS to public DNS-over-HTTPS resolvers", &self.blind_doh),
            (
                "streams_dropped",
                "Client streams abandoned before their message was read",
                &self.streams_dropped,
            ),
            (
                "datagrams_dropped",
                "Fragmented datagrams abandoned before reassembly",
                &self.datagrams_dropped,
            ),
            ("quic_undecryptable", "QUIC Initials that did not decrypt", &self.quic_undecryptable),
            ("hits", "Indicator hits", &self.hits),
            ("sightings_spooled", "Sightings written to the spool", &self.spooled),
            ("sightings_sent", "Sightings acknowledged by the collector", &self.sent),
            ("sightings_held_back", "Sightings held back by rate limits", &self.held_back),
            ("sightings_refused_spool_full", "Sightings refused by a full spool", &self.spool_full),
            ("sightings_truncated", "Sightings with a value cut to the contract's limit", &self.truncated),
            ("sightings_spool_failed", "Sightings lost to spool write errors", &self.spool_failed),
            ("aggregates_evicted_early", "Aggregates closed early (table full)", &self.evicted_early),
            ("indicator_updates_refused", "Indicator updates refused", &self.updates_refused),
            ("indicator_deltas_applied", "Indicator versions installed from a delta", &self.deltas_applied),
        ];
        for (name, help, counter) in all {
            registry.register(format!("zdn_agent_{name}"), help, counter.clone());
        }
        let w = &self.workers;
        let families = [
            ("capture_worker_packets", "Packets a live-capture worker read", &w.packets),
            (
                "capture_worker_dropped_kernel",
                "Packets the kernel dropped before a worker read them",
                &w.drops,
            ),
            ("capture_worker_queue_freezes", "Times a worker's ring was full", &w.freezes),
        ];
        for (name, help, family) in families {
            registry.register(format!("zdn_agent_{name}"), help, family.clone());
        }
    }

    /// The counters of live-capture worker `worker` on `interface`, registered for the
    /// metrics and the heartbeat.
    pub fn capture_worker(&self, interface: &str, worker: u32, method: &'static str) -> Arc<WorkerCounters> {
        let labels = WorkerLabels { interface: interface.to_owned(), worker, method: method.to_owned() };
        let w = &self.workers;
        let counters = Arc::new(WorkerCounters {
            packets: w.packets.get_or_create(&labels).clone(),
            drops: w.drops.get_or_create(&labels).clone(),
            freezes: w.freezes.get_or_create(&labels).clone(),
            labels,
        });
        w.all.lock().unwrap_or_else(|p| p.into_inner()).push(counters.clone());
        counters
    }

    /// What a worker read since its last report and what the kernel counted for it: added to
    /// the worker's counters and the totals.
    pub fn add_capture(&self, worker: &WorkerCounters, packets: u64, drops: u64, freezes: u64) {
        worker.packets.inc_by(packets);
        worker.drops.inc_by(drops);
        worker.freezes.inc_by(freezes);
        self.kernel_drops.inc_by(drops);
        self.queue_freezes.inc_by(freezes);
    }

    /// Adds what a packet path counted between two readings of its statistics.
    pub fn add_path(&self, before: &PathStats, after: &PathStats) {
        let (b, a) = (&before.extract, &after.extract);
        let (before_undecodable, after_undecodable) = (before.undecodable_total(), after.undecodable_total());
        let pairs = [
            (&self.packets, before.packets, after.packets),
            (&self.undecodable, before_undecodable, after_undecodable),
            (&self.hits, before.hits, after.hits),
            (&self.dns_queries, b.dns_queries, a.dns_queries),
            (&self.dns_malformed, b.dns_malformed, a.dns_malformed),
            (&self.tls_hellos, b.tls_hellos, a.tls_hellos),
            (&self.tls_malformed, b.tls_malformed, a.tls_malformed),
            (&self.http_requests, b.http_requests, a.http_requests),
            (&self.http_malformed, b.http_malformed, a.http_malformed),
            (&self.blind_ech, b.blind_ech, a.blind_ech),
            (&self.blind_dot, b.blind_dot, a.blind_dot),
            (&self.blind_doh, b.blind_doh, a.blind_doh),
            (&self.streams_dropped, b.streams_dropped, a.streams_dropped),
            (&self.datagrams_dropped, b.datagrams_dropped, a.datagrams_dropped),
            (&self.quic_undecryptable, b.quic_undecryptable, a.quic_undecryptable),
        ];
        for (counter, before, after) in pairs {
            if after > before {
                counter.inc_by(after - before);
            }
        }
    }

    /// What the heartbeat carries of these counters. Blind spots: destinations hidden from
    /// the agent (ECH, DoT, DoH), and sightings the spool refused, which the collector will
    /// never hear of.
    pub fn heartbeat(&self) -> v1::HeartbeatRequest {
        let blind_spots = HashMap::from([
            ("tls_ech".to_owned(), self.blind_ech.get()),
            ("dns_over_tls".to_owned(), self.blind_dot.get()),
            ("dns_over_https".to_owned(), self.blind_doh.get()),
            ("streams_dropped".to_owned(), self.streams_dropped.get()),
            ("datagrams_dropped".to_owned(), self.datagrams_dropped.get()),
            ("quic_undecryptable".to_owned(), self.quic_undecryptable.get()),
            ("spool_full".to_owned(), self.spool_full.get()),
            ("spool_failed".to_owned(), self.spool_failed.get()),
            ("packet_panics".to_owned(), self.packet_panics.get()),
        ]);
        v1::HeartbeatRequest {
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            packets_seen: self.packets.get(),
            packets_dropped_kernel: self.kernel_drops.get(),
            capture_workers: self.workers.heartbeat(),
            packets_undecodable: self.undecodable.get(),
            sightings_sent: self.sent.get(),
            sightings_held_back: self.held_back.get(),
            blind_spots,
            ..Default::default()
        }
    }
}

/// The labels of one live-capture worker's series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkerLabels {
    pub interface: String,
    pub worker: u32,
    pub method: String,
}

/// One live-capture worker's counters (shared with the metric families).
#[derive(Debug)]
pub struct WorkerCounters {
    pub labels: WorkerLabels,
    pub packets: Counter,
    pub drops: Counter,
    pub freezes: Counter,
}

#[derive(Debug, Default)]
struct WorkerFamilies {
    packets: Family<WorkerLabels, Counter>,
    drops: Family<WorkerLabels, Counter>,
    freezes: Family<WorkerLabels, Counter>,
    all: Mutex<Vec<Arc<WorkerCounters>>>,
}

impl WorkerFamilies {
    fn heartbeat(&self) -> Vec<v1::CaptureWorker> {
        let all = self.all.lock().unwrap_or_else(|p| p.into_inner());
        all.iter()
            .map(|w| v1::CaptureWorker {
                interface: w.labels.interface.clone(),
                worker: w.labels.worker,
                method: w.labels.method.clone(),
                packets: w.packets.get(),
                kernel_drops: w.drops.get(),
                queue_freezes: w.freezes.get(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_capture_worker_is_counted_apart_in_the_heartbeat_and_the_metrics() {
        let counters = Counters::default();
        let (first, second) =
            (counters.capture_worker("eth1", 0, "ring"), counters.capture_worker("eth1", 1, "ring"));
        counters.add_capture(&first, 100, 3, 1);
        counters.add_capture(&second, 50, 0, 0);
        counters.add_capture(&first, 10, 2, 0);
        let beat = counters.heartbeat();
        assert_eq!(beat.packets_dropped_kernel, 5, "the total is the workers' sum");
        let workers: Vec<_> = beat
            .capture_workers
            .iter()
            .map(|w| (w.worker, w.packets, w.kernel_drops, w.queue_freezes))
            .collect();
        assert_eq!(workers, [(0, 110, 5, 1), (1, 50, 0, 0)]);
        let mut registry = Registry::default();
        counters.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let sample = "zdn_agent_capture_worker_dropped_kernel_total{interface=\"eth1\",worker=\"0\",method=\"ring\"} 5";
        assert!(text.contains(sample), "{text}");
        assert!(text.contains("zdn_agent_capture_queue_freezes_total 1"), "{text}");
    }
}
