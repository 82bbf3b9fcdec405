//! Longest-prefix matching for CIDR indicators.
//!
//! The real trails hold thousands of IPv4 networks, so a linear scan would cost microseconds
//! on every miss — and nearly every packet is a miss. Instead:
//! - a 65,536-bit gate (8 KB) marks each /16 that any IPv4 network touches; an address whose
//!   /16 is unmarked cannot be in a network, which settles most misses with one bit test;
//! - behind the gate, one hash map per prefix length present (longest first) from network
//!   address to entry, so a lookup is at most one probe per distinct prefix length.
//!
//! IPv6 networks are rare in indicator feeds and are scanned, longest prefix first.

use super::HASH;
use hashbrown::HashMap;
use ipnet::IpNet;
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

    pub(crate) fn contains(&self, addr: u32) -> bool {
        let slot = (addr >> 16) as usize;
        self.0.get(slot / 64).is_some_and(|w| w & (1 << (slot % 64)) != 0)
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.0.capacity() * 8
    }
}

#[derive(Debug, Default)]
pub(crate) struct NetworkTable {
    pub(crate) gate: Gate,
    v4: Vec<(u8, HashMap<u32, u32, foldhash::fast::FixedState>)>,
    v6: Vec<(IpNet, u32)>,
}

const GATE_WORDS: usize = 65_536 / 64;

impl NetworkTable {
    /// Builds the table from (network, entry) pairs; the first entry of a repeated network wins.
    pub(crate) fn new(nets: Vec<(IpNet, u32)>) -> NetworkTable {
        let mut table = NetworkTable::default();
        for (net, entry) in nets {
            match net {
                IpNet::V4(v4) => {
                    table.gate.mark(u32::from(v4.network()), u32::from(v4.broadcast()));
                    let prefix = v4.prefix_len();
                    let at = match table.v4.iter().position(|(p, _)| *p == prefix) {
                        Some(at) => at,
                        None => {
                            table.v4.push((prefix, HashMap::with_hasher(HASH)));
                            table.v4.len() - 1
                        }
                    };
                    table.v4[at].1.entry(u32::from(v4.network())).or_insert(entry);
                }
                IpNet::V6(_) => {
                    if !table.v6.iter().any(|(n, _)| *n == net) {
                        table.v6.push((net, entry));
                    }
                }
            }
        }
        table.v4.sort_by_key(|(prefix, _)| std::cmp::Reverse(*prefix));
        table.v6.sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));
        table
    }

    /// The entry of the most specific network containing `ip` (already canonical).
    pub(crate) fn lookup(&self, ip: IpAddr) -> Option<u32> {
        match ip {
            IpAddr::V4(v4) => {
                let addr = u32::from(v4);
                if !self.gate.contains(addr) {
                    return None;
                }
                self.v4.iter().find_map(|(prefix, map)| {
                    let mask = u32::MAX.checked_shl(32 - u32::from(*prefix)).unwrap_or(0);
                    map.get(&(addr & mask)).copied()
                })
            }
            IpAddr::V6(_) => self.v6.iter().find(|(net, _)| net.contains(&ip)).map(|&(_, e)| e),
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.gate.heap_bytes()
            + self.v4.iter().map(|(_, m)| (m.capacity() * 8 / 7).next_power_of_two() * 9).sum::<usize>()
            + self.v6.capacity() * std::mem::size_of::<(IpNet, u32)>()
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
    }
}
