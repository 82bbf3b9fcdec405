//! Live capture: `workers` threads per interface, each with its own socket, joined in one
//! PACKET_FANOUT group hashed by flow, so each flow's packets reach one worker (whose stream
//! reassembly and aggregation then see all of it).
//!
//! Two ways to read an interface, chosen by `capture.method`:
//! - `ring` (the default): a TPACKET_V3 memory-mapped ring (`zdn-packet-ring`). The kernel
//!   hands over blocks of packets; the worker reads them in place, with no system call per
//!   packet, and the kernel stamps each packet with its arrival time.
//! - `socket`: pnet's AF_PACKET socket, one `recvfrom` (and one copy) per packet, stamped
//!   with the wall clock when read. The fallback for where the ring cannot be had.
//!
//! Either way, the kernel's statistics of the socket (`PACKET_STATISTICS`: packets dropped
//! because the worker was too slow; for the ring also queue freezes, times it was full) are
//! read every [`STATS_EVERY`] and counted per worker and in total: in the metrics, the
//! heartbeat and a warning in the log, so a drop is never silent. A worker waits at most
//! [`TICK`] for packets, so an idle link still closes aggregation windows, flushes the spool
//! buffer and sees the stop flag. Opening needs CAP_NET_RAW; without it the error says so.

mod ring;
mod socket;

use crate::config::{CaptureConfig, CaptureMethod};
use crate::counters::{Counters, WorkerCounters};
use crate::pipeline::Pipeline;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Longest a worker waits for packets.
pub const TICK: Duration = Duration::from_millis(100);
/// How often the kernel's drop counters are read.
pub const STATS_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("no interface named {0:?} (see `ip link`)")]
    NoSuchInterface(String),
    #[error(
        "cannot capture on {interface}: {source} (the agent needs CAP_NET_RAW, and CAP_NET_ADMIN for promiscuous mode)"
    )]
    Open { interface: String, source: std::io::Error },
    #[error(
        "cannot set up the capture ring on {interface}: {source} (capture.ring sets its size; capture.method = \"socket\" captures without a ring)"
    )]
    Ring { interface: String, source: std::io::Error },
    #[error("{0}: not an Ethernet-framed interface")]
    NotEthernet(String),
    #[error("capture on {interface} failed: {source}")]
    Read { interface: String, source: std::io::Error },
}

/// One worker's open capture on one interface.
pub struct LiveCapture {
    interface: String,
    counters: Arc<WorkerCounters>,
    reader: Reader,
}

enum Reader {
    Ring(zdn_packet_ring::Ring),
    Socket(socket::Socket),
}

impl LiveCapture {
    /// Opens `capture.workers` captures on `interface`, in one fanout group when there are
    /// several; fails at once (not in the workers) if the agent lacks the privilege.
    pub fn open(
        interface: &str,
        capture: &CaptureConfig,
        counters: &Counters,
    ) -> Result<Vec<LiveCapture>, LiveError> {
        let iface = pnet_datalink::interfaces()
            .into_iter()
            .find(|i| i.name == interface)
            .ok_or_else(|| LiveError::NoSuchInterface(interface.to_owned()))?;
        // One group per agent process and interface.
        let group = (std::process::id() as u16) ^ (iface.index as u16).rotate_left(8);
        let fanout = (capture.workers > 1).then_some(group);
        (0..capture.workers.max(1))
            .map(|worker| {
                let reader = match capture.method {
                    CaptureMethod::Ring => Reader::Ring(ring::open(&iface, capture, fanout)?),
                    CaptureMethod::Socket => {
                        Reader::Socket(socket::Socket::open(&iface, capture.promiscuous, fanout)?)
                    }
                };
                let counters = counters.capture_worker(interface, worker as u32, capture.method.as_str());
                Ok(LiveCapture { interface: interface.to_owned(), counters, reader })
            })
            .collect()
    }

    /// Feeds `pipeline` until `stop` is set, then flushes it.
    pub fn run(self, pipeline: &mut Pipeline, stop: &AtomicBool) -> Result<(), LiveError> {
        let mut worker = Worker { interface: self.interface, counters: self.counters, read: 0 };
        let result = match self.reader {
            Reader::Ring(mut ring) => drive(&mut ring, &mut worker, pipeline, stop),
            Reader::Socket(mut socket) => drive(&mut socket, &mut worker, pipeline, stop),
        };
        pipeline.finish();
        result
    }
}

/// What each capture method does in the loop every worker runs ([`drive`]).
trait Read {
    /// Hands what has arrived to `pipeline`, or waits up to [`TICK`] and ticks it; an error is
    /// the socket's own (the interface went away).
    fn step(&mut self, worker: &mut Worker, pipeline: &mut Pipeline) -> std::io::Result<()>;

    /// The kernel's counts since the last call: packets dropped, ring freezes.
    fn kernel_counts(&self) -> (u64, u64);
}

/// Reads until `stop` is set or the socket fails, with the kernel's counts reported every
/// [`STATS_EVERY`] and once more at the end.
fn drive(
    reader: &mut impl Read,
    worker: &mut Worker,
    pipeline: &mut Pipeline,
    stop: &AtomicBool,
) -> Result<(), LiveError> {
    let mut stats_due = Instant::now() + STATS_EVERY;
    let result = loop {
        if stop.load(Ordering::Relaxed) {
            break Ok(());
        }
        if Instant::now() >= stats_due {
            worker.report(pipeline, reader.kernel_counts());
            stats_due += STATS_EVERY;
        }
        if let Err(source) = reader.step(worker, pipeline) {
            break Err(LiveError::Read { interface: worker.interface.clone(), source });
        }
    };
    worker.report(pipeline, reader.kernel_counts());
    result
}

/// What a running worker keeps besides its reader: its name and counters.
struct Worker {
    interface: String,
    counters: Arc<WorkerCounters>,
    /// Packets read since the last report.
    read: u64,
}

impl Worker {
    /// Reports packets read and what the kernel counted (drops, freezes) since the last report.
    fn report(&mut self, pipeline: &Pipeline, (drops, freezes): (u64, u64)) {
        pipeline.capture_stats(&self.counters, std::mem::take(&mut self.read), drops, freezes);
    }
}

/// The wall clock in nanoseconds since the Unix epoch.
fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}
