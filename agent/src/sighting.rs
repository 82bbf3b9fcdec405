//! Sightings: what the agent reports, and how repeated hits become one sighting.
//!
//! Hits are aggregated per (indicator, internal host, via) over a window of packet time: the
//! first hit is emitted at once as a sighting of count 1 (an analyst hears of a new contact
//! without waiting for the window), repeats within the window only raise a counter, and when
//! the window has passed (or at the end of the input) the repeats are emitted as one more
//! sighting carrying their count and first/last time. The number of open aggregates is
//! bounded; when it is reached the oldest is closed early, so a flood of distinct hits costs
//! reports, never unbounded memory.

use crate::packet_path::Hit;
use crate::pseudonym::Pseudonymiser;
use serde::{Serialize, Serializer};
use std::collections::HashMap;
use std::net::IpAddr;
use zdn_indicators::{Kind, Via};
use zdn_proto::v1;
use zdn_timestamps::format_unix_ms;

/// One sighting as the agent reports it. Serialises to the JSON-lines contract of the
/// foundation issue (`indicator`, `kind`, `via`, `observed`, `first_seen`, `last_seen`,
/// `count`, `src`, `dst_ip`, `dst_port`, `proto`), plus `id` and `indicator_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sighting {
    pub id: String,
    pub indicator: String,
    pub indicator_id: String,
    pub kind: Kind,
    pub via: Via,
    pub observed: String,
    #[serde(rename = "first_seen", serialize_with = "rfc3339")]
    pub first_seen_unix_ms: i64,
    #[serde(rename = "last_seen", serialize_with = "rfc3339")]
    pub last_seen_unix_ms: i64,
    pub count: u64,
    /// Pseudonym of the internal host (or its address if the participant opted in).
    pub src: String,
    pub dst_ip: String,
    pub dst_port: u16,
    pub proto: String,
    /// For an address sighting: the DNS name the host had resolved to the address.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resolved_name: String,
    /// Found by a retro-hunt in the destination history (see `crate::history`), not live.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub retro: bool,
    /// The internal host's real address, for the participant's own alert log. It never
    /// leaves the agent: it is not serialised and not in [`Sighting::to_proto`].
    #[serde(skip)]
    pub host: IpAddr,
}

fn rfc3339<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_unix_ms(*ms))
}

impl Sighting {
    pub fn to_proto(&self) -> v1::Sighting {
        v1::Sighting {
            id: self.id.clone(),
            indicator: self.indicator.clone(),
            kind: v1::IndicatorKind::from(self.kind) as i32,
            via: v1::Via::from(self.via) as i32,
            observed: self.observed.clone(),
            first_seen_unix_ms: self.first_seen_unix_ms,
            last_seen_unix_ms: self.last_seen_unix_ms,
            count: self.count,
            src: self.src.clone(),
            dst_ip: self.dst_ip.clone(),
            dst_port: u32::from(self.dst_port),
            proto: self.proto.clone(),
            indicator_id: self.indicator_id.clone(),
            resolved_name: self.resolved_name.clone(),
            retro: self.retro,
        }
    }
}

type Key = (Kind, String, IpAddr, Via);

/// An aggregate whose first hit has been emitted: what it still owes is the repeats.
struct Open {
    /// The emitted first sighting, kept as the template of the repeats' sighting.
    first: Sighting,
    repeats: u64,
    repeat_first_ms: i64,
    repeat_last_ms: i64,
}

/// Aggregates hits into sightings.
pub struct Aggregator {
    window_ms: i64,
    capacity: usize,
    open: HashMap<Key, Open>,
    /// Emitted sightings, oldest first; drained by the caller.
    ready: Vec<Sighting>,
    pseudonyms: Pseudonymiser,
    /// Packet time at which `advance` next sweeps for closed windows.
    next_sweep_ms: i64,
    /// Aggregates emitted early because `capacity` was reached.
    pub evicted_early: u64,
}

impl Aggregator {
    pub fn new(window_ms: i64, capacity: usize, pseudonyms: Pseudonymiser) -> Aggregator {
        Aggregator {
            window_ms: window_ms.max(1),
            capacity: capacity.max(1),
            open: HashMap::new(),
            ready: Vec::new(),
            pseudonyms,
            next_sweep_ms: i64::MIN,
            evicted_early: 0,
        }
    }

