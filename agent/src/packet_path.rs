//! The one packet path: a captured frame through decode → defragment → extract → (match
//! against the indicator set → hit), with one set of counters. Live capture
//! ([`crate::pipeline`]), `zdn-agent replay` ([`crate::replay`]) and `zdn-agent observe`
//! ([`crate::observe`], without a matcher) all take frames through a [`PacketPath`], so what
//! they count and what they see cannot drift apart.
//!
//! Direction: the extractors say which way each observation's packet went
//! ([`Towards`]); the client of that exchange is the host a hit is about. Traffic of clients in
//! `home_net` counts; destinations, server names, URLs and fingerprints are matched only when
//! the server lies outside `home_net` (outbound), while DNS query names and answers are matched
//! whatever the resolver's address, because gateways usually ask an internal resolver. An
//! empty `home_net` treats every client as internal and every server as external (replay of a
//! capture from an unknown network). No port number decides direction here.
//!
//! The common case (no hit) allocates nothing; a hit allocates its observed value once; an
//! undecodable frame costs one counter in a small map.

use crate::capture::Frame;
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::IpAddr;
use zdn_dissect::decode::{Decoded, Transport, decode};
use zdn_dissect::extract::{ExtractStats, Extractor, Observation, Towards, Value};
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
    /// The internal host: the client of the exchange (the source of outbound traffic, the
    /// destination of a DNS answer).
    pub host: IpAddr,
    /// The other end (server, resolver), or `None` when it is internal too: an internal
    /// address never leaves in a sighting, not even as the destination.
    pub remote: Option<IpAddr>,
    pub remote_port: u16,
    /// `tcp`, `udp`, `icmp`, `other`.
    pub proto: &'static str,
    /// For an address hit: the DNS name the host had resolved to that address, if seen.
    pub resolved_name: Option<String>,
}

/// What a packet path counted. Live capture adds these to the agent's shared counters, replay
/// and observe print them: the same numbers for the same frames.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PathStats {
    pub packets: u64,
    /// Frames not decoded, by reason (`unsupported_link` for link types we do not decode,
    /// otherwise the decoder's reason, e.g. `not_ip`, `truncated`).
    pub undecodable: BTreeMap<&'static str, u64>,
    pub extract: ExtractStats,
    pub hits: u64,
}

impl PathStats {
    pub fn undecodable_total(&self) -> u64 {
        self.undecodable.values().sum()
    }
}

/// One capture worker's packet path: the extraction state (stream reassembly, fragments,
/// QUIC, passive DNS) and the counters.
#[derive(Default)]
pub struct PacketPath {
    extractor: Extractor,
    stats: PathStats,
}

impl PacketPath {
    /// The counters so far, with the extractors' own.
    pub fn stats(&self) -> PathStats {
        PathStats { extract: self.extractor.stats(), ..self.stats.clone() }
    }

    /// Calls `hit` for every indicator of `set` that `frame` matches.
    pub fn inspect<'s>(
        &mut self,
        frame: &Frame<'_>,
        set: &'s IndicatorSet,
        home: &HomeNet,
        hit: impl FnMut(Hit<'s>),
    ) {
        self.inspect_recording(frame, set, home, hit, &mut |_| {});
    }

