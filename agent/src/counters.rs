//! The agent's running counters: written by the capture workers and the uplink, read by the
//! heartbeat, the final log line and the Prometheus endpoint ([`crate::metrics`]).
//!
//! Each is a counter of the `prometheus` crate — an atomic that never goes down — so the hot
//! path pays one relaxed atomic add. That crate writes the classic Prometheus text format, in
//! which a counter's `# HELP` and `# TYPE` name the `_total` series itself, so `promtool check
//! metrics` reads the endpoint cleanly (the OpenMetrics text of `prometheus-client` names the
//! family without `_total`, which promtool reports as counters without help).

use crate::packet_path::PathStats;
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use zdn_proto::v1;

/// Declares [`Counters`]: each field's counter is `zdn_agent_<name>_total` with its help text.
macro_rules! counters {
    ($( $(#[doc = $doc:literal])* $field:ident: $name:literal, $help:literal; )*) => {
        #[derive(Debug)]
        pub struct Counters {
            $( $(#[doc = $doc])* pub $field: IntCounter, )*
            /// Packets read, kernel drops and ring freezes per live-capture worker.
            workers: WorkerFamilies,
        }

        impl Default for Counters {
            fn default() -> Self {
                Counters {
                    $( $field: counter(concat!("zdn_agent_", $name, "_total"), $help), )*
                    workers: WorkerFamilies::default(),
                }
            }
        }

        impl Counters {
            /// Every counter, for registration.
            fn each(&self) -> Vec<&IntCounter> {
                vec![$( &self.$field ),*]
            }
        }
    };
}

counters! {
    packets: "packets", "Packets seen";
    undecodable: "packets_undecodable", "Packets that could not be decoded";
    /// Packets that made the packet path panic: skipped, the path's state reset.
    packet_panics: "packets_panicked", "Packets that made the packet path panic (skipped)";
    /// Packets the kernel dropped before capture (`PACKET_STATISTICS` of the socket).
    kernel_drops: "packets_dropped_kernel", "Packets the kernel dropped before capture";
    /// Times a capture ring was full, so that the kernel froze its queue (ring capture only).
    queue_freezes: "capture_queue_freezes", "Times a capture ring was full (the kernel froze its queue)";
    dns_queries: "dns_queries", "DNS query names inspected";
    dns_malformed: "dns_malformed", "Malformed DNS messages";
    tls_hellos: "tls_client_hellos", "TLS ClientHellos read";
    tls_malformed: "tls_malformed", "Malformed TLS ClientHellos";
    http_requests: "http_requests", "HTTP requests read";
    http_malformed: "http_malformed", "Malformed HTTP requests";
    /// Blind spots: ClientHellos with Encrypted Client Hello, DNS over TLS connections, TLS
    /// to public DNS-over-HTTPS resolvers.
    blind_ech: "blind_tls_ech", "ClientHellos with Encrypted Client Hello";
    blind_dot: "blind_dns_over_tls", "DNS over TLS connections";
    blind_doh: "blind_dns_over_https", "TLS to public DNS-over-HTTPS resolvers";
    /// Bounded state dropped: client streams, fragmented datagrams; QUIC Initials that did
    /// not decrypt.
    streams_dropped: "streams_dropped", "Client streams abandoned before their message was read";
    datagrams_dropped: "datagrams_dropped", "Fragmented datagrams abandoned before reassembly";
    quic_undecryptable: "quic_undecryptable", "QUIC Initials that did not decrypt";
    hits: "hits", "Indicator hits";
    /// Retro-hunts (`crate::history`): sightings found in the destination history and queued,
    /// analysts' hunts answered and refused, hours of history deleted or unreadable.
    retro_sightings: "retro_sightings", "Retro sightings found in the destination history and queued";
    hunts_answered: "hunts_answered", "Analysts' retro-hunts answered";
    hunts_refused: "hunts_refused", "Hunt requests refused (not signed by the pinned publishing key)";
    history_evicted: "history_buckets_evicted", "Hourly buckets of destination history deleted for age or size";
    history_unreadable: "history_buckets_unreadable", "Hourly buckets of destination history a hunt skipped (checksum failed)";
    /// Sightings written to the spool.
    spooled: "sightings_spooled", "Sightings written to the spool";
    /// Sightings the collector acknowledged.
    sent: "sightings_sent", "Sightings acknowledged by the collector";
    /// Sightings the rate limits held back (in the local alert log, not sent).
    held_back: "sightings_held_back", "Sightings held back by rate limits";
    /// Sightings refused because the spool was at its byte bound.
    spool_full: "sightings_refused_spool_full", "Sightings refused by a full spool";
    /// Sightings whose observed value (or a short field) exceeded the contract's limit and
    /// was cut to it, marked with `…` (`zdn_proto::limits`).
    truncated: "sightings_truncated", "Sightings with a value cut to the contract's limit";
    /// Sightings lost to a failed spool write (disk full, I/O error).
    spool_failed: "sightings_spool_failed", "Sightings lost to spool write errors";
    /// Aggregates closed before their window ended because the table was full.
    evicted_early: "aggregates_evicted_early", "Aggregates closed early (table full)";
    /// Indicator updates refused (bad signature, older, implausible, a delta that did not apply).
    updates_refused: "indicator_updates_refused", "Indicator updates refused";
    /// Indicator versions installed from a delta rather than a whole set.
    deltas_applied: "indicator_deltas_applied", "Indicator versions installed from a delta";
}

/// A counter named `name` (a constant of this file, so always a valid metric name).
fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::new(name, help).expect("metric names here are valid")
}

impl Counters {
    /// Registers every counter (shared, not copied) with `registry`.
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        for counter in self.each() {
            registry.register(Box::new(counter.clone()))?;
        }
        let w = &self.workers;
        for family in [&w.packets, &w.drops, &w.freezes] {
            registry.register(Box::new(family.clone()))?;
        }
        Ok(())
    }

    /// The counters of live-capture worker `worker` on `interface`, registered for the
    /// metrics and the heartbeat.
    pub fn capture_worker(&self, interface: &str, worker: u32, method: &'static str) -> Arc<WorkerCounters> {
        let labels = WorkerLabels { interface: interface.to_owned(), worker, method: method.to_owned() };
        let w = &self.workers;
        let values = [interface, &worker.to_string(), method];
        let counters = Arc::new(WorkerCounters {
            packets: w.packets.with_label_values(&values),
            drops: w.drops.with_label_values(&values),
            freezes: w.freezes.with_label_values(&values),
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerLabels {
    pub interface: String,
    pub worker: u32,
    pub method: String,
}

/// One live-capture worker's counters (shared with the metric families).
#[derive(Debug)]
pub struct WorkerCounters {
    pub labels: WorkerLabels,
    pub packets: IntCounter,
    pub drops: IntCounter,
    pub freezes: IntCounter,
}

#[derive(Debug)]
struct WorkerFamilies {
    packets: IntCounterVec,
    drops: IntCounterVec,
    freezes: IntCounterVec,
    all: Mutex<Vec<Arc<WorkerCounters>>>,
}

impl Default for WorkerFamilies {
    fn default() -> Self {
        let family = |name: &str, help: &str| {
            IntCounterVec::new(Opts::new(name, help), &["interface", "worker", "method"])
                .expect("metric names here are valid")
        };
        WorkerFamilies {
            packets: family("zdn_agent_capture_worker_packets_total", "Packets a live-capture worker read"),
            drops: family(
                "zdn_agent_capture_worker_dropped_kernel_total",
                "Packets the kernel dropped before a worker read them",
            ),
            freezes: family("zdn_agent_capture_worker_queue_freezes_total", "Times a worker's ring was full"),
            all: Mutex::new(Vec::new()),
        }
    }
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
        let registry = Registry::new();
        counters.register(&registry).unwrap();
        let text = prometheus::TextEncoder::new().encode_to_string(&registry.gather()).unwrap();
        let sample = "zdn_agent_capture_worker_dropped_kernel_total{interface=\"eth1\",method=\"ring\",worker=\"0\"} 5";
        assert!(text.contains(sample), "{text}");
        assert!(text.contains("zdn_agent_capture_queue_freezes_total 1"), "{text}");
    }
}
