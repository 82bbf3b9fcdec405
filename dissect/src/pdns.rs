//! A passive-DNS cache: which name an address was last given out for, learned from the DNS
//! answers the agent sees, so an address sighting can say what the host thought it was
//! talking to (`resolved_name`: "203.0.113.66, resolved from updates.evil-cdn.example").
//!
//! Bounded at [`MAX_ENTRIES`] addresses, oldest entry first out; an address given out for
//! several names keeps the latest. Only read when an address matched, so its cost is off the
//! per-packet path.

use crate::fifo::FifoMap;
use std::net::IpAddr;

pub const MAX_ENTRIES: usize = 65_536;

#[derive(Default)]
pub struct PassiveDns {
    names: FifoMap<IpAddr, Box<str>>,
}

impl PassiveDns {
    /// Notes that `name` resolved to `ip`.
    pub fn record(&mut self, ip: IpAddr, name: &str) {
        if name.is_empty() || self.names.get(&ip).is_some_and(|n| &**n == name) {
            return;
        }
        if self.names.len() >= MAX_ENTRIES && !self.names.contains_key(&ip) {
            self.names.pop_oldest();
        }
        self.names.insert(ip, name.into());
    }

    /// The name `ip` was last resolved from.
    pub fn name_of(&self, ip: IpAddr) -> Option<&str> {
        self.names.get(&ip).map(|n| &**n)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_name_wins_and_the_cache_stays_bounded() {
        let mut p = PassiveDns::default();
        let ip: IpAddr = "203.0.113.66".parse().unwrap();
        p.record(ip, "a.example");
        p.record(ip, "b.example");
        assert_eq!(p.name_of(ip), Some("b.example"));
        for i in 0..(MAX_ENTRIES as u32 + 100) {
            p.record(IpAddr::from(i.to_be_bytes()), "x.example");
        }
        assert_eq!(p.len(), MAX_ENTRIES);
        assert_eq!(p.name_of(ip), None, "the oldest went first");
    }
}