    /// [`PacketPath::inspect`], also telling `record` every destination an internal host
    /// contacted (what would be matched, matched or not: the destination history's input).
    pub fn inspect_recording<'s>(
        &mut self,
        frame: &Frame<'_>,
        set: &'s IndicatorSet,
        home: &HomeNet,
        mut hit: impl FnMut(Hit<'s>),
        record: &mut dyn FnMut(Contacted<'_>),
    ) {
        let Some(packet) = self.decode(frame) else { return };
        let now_ms = frame.ts_ns / 1_000_000;
        let mut hits = 0;
        self.whole(&packet, now_ms, |extractor, packet| {
            matches(extractor, set, home, packet, now_ms, record, &mut |h| {
                hits += 1;
                hit(h);
            });
        });
        self.stats.hits += hits;
    }

    /// [`PacketPath::inspect`] of a packet already decoded (a fragment is reassembled first).
    /// Frames should go through `inspect`, which counts them; this is the rest of the path.
    pub fn inspect_decoded<'s>(
        &mut self,
        packet: &Decoded<'_>,
        now_ms: i64,
        set: &'s IndicatorSet,
        home: &HomeNet,
        mut hit: impl FnMut(Hit<'s>),
    ) {
        let mut hits = 0;
        self.whole(packet, now_ms, |extractor, packet| {
            matches(extractor, set, home, packet, now_ms, &mut |_| {}, &mut |h| {
                hits += 1;
                hit(h);
            });
        });
        self.stats.hits += hits;
    }

    /// Calls `each` with every observation of `frame` and the (reassembled) packet it came
    /// from, matched or not.
    pub fn observe(&mut self, frame: &Frame<'_>, mut each: impl FnMut(&Decoded<'_>, Observation<'_>)) {
        let Some(packet) = self.decode(frame) else { return };
        let now_ms = frame.ts_ns / 1_000_000;
        self.whole(&packet, now_ms, |extractor, packet| {
            extractor.extract(packet, now_ms, |o| each(packet, o));
        });
    }

    /// Counts `frame` and decodes it; an undecodable frame is counted by its reason.
    fn decode<'f>(&mut self, frame: &Frame<'f>) -> Option<Decoded<'f>> {
        self.stats.packets += 1;
        let Some(link) = frame.link else {
            *self.stats.undecodable.entry("unsupported_link").or_default() += 1;
            return None;
        };
        match decode(link, frame.data) {
            Ok(packet) => Some(packet),
            Err(e) => {
                *self.stats.undecodable.entry(e.counter_name()).or_default() += 1;
                None
            }
        }
    }

    /// Calls `then` with the whole packet: `packet` itself, or the datagram a fragment
    /// completes (nothing for a fragment that completes none).
    fn whole(&mut self, packet: &Decoded<'_>, now_ms: i64, then: impl FnOnce(&mut Extractor, &Decoded<'_>)) {
        if let Transport::Fragment { .. } = packet.transport {
            if let Some(whole) = self.extractor.defragment(packet, now_ms)
                && let Ok(packet) = whole.decoded()
            {
                then(&mut self.extractor, &packet);
            }
            return;
        }
        then(&mut self.extractor, packet);
    }
}

/// A destination an internal host contacted, as the packet path judged it.
#[derive(Debug, Clone, Copy)]
pub struct Contacted<'a> {
    pub via: Via,
    pub value: Value<'a>,
    pub host: IpAddr,
}

