//! `zdn-agent replay`: a capture file through the same path live traffic takes — decode,
//! inspect, aggregate — yielding the sightings and the counters.

use crate::capture::{self, CaptureError};
use crate::inspect::{HomeNet, Inspector};
use crate::sighting::{Aggregator, Sighting};
use std::collections::BTreeMap;
use std::path::Path;
use zdn_dissect::decode::decode;
use zdn_dissect::extract::ExtractStats;
use zdn_indicators::IndicatorSet;
use zdn_proto::v1;

/// Open aggregates kept at once (see [`Aggregator`]).
pub const AGGREGATE_CAPACITY: usize = 65_536;

/// Counters of one replay.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayStats {
    pub packets: u64,
    /// Frames that could not be decoded, by reason.
    pub undecodable: BTreeMap<&'static str, u64>,
    /// Frames of link types we do not decode, by pcap LINKTYPE.
    pub unsupported_link: BTreeMap<u32, u64>,
    pub inspect: ExtractStats,
    pub hits: u64,
    pub evicted_early: u64,
}

impl ReplayStats {
    pub fn undecodable_total(&self) -> u64 {
        self.undecodable.values().sum::<u64>() + self.unsupported_link.values().sum::<u64>()
    }

    /// The counters as a heartbeat carries them.
    pub fn heartbeat(&self, set: &IndicatorSet) -> v1::HeartbeatRequest {
        let (cpu_percent, rss_bytes, load_average_1m) = crate::uplink::HostStats::new().read();
        v1::HeartbeatRequest {
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            indicator_version: 0,
            indicator_count: set.len() as u64,
            cpu_percent,
            rss_bytes,
            load_average_1m,
            packets_seen: self.packets,
            packets_undecodable: self.undecodable_total(),
            ..Default::default()
        }
    }
}

/// Replays captures in order and returns the sightings they produce.
pub fn replay(
    set: &IndicatorSet,
    home: &HomeNet,
    pcaps: &[impl AsRef<Path>],
    mut aggregator: Aggregator,
) -> Result<(Vec<Sighting>, ReplayStats), CaptureError> {
    let mut stats = ReplayStats::default();
    let mut sightings = Vec::new();
    let mut inspector = Inspector::default();
    for pcap in pcaps {
        capture::read_file(pcap.as_ref(), |frame| {
            stats.packets += 1;
            let Some(link) = frame.link else {
                *stats.unsupported_link.entry(frame.linktype).or_default() += 1;
                return;
            };
            let packet = match decode(link, frame.data) {
                Ok(p) => p,
                Err(e) => {
                    *stats.undecodable.entry(e.counter_name()).or_default() += 1;
                    return;
                }
            };
            let ts_ms = frame.ts_ns / 1_000_000;
            aggregator.advance(ts_ms);
            inspector.inspect(set, home, &packet, ts_ms, |hit| {
                stats.hits += 1;
                aggregator.add(hit, ts_ms);
            });
        })?;
        sightings.extend(aggregator.take_ready());
    }
    aggregator.flush();
    sightings.extend(aggregator.take_ready());
    stats.evicted_early = aggregator.evicted_early;
    stats.inspect = inspector.stats();
    Ok((sightings, stats))
}
