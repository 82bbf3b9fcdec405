//! Longest-prefix matching for CIDR indicators.
//!
//! The real trails hold thousands of IPv4 networks, so a linear scan would cost microseconds
//! on every miss — and nearly every packet is a miss. Instead:
//! - a 65,536-bit gate (8 KB) marks each /16 that any IPv4 network touches; an address whose
//!   /16 is unmarked cannot be in a network, which settles most misses with one bit test;
//! - each marked /16 has a [`Slot`] (found through a table of 65,536 slot numbers, 256 KB
//!   once any IPv4 network is listed — one load instead of a rank computation): the most specific network of /16 or wider covering it, a 256-bit map of the
//!   /24s that longer networks touch, and which of the longer prefix lengths occur in it. An
//!   address in an untouched /24 — a miss next to a listed network, the common case — is
//!   settled without a hash probe;
//! - behind that, one hash map per prefix length from network address to entry, probed only
//!   for the lengths the slot has, longest first.
//!
//! IPv6 networks are fewer in feeds; they get one hash map per prefix length that occurs,
//! probed longest first, so a lookup costs one probe per distinct length (a handful in real
//! feeds) whatever the number of networks.

use super::HASH;
use hashbrown::HashMap;
use ipnet::{IpNet, Ipv4Net};
use std::net::IpAddr;

/// One bit per IPv4 /16: set where some indicator lives. 8 KB once used, nothing before.
#[derive(Debug, Default, Clone)]
pub(crate) struct Gate(Vec<u64>);

impl Gate {
    /// Marks the /16s from the one holding `first` to the one holding `last`.
    pub(crate) fn mark(&mut self, first: u32, last: u32) {
        if self.0.is_empty() {
            self.0 = vec![0; GATE_WORDS];
        }
        for slot in (first >> 16)..=(last >> 16) {
            self.0[slot as usize / 64] |= 1 << (slot % 64);
        }
    }

    #[inline]
    pub(crate) fn contains(&self, addr: u32) -> bool {
        let slot = (addr >> 16) as usize;
        self.0.get(slot / 64).is_some_and(|w| w & (1 << (slot % 64)) != 0)
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.0.capacity() * 8
    }
}

/// What is known about one marked /16.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// The entry of the most specific network of prefix 16 or shorter covering the /16.
    covering: Option<u32>,
    covering_prefix: u8,
    /// The /24s touched by networks of prefix 17 to 32.
    touched: [u64; 4],
    /// Bit `p - 17` set where a network of prefix `p` (17 to 32) lies in this /16.
    lengths: u16,
}

const NO_SLOT: Slot = Slot { covering: None, covering_prefix: 0, touched: [0; 4], lengths: 0 };

#[derive(Debug, Default)]
pub(crate) struct NetworkTable {
    pub(crate) gate: Gate,
    /// Per /16: its index in `slots`, or [`NO_NETWORK`]. Empty without IPv4 networks.
    slot_of: Vec<u32>,
    slots: Vec<Slot>,
    /// Index `p - 17`: the networks of prefix `p` (17 to 32), network address to entry.
    longer: Vec<HashMap<u32, u32, foldhash::fast::FixedState>>,
    /// IPv6 networks by prefix length, longest first: (prefix, network address → entry).
    v6: Vec<(u8, HashMap<u128, u32, foldhash::fast::FixedState>)>,
}

const GATE_WORDS: usize = 65_536 / 64;

/// In `slot_of`: no IPv4 network touches this /16.
const NO_NETWORK: u32 = u32::MAX;