/// The hits of one whole packet: each observation judged by its own direction.
fn matches<'s>(
    extractor: &mut Extractor,
    set: &'s IndicatorSet,
    home: &HomeNet,
    packet: &Decoded<'_>,
    now_ms: i64,
    record: &mut dyn FnMut(Contacted<'_>),
    hit: &mut impl FnMut(Hit<'s>),
) {
    let proto = packet.transport.proto_name();
    // Hits are gathered first (allocating only when there is one) so the passive-DNS cache can
    // be asked about matched addresses once extraction has let go of it.
    let mut found_hits: Vec<Hit<'s>> = Vec::new();
    extractor.extract(packet, now_ms, |observation| {
        let Observation::Seen { via, value, towards } = observation else { return };
        let (host, remote, remote_port) = match towards {
            Towards::Server => (packet.src, packet.dst, packet.transport.dst_port()),
            Towards::Client => (packet.dst, packet.src, packet.transport.src_port()),
        };
        if !home.is_internal(host) {
            return;
        }
        let external = home.is_external(remote);
        if !matches!(via, Via::DnsQuery | Via::DnsAnswer) && !external {
            return;
        }
        record(Contacted { via, value, host });
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
            found_hits.push(Hit {
                indicator,
                via,
                observed: value.to_string(),
                host,
                remote: external.then_some(remote),
                remote_port,
                proto,
                resolved_name: None,
            });
        }
    });
    for mut h in found_hits {
        if h.via == Via::IpDst {
            h.resolved_name = extractor.resolved_name(packet.dst).map(str::to_owned);
        }
        hit(h);
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

#[cfg(test)]
mod tests {
    use super::*;
    use zdn_indicators::parse_plain;

    fn udp<'a>(src: &str, dst: &str, src_port: u16, dst_port: u16, payload: &'a [u8]) -> Decoded<'a> {
        Decoded {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            transport: Transport::Udp { src_port, dst_port, payload },
        }
    }

    fn message(response: bool, answer: Option<[u8; 4]>) -> Vec<u8> {
        let mut m = vec![
            0x12,
            0x34,
            if response { 0x81 } else { 0x01 },
            0,
            0,
            1,
            0,
            u8::from(answer.is_some()),
            0,
            0,
            0,
            0,
        ];
        m.extend_from_slice(b"\x03www\x04evil\x07example\x00\x00\x01\x00\x01");
        if let Some(ip) = answer {
            m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            m.extend_from_slice(&ip);
        }
        m
    }

    fn hits(
        set: &IndicatorSet,
        home: &HomeNet,
        packet: &Decoded<'_>,
    ) -> Vec<(Via, String, IpAddr, Option<IpAddr>)> {
        let mut out = Vec::new();
        PacketPath::default()
            .inspect_decoded(packet, 0, set, home, |h| out.push((h.via, h.observed, h.host, h.remote)));
        out
    }

    #[test]
    fn queries_and_answers_count_for_the_internal_client_and_internal_peers_stay_unnamed() {
        let set = IndicatorSet::new(parse_plain("t", "evil.example\n203.0.113.66\n").indicators);
        let home = HomeNet::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let client: IpAddr = "10.1.1.1".parse().unwrap();
        // A query to the internal resolver: a hit for the client; the resolver is not named.
        let query = message(false, None);
        assert_eq!(
            hits(&set, &home, &udp("10.1.1.1", "10.0.0.53", 40000, 53, &query)),
            [(Via::DnsQuery, "www.evil.example".into(), client, None)]
        );
        // The answer coming back: the listed address, for the client it goes to.
        let response = message(true, Some([203, 0, 113, 66]));
        let found = hits(&set, &home, &udp("10.0.0.53", "10.1.1.1", 53, 40000, &response));
        assert_eq!(found, [(Via::DnsAnswer, "203.0.113.66".into(), client, None)]);
        // From a public resolver, the resolver is the remote end.
        let found = hits(&set, &home, &udp("9.9.9.9", "10.1.1.1", 53, 40000, &response));
        assert_eq!(found[0].3, Some("9.9.9.9".parse().unwrap()));
        // The client then connects to the address: the sighting says which name it came from.
        let only_ip = IndicatorSet::new(parse_plain("t", "203.0.113.66\n").indicators);
        let mut path = PacketPath::default();
        path.inspect_decoded(&udp("10.0.0.53", "10.1.1.1", 53, 40000, &response), 0, &only_ip, &home, |_| {});
        let syn = Decoded {
            transport: Transport::Tcp { src_port: 40001, dst_port: 443, seq: 0, flags: 0x02, payload: &[] },
            ..udp("10.1.1.1", "203.0.113.66", 0, 0, &[])
        };
        let mut resolved = Vec::new();
        path.inspect_decoded(&syn, 1, &only_ip, &home, |h| resolved.push(h.resolved_name));
        assert_eq!(resolved, [Some("www.evil.example".to_owned())]);
        // An internal resolver asking upstream from port 53 is a query, counted for it.
        let upstream = udp("10.0.0.53", "9.9.9.9", 53, 53, &query);
        assert_eq!(hits(&set, &home, &upstream)[0].2, "10.0.0.53".parse::<IpAddr>().unwrap());
        // Traffic between internal hosts is not outbound.
        let syn = Decoded {
            transport: Transport::Tcp { src_port: 1, dst_port: 443, seq: 0, flags: 0x02, payload: &[] },
            ..udp("10.1.1.1", "10.2.2.2", 0, 0, &[])
        };
        assert!(hits(&IndicatorSet::new(parse_plain("t", "10.2.2.2\n").indicators), &home, &syn).is_empty());
    }

    #[test]
    fn a_dns_answer_over_tcp_counts_for_the_client_it_goes_to() {
        let set = IndicatorSet::new(parse_plain("t", "203.0.113.66\n").indicators);
        let home = HomeNet::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let response = message(true, Some([203, 0, 113, 66]));
        let mut framed = u16::try_from(response.len()).unwrap().to_be_bytes().to_vec();
        framed.extend_from_slice(&response);
        let answer_from = |resolver: &str| Decoded {
            src: resolver.parse().unwrap(),
            dst: "10.1.1.1".parse().unwrap(),
            transport: Transport::Tcp {
                src_port: 53,
                dst_port: 40000,
                seq: 1,
                flags: 0x18,
                payload: &framed,
            },
        };
        let client: IpAddr = "10.1.1.1".parse().unwrap();
        // From the internal resolver: the client's sighting, the resolver unnamed.
        assert_eq!(
            hits(&set, &home, &answer_from("10.0.0.53")),
            [(Via::DnsAnswer, "203.0.113.66".into(), client, None)]
        );
        // From a public resolver: still the client's, with the resolver as the remote end.
        assert_eq!(
            hits(&set, &home, &answer_from("9.9.9.9")),
            [(Via::DnsAnswer, "203.0.113.66".into(), client, Some("9.9.9.9".parse().unwrap()))]
        );
    }
}
