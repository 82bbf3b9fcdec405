//! `zdn-agent replay`: capture files through the packet path live traffic takes
//! ([`PacketPath`]), then aggregation — yielding the sightings and the counters.

use crate::capture::{self, CaptureError};
use crate::packet_path::{HomeNet, PacketPath, PathStats};
use crate::sighting::{Aggregator, Sighting};
use std::path::Path;
use zdn_indicators::IndicatorSet;
use zdn_proto::v1;

/// Open aggregates kept at once (see [`Aggregator`]).
pub const AGGREGATE_CAPACITY: usize = 65_536;

/// Counters of one replay: the packet path's, and what aggregation closed early.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayStats {
    pub path: PathStats,
    pub evicted_early: u64,
}

impl ReplayStats {
    /// The counters as a heartbeat carries them.
    pub fn heartbeat(&self, set: &IndicatorSet) -> v1::HeartbeatRequest {
        let (cpu_percent, rss_bytes, load_average_1m) = crate::heartbeat::HostStats::new().read();
        v1::HeartbeatRequest {
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            indicator_version: 0,
            indicator_count: set.len() as u64,
            cpu_percent,
            rss_bytes,
            load_average_1m,
            packets_seen: self.path.packets,
            packets_undecodable: self.path.undecodable_total(),
            ..Default::default()
        }
    }
}

/// Replays captures in order and returns the sightings they produce. A capture damaged
/// part-way (a truncated last record, say) still yields what was read before the damage; its
/// error is returned beside, one per capture that could not be read to its end.
pub fn replay_all(
    set: &IndicatorSet,
    home: &HomeNet,
    pcaps: &[impl AsRef<Path>],
    mut aggregator: Aggregator,
) -> (Vec<Sighting>, ReplayStats, Vec<CaptureError>) {
    let (mut sightings, mut errors) = (Vec::new(), Vec::new());
    let mut path = PacketPath::default();
    for pcap in pcaps {
        let read = capture::read_file(pcap.as_ref(), |frame| {
            let ts_ms = frame.ts_ns / 1_000_000;
            aggregator.advance(ts_ms);
            path.inspect(&frame, set, home, |hit| aggregator.add(hit, ts_ms));
        });
        errors.extend(read.err());
        sightings.extend(aggregator.take_ready());
    }
    aggregator.flush();
    sightings.extend(aggregator.take_ready());
    let stats = ReplayStats { path: path.stats(), evicted_early: aggregator.evicted_early };
    (sightings, stats, errors)
}

/// As [`replay_all`], failing on the first capture that could not be read to its end (for
/// the tests and the demo, whose captures must be whole).
pub fn replay(
    set: &IndicatorSet,
    home: &HomeNet,
    pcaps: &[impl AsRef<Path>],
    aggregator: Aggregator,
) -> Result<(Vec<Sighting>, ReplayStats), CaptureError> {
    let (sightings, stats, errors) = replay_all(set, home, pcaps, aggregator);
    match errors.into_iter().next() {
        Some(error) => Err(error),
        None => Ok((sightings, stats)),
    }
}
