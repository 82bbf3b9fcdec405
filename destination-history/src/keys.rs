//! Which keys an observation records and which an indicator looks up.
//!
//! Every key is SipHash-2-4 under the agent's secret of a tag byte and the value's bytes, so
//! kinds cannot collide with each other. What makes an indicator's matching semantics work on
//! hashes is what is recorded:
//! - a name records itself exactly (`=`) and itself and each parent of two labels or more
//!   (`.`): a domain indicator looks up `.` and finds its subdomains, an exact-only one `=`;
//! - an address records itself and its prefixes (IPv4 /24 and /16, IPv6 /64 and /48): a
//!   network indicator looks up the prefixes it covers, or its addresses when it is narrower
//!   than a /24 (a /64) — at most [`MAX_EXPANSION`] keys; a wider network cannot be hunted
//!   (IPv6 between /64 and /120 is looked up by its /64, which may over-report);
//! - a URL records itself, without its query, and its path with and without the query, as
//!   the live matcher tries them.

use ipnet::IpNet;
use siphasher::sip::SipHasher24;
use std::hash::Hasher;
use std::net::IpAddr;

/// One keyed hash.
pub type Key = u64;

/// Keys an indicator may expand to at most (a network's prefixes or addresses).
pub const MAX_EXPANSION: usize = 256;

/// Parents of a name recorded at most (the name's own label count, bounded).
const MAX_PARENTS: usize = 8;

const EXACT_NAME: u8 = b'=';
const NAME_OR_PARENT: u8 = b'.';
const ADDRESS: u8 = b'a';
const ADDRESS_PORT: u8 = b'p';
const URL: u8 = b'u';
const JA3: u8 = b'3';
const JA4: u8 = b'4';
/// A prefix: the tag is this plus the prefix length.
const PREFIX: u8 = b'/';
/// Anything else the owner of the key needs a keyed hash of (never recorded).
const LABEL: u8 = b'#';

