//! [`IndicatorSet`]: the immutable matcher the agent consults for every observable.
//!
//! One hash table per kind, keyed by the parsed value, so a lookup hashes an address or a name
//! once and never allocates. Domains are matched with a parent walk: `a.b.evil.example` tries
//! itself, then `b.evil.example`, then `evil.example`, stopping at the first hit, so a domain
//! indicator covers its subdomains. The set is built once and shared read-only (`Arc`), which
//! is what lets a future hot swap (issue "indicator engine") happen without locks.

use crate::model::{Indicator, Kind};
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Default)]
pub struct IndicatorSet {
    indicators: Vec<Indicator>,
    addresses: HashMap<IpAddr, u32>,
    ip_ports: HashMap<SocketAddr, u32>,
    /// Longest prefix first, so the first containing network is the most specific.
    networks: Vec<(IpNet, u32)>,
    domains: HashMap<Box<str>, u32>,
    /// URLs, JA3 and JA4 are matched by exact canonical text, one table each.
    urls: HashMap<Box<str>, u32>,
    ja3: HashMap<Box<str>, u32>,
    ja4: HashMap<Box<str>, u32>,
}

impl IndicatorSet {
    /// Builds the matcher. Values must be canonical (as [`crate::normalise`] returns them);
    /// when two indicators have the same kind and value, the first is kept.
    pub fn new(indicators: Vec<Indicator>) -> IndicatorSet {
        let mut set = IndicatorSet::default();
        for ind in indicators {
            let idx = set.indicators.len() as u32;
            let fresh = match ind.kind {
                Kind::Ipv4 | Kind::Ipv6 => match ind.value.parse::<IpAddr>() {
                    Ok(ip) => insert_new(&mut set.addresses, ip, idx),
                    Err(_) => false,
                },
                Kind::IpPort => match ind.value.parse::<SocketAddr>() {
                    Ok(sa) => insert_new(&mut set.ip_ports, sa, idx),
                    Err(_) => false,
                },
                Kind::Cidr => match ind.value.parse::<IpNet>() {
                    Ok(net) if !set.networks.iter().any(|(n, _)| *n == net) => {
                        set.networks.push((net, idx));
                        true
                    }
                    _ => false,
                },
                Kind::Domain => insert_new(&mut set.domains, ind.value.as_str().into(), idx),
                Kind::Url => insert_new(&mut set.urls, ind.value.as_str().into(), idx),
                Kind::Ja3 => insert_new(&mut set.ja3, ind.value.as_str().into(), idx),
                Kind::Ja4 => insert_new(&mut set.ja4, ind.value.as_str().into(), idx),
            };
            if fresh {
                set.indicators.push(ind);
            }
        }
        set.networks.sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));
        set
    }

    pub fn len(&self) -> usize {
        self.indicators.len()
    }

    pub fn is_empty(&self) -> bool {
        self.indicators.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Indicator> {
        self.indicators.iter()
    }

    /// An exact address indicator, else the most specific network containing `ip`.
    pub fn match_ip(&self, ip: IpAddr) -> Option<&Indicator> {
        let ip = ip.to_canonical();
        if let Some(&i) = self.addresses.get(&ip) {
            return Some(&self.indicators[i as usize]);
        }
        self.networks.iter().find(|(net, _)| net.contains(&ip)).map(|&(_, i)| &self.indicators[i as usize])
    }

    pub fn match_ip_port(&self, ip: IpAddr, port: u16) -> Option<&Indicator> {
        let key = SocketAddr::new(ip.to_canonical(), port);
        self.ip_ports.get(&key).map(|&i| &self.indicators[i as usize])
    }

    /// `name` must be lower-case without a trailing dot (as the agent's extractors give it).
    /// Matches the name itself, else its closest parent domain that is not exact-only.
    pub fn match_domain(&self, name: &str) -> Option<&Indicator> {
        if let Some(&i) = self.domains.get(name) {
            return Some(&self.indicators[i as usize]);
        }
        let mut rest = name;
        while let Some(dot) = rest.find('.') {
            rest = &rest[dot + 1..];
            if let Some(&i) = self.domains.get(rest) {
                let ind = &self.indicators[i as usize];
                if !ind.exact_only {
                    return Some(ind);
                }
            }
        }
        None
    }

    /// URL (canonical `host/path`), JA3 or JA4 by exact canonical text.
    /// Other kinds never match by text and return `None`.
    pub fn match_text(&self, kind: Kind, value: &str) -> Option<&Indicator> {
        let table = match kind {
            Kind::Url => &self.urls,
            Kind::Ja3 => &self.ja3,
            Kind::Ja4 => &self.ja4,
            _ => return None,
        };
        table.get(value).map(|&i| &self.indicators[i as usize])
    }
}

fn insert_new<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u32>, key: K, idx: u32) -> bool {
    match map.entry(key) {
        std::collections::hash_map::Entry::Occupied(_) => false,
        std::collections::hash_map::Entry::Vacant(v) => {
            v.insert(idx);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::parse_plain;

    fn set(text: &str) -> IndicatorSet {
        IndicatorSet::new(parse_plain("test", text).indicators)
    }

    #[test]
    fn matches_every_kind_and_nothing_else() {
        let s = set(
            "evil.example\n203.0.113.9\n10.0.0.0/8\n10.1.0.0/16\n198.51.100.1:8443\n2001:db8::1\nevil.example/x.exe\n",
        );
        assert_eq!(s.len(), 7);
        assert_eq!(s.match_domain("evil.example").unwrap().value, "evil.example");
        assert_eq!(s.match_domain("a.b.evil.example").unwrap().value, "evil.example");
        assert!(s.match_domain("notevil.example").is_none());
        assert!(s.match_domain("example").is_none());
        assert_eq!(s.match_ip("203.0.113.9".parse().unwrap()).unwrap().value, "203.0.113.9");
        assert_eq!(s.match_ip("::ffff:203.0.113.9".parse().unwrap()).unwrap().value, "203.0.113.9");
        assert_eq!(s.match_ip("10.1.2.3".parse().unwrap()).unwrap().value, "10.1.0.0/16");
        assert_eq!(s.match_ip("10.2.2.3".parse().unwrap()).unwrap().value, "10.0.0.0/8");
        assert!(s.match_ip("203.0.113.10".parse().unwrap()).is_none());
        assert_eq!(s.match_ip("2001:db8::1".parse().unwrap()).unwrap().kind, Kind::Ipv6);
        assert!(s.match_ip_port("198.51.100.1".parse().unwrap(), 8443).is_some());
        assert!(s.match_ip_port("198.51.100.1".parse().unwrap(), 443).is_none());
        assert!(s.match_text(Kind::Url, "evil.example/x.exe").is_some());
        assert!(s.match_text(Kind::Url, "evil.example/y.exe").is_none());
    }

    #[test]
    fn exact_only_domains_do_not_cover_subdomains() {
        let mut loaded = parse_plain("test", "evil.example\n").indicators;
        loaded[0].exact_only = true;
        let s = IndicatorSet::new(loaded);
        assert!(s.match_domain("evil.example").is_some());
        assert!(s.match_domain("www.evil.example").is_none());
    }
}
