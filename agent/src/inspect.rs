//! From a decoded packet to indicator hits: which observables it carries, and whether the
//! indicator set knows them.
//!
//! Direction: traffic from `home_net` counts; destinations, server names, URLs and
//! fingerprints are matched only when the destination lies outside `home_net` (outbound),
//! while DNS query names are matched whatever the resolver's address, because gateways usually
//! ask an internal resolver. An empty `home_net` treats every source as internal and every
//! destination as external (replay of a capture from an unknown network).
//!
//! The common case (no hit) allocates nothing; a hit allocates its observed value once.

use crate::decode::Decoded;
use crate::extract::{ExtractStats, Extractor, Observation, Value};
use crate::stream::StreamStats;
use ipnet::IpNet;
use std::net::IpAddr;
use zdn_indicators::set::Match;
use zdn_indicators::{IndicatorSet, Kind, Via};

/// The participant's own networks.
#[derive(Debug, Clone, Default)]
pub struct HomeNet(Vec<IpNet>);

impl HomeNet {
    pub fn new(nets: Vec<IpNet>) -> HomeNet {
        HomeNet(nets)
    }

    fn is_internal(&self, ip: IpAddr) -> bool {
        self.0.is_empty() || self.0.iter().any(|n| n.contains(&ip))
    }

    fn is_external(&self, ip: IpAddr) -> bool {
        self.0.is_empty() || !self.0.iter().any(|n| n.contains(&ip))
    }
}

/// One indicator matched by one packet.
#[derive(Debug, Clone)]
pub struct Hit<'s> {
    pub indicator: Match<'s>,
    pub via: Via,
    /// What was seen: the address, `address:port`, the name, URL or fingerprint.
    pub observed: String,
}

/// Matches a packet's observables against the set; holds the extraction state (reassembly of
/// client streams) of one capture worker.
#[derive(Default)]
pub struct Inspector {
    extractor: Extractor,
}

impl Inspector {
    /// Calls `hit` for every indicator `packet` matches. Outbound only: the source must be
    /// internal, and the destination external — except for DNS query names, which count
    /// whatever resolver is asked.
    pub fn inspect<'s>(
        &mut self,
        set: &'s IndicatorSet,
        home: &HomeNet,
        packet: &Decoded<'_>,
        now_ms: i64,
        mut hit: impl FnMut(Hit<'s>),
    ) {
        if !home.is_internal(packet.src) {
            return;
        }
        let external = home.is_external(packet.dst);
        self.extractor.extract(packet, now_ms, |observation| {
            let Observation::Seen { via, value } = observation else { return };
            if via != Via::DnsQuery && !external {
                return;
            }
            let found = match (via, value) {
                (_, Value::IpPort(ip, port)) => set.match_ip_port(ip, port),
                (_, Value::Ip(ip)) => set.match_ip(ip),
                (_, Value::Name(name)) => set.match_domain(name),
                (Via::HttpUrl, Value::Text(url)) => match_url(set, url),
                (Via::Ja3, Value::Text(text)) => set.match_text(Kind::Ja3, text),
                (Via::Ja4, Value::Text(text)) => set.match_text(Kind::Ja4, text),
                _ => None,
            };
            if let Some(indicator) = found {
                hit(Hit { indicator, via, observed: value.to_string() });
            }
        });
    }

    pub fn stats(&self) -> &ExtractStats {
        &self.extractor.stats
    }

    pub fn stream_stats(&self) -> &StreamStats {
        &self.extractor.streams().stats
    }
}

/// A URL `host/path?query` against URL indicators: the full URL, then without the query, then
/// the path alone (host-less indicators such as `/gate.php`), with and without the query.
fn match_url<'s>(set: &'s IndicatorSet, url: &str) -> Option<Match<'s>> {
    let without_query = url.split_once('?').map_or(url, |(u, _)| u);
    let path_at = url.find('/').unwrap_or(url.len());
    let (path, bare_path) = (&url[path_at..], &without_query[path_at.min(without_query.len())..]);
    [url, without_query, path, bare_path]
        .into_iter()
        .filter(|candidate| candidate.len() > 1)
        .find_map(|candidate| set.match_text(Kind::Url, candidate))
}