    /// Adds a hit seen at `ts_ms` (packet time).
    pub fn add(&mut self, hit: Hit<'_>, ts_ms: i64) {
        let key = (hit.indicator.kind(), hit.indicator.value().into_owned(), hit.host, hit.via);
        if let Some(open) = self.open.get_mut(&key) {
            if ts_ms < open.first.first_seen_unix_ms + self.window_ms {
                if open.repeats == 0 {
                    open.repeat_first_ms = ts_ms;
                }
                open.repeats += 1;
                open.repeat_last_ms = open.repeat_last_ms.max(ts_ms);
                return;
            }
            let done = self.open.remove(&key).expect("present");
            self.close(done);
        }
        if self.open.len() >= self.capacity {
            self.evict_oldest();
        }
        let sighting = Sighting {
            id: uuid::Uuid::now_v7().to_string(),
            indicator: hit.indicator.value().into_owned(),
            indicator_id: hit.indicator.id().into_owned(),
            kind: hit.indicator.kind(),
            via: hit.via,
            observed: hit.observed,
            first_seen_unix_ms: ts_ms,
            last_seen_unix_ms: ts_ms,
            count: 1,
            src: self.pseudonyms.pseudonym(hit.host),
            dst_ip: hit.remote.map(|ip| ip.to_string()).unwrap_or_default(),
            dst_port: hit.remote_port,
            proto: hit.proto.to_owned(),
            host: hit.host,
            resolved_name: hit.resolved_name.unwrap_or_default(),
            retro: false,
        };
        self.ready.push(sighting.clone());
        self.open.insert(key, Open { first: sighting, repeats: 0, repeat_first_ms: 0, repeat_last_ms: 0 });
    }

    /// Tells the aggregator the packet clock reached `now_ms`. Sweeps for closed windows at
    /// most four times per window, so the per-packet cost stays constant.
    pub fn advance(&mut self, now_ms: i64) {
        if now_ms < self.next_sweep_ms {
            return;
        }
        self.next_sweep_ms = now_ms.saturating_add((self.window_ms / 4).max(1));
        self.expire(now_ms);
    }

    /// Emits every aggregate whose window closed before `now_ms`.
    fn expire(&mut self, now_ms: i64) {
        let window = self.window_ms;
        let closed: Vec<Key> = self
            .open
            .iter()
            .filter(|(_, o)| o.first.first_seen_unix_ms + window <= now_ms)
            .map(|(k, _)| k.clone())
            .collect();
        for key in closed {
            let done = self.open.remove(&key).expect("present");
            self.close(done);
        }
    }

    /// Emits what every open aggregate still owes (end of input, shutdown).
    pub fn flush(&mut self) {
        let mut all: Vec<Open> = self.open.drain().map(|(_, o)| o).collect();
        all.sort_by(|a, b| {
            (a.repeat_first_ms, &a.first.indicator).cmp(&(b.repeat_first_ms, &b.first.indicator))
        });
        for open in all {
            self.close(open);
        }
    }

    /// Aggregates still open.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Takes the sightings emitted so far.
    pub fn take_ready(&mut self) -> Vec<Sighting> {
        std::mem::take(&mut self.ready)
    }

    fn evict_oldest(&mut self) {
        let oldest = self.open.iter().min_by_key(|(_, o)| o.first.first_seen_unix_ms).map(|(k, _)| k.clone());
        if let Some(key) = oldest {
            let done = self.open.remove(&key).expect("present");
            self.evicted_early += 1;
            self.close(done);
        }
    }

