//! From a decoded packet to indicator hits: which observables it carries, and whether the
//! indicator set knows them.
//!
//! Direction: traffic from `home_net` counts; destination addresses are matched only when the
//! destination lies outside `home_net` (outbound), while DNS query names are matched whatever
//! the resolver's address, because gateways usually ask an internal resolver. An empty
//! `home_net` treats every source as internal and every destination as external (replay of a
//! capture from an unknown network).
//!
//! The common case (no hit) allocates nothing; a hit allocates its observed value once.

use crate::decode::{Decoded, Transport};
use crate::dns;
use ipnet::IpNet;
use std::net::IpAddr;
use zdn_indicators::set::Match;
use zdn_indicators::{IndicatorSet, Via};

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
    /// What was seen: the address, `address:port`, or the full query name.
    pub observed: String,
}

/// Counters of what inspection saw but could not use.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct InspectStats {
    pub dns_queries: u64,
    pub dns_malformed: u64,
}

const DNS_PORT: u16 = 53;

/// Calls `hit` for every indicator `packet` matches.
pub fn inspect<'s>(
    set: &'s IndicatorSet,
    home: &HomeNet,
    packet: &Decoded<'_>,
    stats: &mut InspectStats,
    mut hit: impl FnMut(Hit<'s>),
) {
    if !home.is_internal(packet.src) {
        return;
    }
    let t = &packet.transport;
    // Destinations: connection attempts, UDP, ICMP. Later TCP segments of the same connection
    // add nothing the SYN did not say.
    let attempt = t.is_tcp_syn() || matches!(t, Transport::Udp { .. } | Transport::Icmp);
    if attempt && home.is_external(packet.dst) {
        let port = t.dst_port();
        if port != 0
            && let Some(ind) = set.match_ip_port(packet.dst, port)
        {
            let observed = std::net::SocketAddr::new(packet.dst, port).to_string();
            hit(Hit { indicator: ind, via: Via::IpDst, observed });
        }
        if let Some(ind) = set.match_ip(packet.dst) {
            hit(Hit { indicator: ind, via: Via::IpDst, observed: packet.dst.to_string() });
        }
    }
    let dns_payload = match *t {
        Transport::Udp { dst_port: DNS_PORT, payload, .. } => Some(payload),
        // DNS over TCP: a two-byte length, then the message (first message of a segment only;
        // stream reassembly arrives with the TCP reassembler).
        Transport::Tcp { dst_port: DNS_PORT, payload, .. } if payload.len() > 2 => Some(&payload[2..]),
        _ => None,
    };
    if let Some(msg) = dns_payload {
        let result = dns::for_each_query_name(msg, |name| {
            stats.dns_queries += 1;
            if let Some(ind) = set.match_domain(name) {
                hit(Hit { indicator: ind, via: Via::DnsQuery, observed: name.to_owned() });
            }
        });
        if matches!(result, Err(e) if e != dns::DnsError::NotQuery) {
            stats.dns_malformed += 1;
        }
    }
}
