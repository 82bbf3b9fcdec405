//! Which warninglists cover an address or a network, in a few probes whatever their size.
//!
//! The lists hold about 143,000 networks (cloud ranges, resolvers). Checking each indicator
//! against every one of them took four minutes for the trails; the matcher's own longest-prefix
//! table ([`NetworkTable`]) answers in a few probes instead. Warninglists may list networks
//! inside each other (a provider's /12 and a region's /20, in two lists), and a longest-prefix
//! lookup finds only the innermost, so each network also carries the lists of every network
//! around it (CIDR networks are nested or disjoint, so one sorted pass with a stack computes
//! that).

use crate::set::networks::NetworkTable;
use hashbrown::HashMap;
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The lists' networks, ready for lookups.
#[derive(Debug, Default)]
pub(super) struct Coverage {
    table: NetworkTable,
    networks: Vec<Covering>,
    /// Network → its index in `networks`, for a network the table's innermost answer misses.
    by_network: HashMap<IpNet, u32>,
}

/// One listed network: the lists that name it, and those that name it or a network around it.
#[derive(Debug, Clone)]
pub(super) struct Covering {
    pub(super) network: IpNet,
    pub(super) own: Vec<u16>,
    pub(super) around: Vec<u16>,
}

impl Coverage {
    /// Builds from (network, list) pairs; a network may come from several lists.
    pub(super) fn new(entries: &[(IpNet, u16)]) -> Coverage {
        // Sorted by family, first address, then prefix: a network comes before the ones inside.
        let mut own: BTreeMap<(bool, u128, u8), (IpNet, Vec<u16>)> = BTreeMap::new();
        for &(net, list) in entries {
            let net = net.trunc();
            let first = match net.network() {
                IpAddr::V4(a) => u128::from(u32::from(a)),
                IpAddr::V6(a) => u128::from(a),
            };
            let (_, lists) =
                own.entry((net.addr().is_ipv6(), first, net.prefix_len())).or_insert((net, Vec::new()));
            if !lists.contains(&list) {
                lists.push(list);
            }
        }
        let mut networks: Vec<Covering> = Vec::with_capacity(own.len());
        // The chain of networks around the current one, outermost first.
        let mut chain: Vec<usize> = Vec::new();
        for (network, lists) in own.into_values() {
            while chain.last().is_some_and(|&outer| !networks[outer].network.contains(&network)) {
                chain.pop();
            }
            let mut around = chain.last().map_or_else(Vec::new, |&outer| networks[outer].around.clone());
            for list in &lists {
                if !around.contains(list) {
                    around.push(*list);
                }
            }
            around.sort_unstable();
            chain.push(networks.len());
            networks.push(Covering { network, own: lists, around });
        }
        let table = NetworkTable::new(networks.iter().zip(0u32..).map(|(c, i)| (c.network, i)).collect());
        let by_network = networks.iter().zip(0u32..).map(|(c, i)| (c.network, i)).collect();
        Coverage { table, networks, by_network }
    }

    /// The innermost listed network holding `ip`.
    pub(super) fn address(&self, ip: IpAddr) -> Option<&Covering> {
        self.table.lookup(ip).map(|i| &self.networks[i as usize])
    }

    /// The innermost listed network holding all of `net` (which may be that network itself).
    pub(super) fn network(&self, net: IpNet) -> Option<&Covering> {
        let net = net.trunc();
        match self.address(net.network()) {
            Some(c) if c.network.prefix_len() <= net.prefix_len() => Some(c),
            // A listed network inside `net` holds its first address: look at `net` and the
            // networks around it, one prefix length at a time (rare: only CIDR indicators
            // wider than a listed network get here).
            Some(_) => (0..=net.prefix_len()).rev().find_map(|prefix| {
                let wider = IpNet::new(net.network(), prefix).ok()?.trunc();
                self.by_network.get(&wider).map(|&i| &self.networks[i as usize])
            }),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lists(c: Option<&Covering>) -> Option<(String, Vec<u16>, Vec<u16>)> {
        c.map(|c| (c.network.to_string(), c.own.clone(), c.around.clone()))
    }

    #[test]
    fn nested_networks_carry_the_lists_around_them() {
        let n = |s: &str| s.parse::<IpNet>().unwrap();
        let coverage = Coverage::new(&[
            (n("10.0.0.0/8"), 0),
            (n("10.1.0.0/16"), 1),
            (n("10.1.2.0/24"), 2),
            (n("10.1.2.3/32"), 0),
            (n("10.1.0.0/16"), 3),
            (n("192.0.2.0/24"), 4),
            (n("2001:db8::/32"), 5),
        ]);
        let at = |ip: &str| lists(coverage.address(ip.parse().unwrap()));
        let v = |s: &str, own: &[u16], around: &[u16]| Some((s.to_owned(), own.to_vec(), around.to_vec()));
        assert_eq!(at("10.1.2.3"), v("10.1.2.3/32", &[0], &[0, 1, 2, 3]));
        assert_eq!(at("10.1.2.4"), v("10.1.2.0/24", &[2], &[0, 1, 2, 3]));
        assert_eq!(at("10.1.3.1"), v("10.1.0.0/16", &[1, 3], &[0, 1, 3]));
        assert_eq!(at("10.200.0.1"), v("10.0.0.0/8", &[0], &[0]));
        assert_eq!(at("11.0.0.1"), None);
        assert_eq!(at("2001:db8::1"), v("2001:db8::/32", &[5], &[5]));
        let net = |s: &str| lists(coverage.network(n(s)));
        assert_eq!(net("10.1.0.0/16"), v("10.1.0.0/16", &[1, 3], &[0, 1, 3]));
        // 10.1.0.0/15 holds 10.1.0.0/16: only the /8 holds all of it.
        assert_eq!(net("10.0.0.0/15"), v("10.0.0.0/8", &[0], &[0]));
        assert_eq!(net("10.1.2.0/23"), v("10.1.0.0/16", &[1, 3], &[0, 1, 3]));
        assert_eq!(net("0.0.0.0/0"), None);
        assert_eq!(net("192.0.2.128/25"), v("192.0.2.0/24", &[4], &[4]));
    }
}