    /// Emits the repeats of a closed aggregate, if it had any.
    fn close(&mut self, open: Open) {
        if open.repeats == 0 {
            return;
        }
        let mut repeats = open.first;
        repeats.id = uuid::Uuid::now_v7().to_string();
        repeats.count = open.repeats;
        repeats.first_seen_unix_ms = open.repeat_first_ms;
        repeats.last_seen_unix_ms = open.repeat_last_ms;
        self.ready.push(repeats);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zdn_indicators::set::Match;
    use zdn_indicators::{IndicatorSet, parse_plain};

    fn one(text: &str) -> IndicatorSet {
        IndicatorSet::new(parse_plain("t", text).indicators)
    }

    fn hit_by<'s>(indicator: Match<'s>, via: Via, observed: &str, host: &str) -> Hit<'s> {
        Hit {
            indicator,
            via,
            observed: observed.into(),
            host: host.parse().unwrap(),
            remote: Some("203.0.113.9".parse().unwrap()),
            remote_port: 443,
            proto: "tcp",
            resolved_name: None,
        }
    }

    #[test]
    fn aggregates_per_indicator_host_and_via_within_the_window() {
        let set = one("203.0.113.9");
        let hit = |host| hit_by(set.iter().next().unwrap(), Via::IpDst, "203.0.113.9", host);
        let mut agg = Aggregator::new(60_000, 100, Pseudonymiser::ephemeral());
        let times = |s: &Sighting| (s.count, s.first_seen_unix_ms, s.last_seen_unix_ms);
        agg.add(hit("10.0.0.1"), 1_000);
        let first = agg.take_ready();
        assert_eq!(first.iter().map(times).collect::<Vec<_>>(), [(1, 1_000, 1_000)], "first hit at once");
        agg.add(hit("10.0.0.1"), 2_000);
        agg.add(hit("10.0.0.1"), 3_000);
        agg.add(hit("10.0.0.2"), 2_500);
        assert_eq!(agg.take_ready().iter().map(times).collect::<Vec<_>>(), [(1, 2_500, 2_500)]);
        agg.add(hit("10.0.0.1"), 61_000); // window of the first has passed
        let closed = agg.take_ready();
        assert_eq!(
            closed.iter().map(times).collect::<Vec<_>>(),
            [(2, 2_000, 3_000), (1, 61_000, 61_000)],
            "the repeats, then a new first hit"
        );
        agg.advance(62_500);
        assert!(agg.take_ready().is_empty(), "10.0.0.2 had no repeats to report");
        agg.add(hit("10.0.0.1"), 62_000);
        agg.flush();
        let last = agg.take_ready();
        assert_eq!(last.iter().map(times).collect::<Vec<_>>(), [(1, 62_000, 62_000)]);
        let ids: std::collections::HashSet<_> =
            first.iter().chain(&closed).chain(&last).map(|s| s.id.clone()).collect();
        assert_eq!(ids.len(), 4, "every sighting has its own id");
        assert_eq!(first[0].src, last[0].src, "same host, same pseudonym");
        assert_eq!(last[0].host.to_string(), "10.0.0.1");
    }

    #[test]
    fn a_full_table_emits_the_oldest_early() {
        let set = one("203.0.113.9");
        let ind = set.iter().next().unwrap();
        let mut agg = Aggregator::new(60_000, 2, Pseudonymiser::ephemeral());
        for (i, host) in ["10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.3"].into_iter().enumerate() {
            agg.add(hit_by(ind, Via::IpDst, "", host), i as i64);
        }
        assert_eq!((agg.evicted_early, agg.open_count()), (1, 2));
        let ready = agg.take_ready();
        assert_eq!(
            ready.iter().map(|s| (s.first_seen_unix_ms, s.count)).collect::<Vec<_>>(),
            [
                (0, 1),
                (2, 1),
                (1, 1), // 10.0.0.1's repeat, closed early to make room for 10.0.0.3
                (3, 1)
            ]
        );
    }

    #[test]
    fn serialises_to_the_json_line_contract() {
        let set = one("evil.example");
        let mut agg = Aggregator::new(1, 10, Pseudonymiser::ephemeral());
        agg.add(
            hit_by(set.iter().next().unwrap(), Via::DnsQuery, "a.evil.example", "10.0.0.1"),
            1_700_000_000_123,
        );
        agg.flush();
        let json: serde_json::Value = serde_json::to_value(&agg.take_ready()[0]).unwrap();
        assert_eq!(json["indicator"], "evil.example");
        assert_eq!(json["kind"], "domain");
        assert_eq!(json["via"], "dns_query");
        assert_eq!(json["observed"], "a.evil.example");
        assert_eq!(json["first_seen"], "2023-11-14T22:13:20.123Z");
        assert_eq!(json["count"], 1);
        assert_eq!(json["dst_port"], 443);
        assert_eq!(json["proto"], "tcp");
        assert!(json["src"].as_str().unwrap().starts_with("h-"));
    }
}
