//! One capture worker of `zdn-agent run`: frame → the packet path ([`PacketPath`]: decode,
//! defragment, extract, match against the live indicator set) → aggregate → (alert log, rate
//! limits) → spool.
//!
//! One `Pipeline` belongs to one capture worker thread. The live set is read through
//! `ArcSwap::load` once per packet: lock-free, and a packet sees one whole set even while the
//! sync task swaps in a new one. Sightings ready to leave are buffered briefly and written to
//! the spool in one transaction ([`SPOOL_BATCH`] sightings or [`SPOOL_DELAY`]), so a burst of
//! first hits costs one fsync, not one per sighting.

use crate::alerts::AlertLog;
use crate::capture::Frame;
use crate::counters::{Counters, WorkerCounters};
use crate::history::Tap;
use crate::packet_path::{HomeNet, PacketPath, PathStats};
use crate::ratelimit::RateLimits;
use crate::sighting::{Aggregator, Sighting};
use crate::spool::Spool;
use arc_swap::ArcSwap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zdn_indicators::IndicatorSet;

/// Sightings written to the spool in one transaction at most.
pub const SPOOL_BATCH: usize = 256;
/// Packets between two reports of the extraction counters (ticks and the end report too).
const REPORT_EVERY: u32 = 1024;
/// Longest a ready sighting waits for its spool transaction.
pub const SPOOL_DELAY: Duration = Duration::from_millis(200);

/// What the workers share: the live set and everything downstream of aggregation.
pub struct Shared {
    pub set: ArcSwap<IndicatorSet>,
    /// Version of the collector's set inside `set` (0: none), for the heartbeat.
    pub set_version: AtomicU64,
    pub home: HomeNet,
    pub limits: RateLimits,
    pub spool: Arc<Spool>,
    pub alerts: Option<Mutex<AlertLog>>,
    pub counters: Arc<Counters>,
    /// Woken when sightings were spooled, so the uplink sends them at once.
    pub spooled: Arc<tokio::sync::Notify>,
    /// Answers to analysts' hunts not yet delivered in a heartbeat.
    pub hunt_answers: Mutex<Vec<zdn_proto::v1::HuntAnswer>>,
}

pub struct Pipeline {
    shared: Arc<Shared>,
    aggregator: Aggregator,
    path: PacketPath,
    /// The packet path's counters as last added to the shared ones, and packets since.
    reported: PathStats,
    since_report: u32,
    pending: Vec<Sighting>,
    pending_since: Option<Instant>,
    /// `aggregator.evicted_early` as last added to the shared counter.
    evictions_counted: u64,
    /// This worker's recording into the destination history, when it is on.
    history: Option<Tap>,
}

impl Pipeline {
    pub fn new(shared: Arc<Shared>, aggregator: Aggregator) -> Pipeline {
        Pipeline {
            shared,
            aggregator,
            path: PacketPath::default(),
            reported: PathStats::default(),
            since_report: 0,
            pending: Vec::new(),
            pending_since: None,
            evictions_counted: 0,
            history: None,
        }
    }

    /// Records what the internal hosts contact into the destination history too.
    pub fn with_history(mut self, tap: Tap) -> Pipeline {
        self.history = Some(tap);
        self
    }

