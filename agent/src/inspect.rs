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

use ipnet::IpNet;
use std::net::IpAddr;
use zdn_dissect::decode::{Decoded, Transport};
use zdn_dissect::extract::{ExtractStats, Extractor, Observation, Value};
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
    /// The internal host: the source of outbound traffic, the client a DNS answer goes to.
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

/// Matches a packet's observables against the set; holds the extraction state (reassembly of
/// client streams) of one capture worker.
#[derive(Default)]
pub struct Inspector {
    extractor: Extractor,
}

impl Inspector {
    /// Calls `hit` for every indicator `packet` matches. Outbound only: the source must be
    /// internal, and the destination external — except for DNS, which counts whatever
    /// resolver is asked: query names on the way out, answers (addresses, aliases) on the way
    /// back to the internal client.
    pub fn inspect<'s>(
        &mut self,
        set: &'s IndicatorSet,
        home: &HomeNet,
        packet: &Decoded<'_>,
        now_ms: i64,
        mut hit: impl FnMut(Hit<'s>),
    ) {
        if let Transport::Fragment { .. } = packet.transport {
            if let Some(whole) = self.extractor.defragment(packet, now_ms)
                && let Ok(packet) = whole.decoded()
            {
                self.inspect_whole(set, home, &packet, now_ms, &mut hit);
            }
            return;
        }
        self.inspect_whole(set, home, packet, now_ms, &mut hit);
    }

    /// [`Inspector::inspect`] of a packet that is not a fragment.
    fn inspect_whole<'s>(
        &mut self,
        set: &'s IndicatorSet,
        home: &HomeNet,
        packet: &Decoded<'_>,
        now_ms: i64,
        hit: &mut impl FnMut(Hit<'s>),
    ) {
        let proto = packet.transport.proto_name();
        // A resolver talking to another from port 53 to port 53 is asking, not answering.
        let answer =
            matches!(packet.transport, Transport::Udp { src_port: 53, dst_port, .. } if dst_port != 53);
        let (host, remote, remote_port) = if answer {
            (packet.dst, packet.src, packet.transport.src_port())
        } else {
            (packet.src, packet.dst, packet.transport.dst_port())
        };
        if !home.is_internal(host) {
            return;
        }
        let external = home.is_external(remote);
        let remote = external.then_some(remote);
        // Hits are gathered first (allocating only when there is one) so the passive-DNS cache
        // can be asked about matched addresses once extraction has let go of it.
        let mut found_hits: Vec<Hit<'s>> = Vec::new();
        self.extractor.extract(packet, now_ms, |observation| {
            let Observation::Seen { via, value } = observation else { return };
            if !matches!(via, Via::DnsQuery | Via::DnsAnswer) && (!external || answer) {
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
                let observed = value.to_string();
                let resolved_name = None;
                found_hits.push(Hit {
                    indicator,
                    via,
                    observed,
                    host,
                    remote,
                    remote_port,
                    proto,
                    resolved_name,
                });
            }
        });
        for mut h in found_hits {
            if h.via == Via::IpDst {
                h.resolved_name = self.extractor.resolved_name(packet.dst).map(str::to_owned);
            }
            hit(h);
        }
    }

    pub fn stats(&self) -> ExtractStats {
        self.extractor.stats()
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
        Inspector::default()
            .inspect(set, home, packet, 0, |h| out.push((h.via, h.observed, h.host, h.remote)));
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
        let mut inspector = Inspector::default();
        inspector.inspect(&only_ip, &home, &udp("10.0.0.53", "10.1.1.1", 53, 40000, &response), 0, |_| {});
        let syn = Decoded {
            transport: Transport::Tcp { src_port: 40001, dst_port: 443, seq: 0, flags: 0x02, payload: &[] },
            ..udp("10.1.1.1", "203.0.113.66", 0, 0, &[])
        };
        let mut resolved = Vec::new();
        inspector.inspect(&only_ip, &home, &syn, 1, |h| resolved.push(h.resolved_name));
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
}