/// What the packet path saw, as the history records it.
#[derive(Debug, Clone, Copy)]
pub enum Observed<'a> {
    Name(&'a str),
    Address(IpAddr),
    AddressPort(IpAddr, u16),
    /// `host/path?query`, as the HTTP extractor gives it.
    Url(&'a str),
    Ja3(&'a str),
    Ja4(&'a str),
}

/// What an indicator asks of the history.
#[derive(Debug, Clone)]
pub enum Probe {
    /// A domain and its subdomains, or (`exact`) the name only.
    Domain {
        name: String,
        exact: bool,
    },
    Address(IpAddr),
    Network(IpNet),
    AddressPort(IpAddr, u16),
    Url(String),
    Ja3(String),
    Ja4(String),
}

/// The keyed hash under one agent's secret.
#[derive(Clone)]
pub struct Keyer {
    k0: u64,
    k1: u64,
}

impl Keyer {
    pub fn new(secret: [u8; 16]) -> Keyer {
        let (a, b) = secret.split_at(8);
        Keyer {
            k0: u64::from_le_bytes(a.try_into().expect("8 bytes")),
            k1: u64::from_le_bytes(b.try_into().expect("8 bytes")),
        }
    }

    fn key(&self, tag: u8, parts: &[&[u8]]) -> Key {
        let mut h = SipHasher24::new_with_keys(self.k0, self.k1);
        h.write_u8(tag);
        for part in parts {
            h.write(part);
        }
        h.finish()
    }

    /// A keyed hash of `text` that no recorded key can equal (for ids derived from the secret).
    pub fn of_label(&self, text: &str, salt: u8) -> Key {
        self.key(LABEL, &[&[salt], text.as_bytes()])
    }

    /// The keys `observed` records, each once, into `out`.
    pub fn of_observation(&self, observed: Observed<'_>, out: &mut Vec<Key>) {
        match observed {
            Observed::Name(name) => {
                out.push(self.key(EXACT_NAME, &[name.as_bytes()]));
                let mut rest = name;
                for _ in 0..MAX_PARENTS {
                    if !rest.contains('.') {
                        break;
                    }
                    out.push(self.key(NAME_OR_PARENT, &[rest.as_bytes()]));
                    rest = rest.split_once('.').map_or("", |(_, parent)| parent);
                }
            }
            Observed::Address(ip) => {
                let ip = ip.to_canonical();
                out.push(self.address(ip));
                for len in prefixes(ip) {
                    out.push(self.prefix(IpNet::new(ip, *len).expect("valid length").trunc()));
                }
            }
            Observed::AddressPort(ip, port) => out.push(self.address_port(ip.to_canonical(), port)),
            Observed::Url(url) => {
                let without_query = url.split_once('?').map_or(url, |(u, _)| u);
                let path_at = url.find('/').unwrap_or(url.len());
                let (path, bare) = (&url[path_at..], &without_query[path_at.min(without_query.len())..]);
                let start = out.len();
                for candidate in [url, without_query, path, bare] {
                    let key = self.key(URL, &[candidate.as_bytes()]);
                    if candidate.len() > 1 && !out[start..].contains(&key) {
                        out.push(key);
                    }
                }
            }
            Observed::Ja3(text) => out.push(self.key(JA3, &[text.as_bytes()])),
            Observed::Ja4(text) => out.push(self.key(JA4, &[text.as_bytes()])),
        }
    }

    /// The keys whose presence in the history means `probe` was contacted; empty when it
    /// cannot be hunted (a network wider than [`MAX_EXPANSION`] prefixes).
    pub fn of_probe(&self, probe: &Probe) -> Vec<Key> {
        match probe {
            Probe::Domain { name, exact: true } => vec![self.key(EXACT_NAME, &[name.as_bytes()])],
            Probe::Domain { name, exact: false } => vec![self.key(NAME_OR_PARENT, &[name.as_bytes()])],
            Probe::Address(ip) => vec![self.address(ip.to_canonical())],
            Probe::AddressPort(ip, port) => vec![self.address_port(ip.to_canonical(), *port)],
            Probe::Network(net) => self.of_network(net.trunc()),
            Probe::Url(url) => vec![self.key(URL, &[url.as_bytes()])],
            Probe::Ja3(text) => vec![self.key(JA3, &[text.as_bytes()])],
            Probe::Ja4(text) => vec![self.key(JA4, &[text.as_bytes()])],
        }
    }

    fn of_network(&self, net: IpNet) -> Vec<Key> {
        let len = net.prefix_len();
        let stored = prefixes(net.addr());
        if len == net.max_prefix_len() {
            return vec![self.address(net.addr())];
        }
        if stored.contains(&len) {
            return vec![self.prefix(net)];
        }
        // The narrowest stored prefix wider than the network: the network is looked up by it
        // (IPv6 only: over-reports within it). Else the network's own parts at the next stored
        // length, or its addresses below the narrowest.
        match stored.iter().copied().filter(|s| *s > len).min() {
            Some(next) => match net.subnets(next) {
                Ok(parts) if (next - len) <= 8 => parts.map(|p| self.prefix(p)).collect(),
                _ => Vec::new(),
            },
            None if net.max_prefix_len() - len <= 8 => {
                net.hosts_inclusive().map(|ip| self.address(ip)).collect()
            }
            None if net.addr().is_ipv6() => {
                let narrowest = *stored.iter().max().expect("IPv6 stores prefixes");
                vec![self.prefix(IpNet::new(net.addr(), narrowest).expect("valid").trunc())]
            }
            None => Vec::new(),
        }
    }

    fn address(&self, ip: IpAddr) -> Key {
        match ip {
            IpAddr::V4(v4) => self.key(ADDRESS, &[&v4.octets()]),
            IpAddr::V6(v6) => self.key(ADDRESS, &[&v6.octets()]),
        }
    }

    fn address_port(&self, ip: IpAddr, port: u16) -> Key {
        match ip {
            IpAddr::V4(v4) => self.key(ADDRESS_PORT, &[&v4.octets(), &port.to_be_bytes()]),
            IpAddr::V6(v6) => self.key(ADDRESS_PORT, &[&v6.octets(), &port.to_be_bytes()]),
        }
    }

    fn prefix(&self, net: IpNet) -> Key {
        let len = [net.prefix_len()];
        match net.addr() {
            IpAddr::V4(v4) => self.key(PREFIX, &[&len, &v4.octets()]),
            IpAddr::V6(v6) => self.key(PREFIX, &[&len, &v6.octets()]),
        }
    }
}

/// The prefix lengths an address records.
fn prefixes(ip: IpAddr) -> &'static [u8] {
    if ip.is_ipv4() { &[16, 24] } else { &[48, 64] }
}

/// `IpNet::hosts` without skipping network and broadcast addresses.
trait HostsInclusive {
    fn hosts_inclusive(&self) -> Box<dyn Iterator<Item = IpAddr>>;
}

impl HostsInclusive for IpNet {
    fn hosts_inclusive(&self) -> Box<dyn Iterator<Item = IpAddr>> {
        let max = self.max_prefix_len();
        match self.subnets(max) {
            Ok(all) => Box::new(all.map(|n| n.addr())),
            Err(_) => Box::new(std::iter::empty()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(keyer: &Keyer, observed: Observed<'_>) -> Vec<Key> {
        let mut out = Vec::new();
        keyer.of_observation(observed, &mut out);
        out
    }

    fn found(keyer: &Keyer, probe: Probe, observed: Observed<'_>) -> bool {
        let keys = recorded(keyer, observed);
        keyer.of_probe(&probe).iter().any(|k| keys.contains(k))
    }

    #[test]
    fn lookups_follow_the_matchers_semantics() {
        let k = Keyer::new([7; 16]);
        let domain = |name: &str, exact| Probe::Domain { name: name.into(), exact };
        assert!(found(&k, domain("evil.example", false), Observed::Name("cdn.evil.example")));
        assert!(found(&k, domain("evil.example", false), Observed::Name("evil.example")));
        assert!(!found(&k, domain("evil.example", true), Observed::Name("cdn.evil.example")));
        assert!(found(&k, domain("evil.example", true), Observed::Name("evil.example")));
        assert!(!found(&k, domain("vil.example", false), Observed::Name("evil.example")));
        let ip = |s: &str| Observed::Address(s.parse().unwrap());
        let net = |s: &str| Probe::Network(s.parse().unwrap());
        for (network, inside, outside) in [
            ("203.0.113.0/24", "203.0.113.66", "203.0.114.1"),
            ("203.0.113.64/26", "203.0.113.66", "203.0.113.1"),
            ("203.0.112.0/20", "203.0.113.66", "203.0.128.1"),
            ("10.0.0.0/12", "10.15.1.1", "10.16.0.1"),
            ("2001:db8::/48", "2001:db8::1", "2001:db9::1"),
            ("2001:db8:0:1::/64", "2001:db8:0:1::5", "2001:db8:0:2::5"),
            ("2001:db8::/56", "2001:db8:0:ff::1", "2001:db8:1::1"),
        ] {
            assert!(found(&k, net(network), ip(inside)), "{network} holds {inside}");
            assert!(!found(&k, net(network), ip(outside)), "{network} does not hold {outside}");
        }
        assert!(k.of_probe(&net("10.0.0.0/4")).is_empty(), "too wide to hunt");
        let addr = "198.51.100.23".parse().unwrap();
        assert!(found(&k, Probe::AddressPort(addr, 8443), Observed::AddressPort(addr, 8443)));
        assert!(!found(&k, Probe::AddressPort(addr, 443), Observed::AddressPort(addr, 8443)));
        assert!(found(&k, Probe::Address(addr), Observed::Address("::ffff:198.51.100.23".parse().unwrap())));
        for url in ["evil.example/gate.php?id=1", "evil.example/gate.php", "/gate.php", "/gate.php?id=1"] {
            assert!(found(&k, Probe::Url(url.into()), Observed::Url("evil.example/gate.php?id=1")), "{url}");
        }
        // Another agent's secret gives other keys.
        let other = Keyer::new([8; 16]);
        assert_ne!(
            recorded(&k, Observed::Name("evil.example")),
            recorded(&other, Observed::Name("evil.example"))
        );
    }

    #[test]
    fn every_network_lookup_agrees_with_containment_on_random_addresses() {
        use rand::Rng;
        let k = Keyer::new([3; 16]);
        let mut rng = rand::rng();
        for _ in 0..300 {
            let base: u32 = rng.random();
            let len = rng.random_range(8..=32u8);
            let net = IpNet::new(IpAddr::V4(base.into()), len).unwrap().trunc();
            let keys = k.of_probe(&Probe::Network(net));
            assert!(!keys.is_empty() && keys.len() <= MAX_EXPANSION, "{net}: {} keys", keys.len());
            for _ in 0..20 {
                let ip = if rng.random_bool(0.5) {
                    let host_bits = 32 - u32::from(len);
                    let offset = if host_bits == 0 { 0 } else { rng.random::<u32>() >> (32 - host_bits) };
                    IpAddr::V4(
                        (u32::from_be_bytes(match net.addr() {
                            IpAddr::V4(v) => v.octets(),
                            _ => unreachable!(),
                        }) | offset)
                            .into(),
                    )
                } else {
                    IpAddr::V4(rng.random::<u32>().into())
                };
                let recorded = recorded(&k, Observed::Address(ip));
                let hit = keys.iter().any(|key| recorded.contains(key));
                assert_eq!(hit, net.contains(&ip), "{net} and {ip}");
            }
        }
    }
}