    /// One captured frame.
    pub fn frame(&mut self, frame: &Frame<'_>) {
        let ts_ms = frame.ts_ns / 1_000_000;
        self.aggregator.advance(ts_ms);
        let set = self.shared.set.load();
        self.inspect_guarded(|path, aggregator, home, history| {
            let mut record = |contacted: crate::packet_path::Contacted<'_>| {
                if let Some(tap) = history.as_mut() {
                    tap.record(contacted, ts_ms);
                }
            };
            path.inspect_recording(frame, &set, home, |hit| aggregator.add(hit, ts_ms), &mut record);
        });
        // The packet path's counters reach the shared ones in batches, not per packet.
        self.since_report += 1;
        if self.since_report >= REPORT_EVERY {
            self.report_stats();
        }
        self.collect(false);
    }

    /// Runs one packet's `inspect`. A packet that makes the packet path panic is skipped and
    /// counted, not fatal (no input is known to: the parsers are fuzzed; this is the net under
    /// them).
    fn inspect_guarded(
        &mut self,
        inspect: impl FnOnce(&mut PacketPath, &mut Aggregator, &HomeNet, &mut Option<Tap>),
    ) {
        let (path, aggregator, home) = (&mut self.path, &mut self.aggregator, &self.shared.home);
        let history = &mut self.history;
        if std::panic::catch_unwind(AssertUnwindSafe(|| inspect(path, aggregator, home, history))).is_err() {
            self.packet_panicked();
        }
    }

    /// After a panic the packet path's tables may be half-updated: what it counted is kept,
    /// its state starts afresh.
    fn packet_panicked(&mut self) {
        self.report_stats();
        self.path = PacketPath::default();
        self.reported = PathStats::default();
        self.shared.counters.packet_panics.inc();
        let panics = self.shared.counters.packet_panics.get();
        tracing::error!(panics, "a packet made the packet path panic: skipped and counted, its state reset");
    }

    /// A live-capture worker read `packets` since its last report, and the kernel dropped
    /// `drops` before it could read them (its ring filling up `freezes` times). A drop is
    /// counted and logged, never silent.
    pub fn capture_stats(&self, worker: &WorkerCounters, packets: u64, drops: u64, freezes: u64) {
        self.shared.counters.add_capture(worker, packets, drops, freezes);
        if drops > 0 || freezes > 0 {
            let (interface, worker) = (&worker.labels.interface, worker.labels.worker);
            tracing::warn!(
                interface,
                worker,
                dropped = drops,
                ring_full = freezes,
                "the kernel dropped packets: the capture worker is too slow (add capture.workers)"
            );
        }
    }

    /// The clock reached `now_ms` without packets (live capture idles): close windows and
    /// write what waits.
    pub fn tick(&mut self, now_ms: i64) {
        self.aggregator.advance(now_ms);
        self.report_stats();
        self.collect(false);
    }

    /// Adds what the packet path counted since the last report to the shared counters.
    fn report_stats(&mut self) {
        self.since_report = 0;
        let stats = self.path.stats();
        if stats != self.reported {
            self.shared.counters.add_path(&self.reported, &stats);
            self.reported = stats;
        }
    }

    /// End of input or shutdown: everything open is emitted and spooled.
    pub fn finish(&mut self) {
        if let Some(tap) = &mut self.history {
            tap.snapshot();
        }
        self.aggregator.flush();
        self.report_stats();
        self.collect(true);
    }

    /// Moves emitted sightings to the pending buffer and writes it when due.
    fn collect(&mut self, now: bool) {
        let ready = self.aggregator.take_ready();
        if !ready.is_empty() {
            self.pending_since.get_or_insert_with(Instant::now);
            self.pending.extend(ready);
        }
        let due = self.pending.len() >= SPOOL_BATCH
            || self.pending_since.is_some_and(|since| since.elapsed() >= SPOOL_DELAY);
        if (now || due) && !self.pending.is_empty() {
            self.write_pending();
        }
    }

    fn write_pending(&mut self) {
        let shared = &*self.shared;
        let pending = std::mem::take(&mut self.pending);
        self.pending_since = None;
        let mut out = Vec::with_capacity(pending.len());
        let mut alerts = shared.alerts.as_ref().map(|a| a.lock().unwrap_or_else(|p| p.into_inner()));
        for sighting in &pending {
            let admitted = shared.limits.admit(&sighting.indicator);
            if let Some(log) = alerts.as_mut()
                && let Err(e) = log.write(sighting, !admitted)
            {
                tracing::error!(error = %e, "alert log write failed");
            }
            if admitted {
                let mut wire = sighting.to_proto();
                // A match is never lost to a length limit: long values are cut and marked.
                if zdn_proto::limits::fit(&mut wire) {
                    shared.counters.truncated.inc();
                }
                out.push(wire);
            }
        }
        if let Some(log) = alerts.as_mut()
            && let Err(e) = log.flush()
        {
            tracing::error!(error = %e, "alert log write failed");
        }
        drop(alerts);
        let counters = &shared.counters;
        let held_back = (pending.len() - out.len()) as u64;
        if held_back > 0 {
            counters.held_back.inc_by(held_back);
            tracing::debug!(held_back, "rate limits held sightings back");
        }
        let pushed = shared.spool.push(&out);
        counters.spooled.inc_by(pushed.queued);
        counters.spool_full.inc_by(pushed.refused_full);
        counters.spool_failed.inc_by(pushed.refused_disk);
        let evicted = self.aggregator.evicted_early;
        counters.evicted_early.inc_by(evicted - self.evictions_counted);
        self.evictions_counted = evicted;
        if pushed.queued > 0 {
            shared.spooled.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pseudonym::Pseudonymiser;

    #[test]
    fn a_packet_that_panics_is_skipped_counted_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let counters = Arc::new(Counters::default());
        let set = IndicatorSet::new(zdn_indicators::parse_plain("t", "203.0.113.66\n").indicators);
        let shared = Arc::new(Shared {
            set: ArcSwap::from_pointee(set),
            set_version: AtomicU64::new(0),
            home: HomeNet::default(),
            limits: RateLimits::new(u32::MAX, u32::MAX),
            spool: Arc::new(Spool::open(&dir.path().join("spool.sqlite"), 1 << 20).unwrap()),
            alerts: None,
            counters: counters.clone(),
            spooled: Arc::new(tokio::sync::Notify::new()),
            hunt_answers: Mutex::new(Vec::new()),
        });
        let aggregator = Aggregator::new(60_000, 1_000, Pseudonymiser::ephemeral());
        let mut pipeline = Pipeline::new(shared, aggregator);
        pipeline.inspect_guarded(|_, _, _, _| panic!("a parser bug"));
        pipeline.inspect_guarded(|_, _, _, _| panic!("another"));
        assert_eq!(counters.packet_panics.get(), 2);
        assert_eq!(counters.heartbeat().blind_spots["packet_panics"], 2, "the collector hears of it");
        // The worker goes on: the next packet is inspected as usual.
        let mut ran = false;
        pipeline.inspect_guarded(|_, _, _, _| ran = true);
        assert!(ran && counters.packet_panics.get() == 2);
    }
}