fn mask(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl NetworkTable {
    /// Builds the table from (network, entry) pairs; the first entry of a repeated network wins.
    pub(crate) fn new(nets: Vec<(IpNet, u32)>) -> NetworkTable {
        let mut table = NetworkTable::default();
        let mut v4: Vec<(Ipv4Net, u32)> = Vec::new();
        let mut v6 = std::collections::BTreeMap::new();
        for (net, entry) in nets {
            match net {
                IpNet::V4(net) => {
                    table.gate.mark(u32::from(net.network()), u32::from(net.broadcast()));
                    v4.push((net, entry));
                }
                IpNet::V6(net) => {
                    let map = v6
                        .entry(std::cmp::Reverse(net.prefix_len()))
                        .or_insert_with(|| HashMap::with_hasher(HASH));
                    map.entry(u128::from(net.network())).or_insert(entry);
                }
            }
        }
        table.v6 = v6
            .into_iter()
            .map(|(std::cmp::Reverse(prefix), mut map)| {
                map.shrink_to_fit();
                (prefix, map)
            })
            .collect();
        if table.gate.0.is_empty() {
            return table;
        }
        table.slot_of = (0..65_536u32)
            .scan(0u32, |marked, slot16| {
                Some(match table.gate.contains(slot16 << 16) {
                    true => {
                        *marked += 1;
                        *marked - 1
                    }
                    false => NO_NETWORK,
                })
            })
            .collect();
        let marked = table.slot_of.iter().filter(|&&s| s != NO_NETWORK).count();
        table.slots = vec![NO_SLOT; marked];
        table.longer = (17..=32).map(|_| HashMap::with_hasher(HASH)).collect();
        for (net, entry) in v4 {
            let (first, prefix) = (u32::from(net.network()), net.prefix_len());
            if prefix <= 16 {
                for slot in (first >> 16)..=(u32::from(net.broadcast()) >> 16) {
                    let at = table.rank(slot).expect("marked above");
                    let s = &mut table.slots[at];
                    if s.covering.is_none() || prefix > s.covering_prefix {
                        (s.covering, s.covering_prefix) = (Some(entry), prefix);
                    }
                }
                continue;
            }
            let map = &mut table.longer[usize::from(prefix - 17)];
            if map.contains_key(&first) {
                continue;
            }
            map.insert(first, entry);
            let at = table.rank(first >> 16).expect("marked above");
            let s = &mut table.slots[at];
            s.lengths |= 1 << (prefix - 17);
            for c24 in ((first >> 8) & 0xff)..=((u32::from(net.broadcast()) >> 8) & 0xff) {
                s.touched[c24 as usize / 64] |= 1 << (c24 % 64);
            }
        }
        table.longer.iter_mut().for_each(HashMap::shrink_to_fit);
        table
    }

    /// The index in `slots` of the /16 `slot`, if a network touches it.
    #[inline]
    fn rank(&self, slot: u32) -> Option<usize> {
        match self.slot_of.get(slot as usize) {
            Some(&at) if at != NO_NETWORK => Some(at as usize),
            _ => None,
        }
    }

    /// The entry of the most specific network containing `ip` (already canonical).
    pub(crate) fn lookup(&self, ip: IpAddr) -> Option<u32> {
        match ip {
            IpAddr::V4(v4) => self.lookup_v4(u32::from(v4)),
            IpAddr::V6(v6) => {
                let addr = u128::from(v6);
                self.v6.iter().find_map(|(prefix, map)| map.get(&(addr & mask128(*prefix))).copied())
            }
        }
    }

    /// The entry of the most specific IPv4 network containing `addr`.
    #[inline]
    pub(crate) fn lookup_v4(&self, addr: u32) -> Option<u32> {
        let slot = &self.slots[self.rank(addr >> 16)?];
        let c24 = (addr >> 8) & 0xff;
        if slot.touched[c24 as usize / 64] & (1 << (c24 % 64)) != 0 {
            let mut lengths = slot.lengths;
            while lengths != 0 {
                let bit = 15 - lengths.leading_zeros() as u8;
                let prefix = 17 + bit;
                if let Some(&entry) = self.longer[usize::from(bit)].get(&(addr & mask(prefix))) {
                    return Some(entry);
                }
                lengths &= !(1 << bit);
            }
        }
        slot.covering
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.gate.heap_bytes()
            + self.slot_of.capacity() * 4
            + self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.longer.iter().map(|m| (m.capacity() * 8 / 7).next_power_of_two() * 9).sum::<usize>()
            + self.v6.iter().map(|(_, m)| (m.capacity() * 8 / 7).next_power_of_two() * 21).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins_and_the_gate_does_not_hide_networks() {
        let nets = [
            "10.0.0.0/8",
            "10.1.0.0/16",
            "10.1.2.0/24",
            "192.168.7.0/24",
            "0.0.0.0/0",
            "2001:db8::/32",
            "2001:db8:1::/48",
        ];
        let table =
            NetworkTable::new(nets.iter().enumerate().map(|(i, n)| (n.parse().unwrap(), i as u32)).collect());
        let at = |ip: &str| table.lookup(ip.parse().unwrap());
        assert_eq!(at("10.1.2.3"), Some(2));
        assert_eq!(at("10.1.9.9"), Some(1));
        assert_eq!(at("10.200.0.1"), Some(0));
        assert_eq!(at("192.168.7.255"), Some(3));
        assert_eq!(at("192.168.8.1"), Some(4), "the default route covers everything else");
        assert_eq!(at("2001:db8:1::5"), Some(6));
        assert_eq!(at("2001:db8:2::5"), Some(5));
        assert_eq!(at("2001:db9::1"), None);
        let only24 = NetworkTable::new(vec![("192.168.7.0/24".parse().unwrap(), 0)]);
        assert_eq!(only24.lookup("192.169.7.1".parse().unwrap()), None);
        assert_eq!(only24.lookup("192.168.6.1".parse().unwrap()), None);
        assert_eq!(NetworkTable::default().lookup("1.2.3.4".parse().unwrap()), None);
        // Prefixes of 17 to 23 touch several /24s; a /32 network is one address.
        let mixed = NetworkTable::new(
            ["172.16.0.0/12", "172.16.128.0/17", "172.16.130.0/23", "172.16.131.9/32", "172.16.131.9/32"]
                .iter()
                .enumerate()
                .map(|(i, n)| (n.parse().unwrap(), i as u32))
                .collect(),
        );
        let at = |ip: &str| mixed.lookup(ip.parse().unwrap());
        assert_eq!(at("172.16.131.9"), Some(3), "the first of a repeated network");
        assert_eq!(at("172.16.131.10"), Some(2));
        assert_eq!(at("172.16.200.1"), Some(1));
        assert_eq!(at("172.16.1.1"), Some(0), "an untouched /24 falls back to the covering /12");
        assert_eq!(at("172.31.255.255"), Some(0));
        assert_eq!(at("172.32.0.0"), None);
    }

    #[test]
    fn agrees_with_a_linear_scan_on_random_networks() {
        // A small linear congruential generator: deterministic, no dependency.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 32) as u32
        };
        // Addresses and networks crowded into a few /16s, so prefixes nest and collide.
        let mut near = || (10 << 24) | ((next() % 4) << 16) | (next() & 0xffff);
        let nets: Vec<(IpNet, u32)> = (0..400u32)
            .map(|i| {
                let prefix = [8, 12, 15, 16, 17, 20, 23, 24, 25, 28, 31, 32][(i % 12) as usize];
                let net = ipnet::Ipv4Net::new(near().into(), prefix).unwrap().trunc();
                (IpNet::V4(net), i)
            })
            .collect();
        let addresses: Vec<IpAddr> = (0..20_000).map(|_| IpAddr::V4(near().into())).collect();
        assert_agrees_with_a_linear_scan(&nets, &addresses);
    }

    /// Each address's lookup gives the longest containing network (among equal networks, the
    /// first listed), as a scan of every network finds it.
    fn assert_agrees_with_a_linear_scan(nets: &[(IpNet, u32)], addresses: &[IpAddr]) {
        let table = NetworkTable::new(nets.to_vec());
        for &ip in addresses {
            let expected = nets
                .iter()
                .filter(|(n, _)| n.contains(&ip))
                .max_by_key(|(n, e)| (n.prefix_len(), std::cmp::Reverse(*e)))
                .map(|&(_, e)| e);
            assert_eq!(table.lookup(ip), expected, "{ip}");
        }
    }

    #[test]
    fn ipv6_agrees_with_a_linear_scan_on_random_networks() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            state >> 16
        };
        // Crowded under two /32s, so prefixes nest; some repeat with other entries.
        let mut near = || {
            ((0x2001_0db8 + u128::from(next() % 2)) << 96)
                | (u128::from(next() % 8) << 80)
                | u128::from(next())
        };
        let nets: Vec<(IpNet, u32)> = (0..600u32)
            .map(|i| {
                let prefix = [0, 29, 32, 36, 48, 56, 64, 80, 96, 127, 128][(i % 11) as usize];
                let net = ipnet::Ipv6Net::new(near().into(), prefix).unwrap().trunc();
                (IpNet::V6(net), i)
            })
            .collect();
        let addresses: Vec<IpAddr> = (0..20_000).map(|_| IpAddr::V6(near().into())).collect();
        assert_agrees_with_a_linear_scan(&nets, &addresses);
    }
}
