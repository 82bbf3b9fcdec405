//! [`IndicatorSet`]: the immutable matcher the agent consults for every observable.
//!
//! Layout, chosen for memory (1.85M real indicators must stay small) and for lookups that hash
//! once and never allocate:
//! - `entries`: one 8-byte [`Entry`] per indicator — kind, flags, and either the address
//!   (IPv4, IPv4:port: the value is rebuilt from it when asked) or the place of its canonical
//!   text in `text` (domains, URLs, JA3, JA4) or of its address in `wide` (IPv6, CIDR);
//! - `meta_runs`: metadata by runs of entries (neighbours share a file or event), found by
//!   binary search only when a hit is reported;
//! - `text`: every text value back to back, no per-value allocation;
//! - one hash table per kind holding only `u32` entry indexes (hashbrown's `HashTable`), keyed
//!   by the address or by the hash of the text, which is compared in `text` on a hit;
//! - `metas`: metadata interned per distinct (source, event, TLP, ...) — thousands, not millions;
//! - `ids`: only the ids that differ from the value (MISP uuids, STIX ids).
//!
//! Domains are matched with a parent walk: `a.b.evil.example` tries itself, then
//! `b.evil.example`, then `evil.example`, stopping at the first hit. CIDRs go through a /16
//! gate and one hash map per prefix length (`networks`). The set is built once and shared
//! read-only behind an `Arc`, so swapping in a new one never blocks a reader.

mod address_filter;
mod build;
pub mod compiled;
pub mod delta;
pub(crate) mod networks;
mod removal;

use crate::model::{Indicator, Kind, Meta};
use foldhash::fast::FixedState;
use hashbrown::{HashMap, HashTable};
use ipnet::IpNet;
use std::borrow::Cow;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// One indicator: 8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct Entry {
    /// Text kinds: offset into `text`. IPv4 and IPv4:port: the address. IPv6 and CIDR: index
    /// into `wide`.
    a: u32,
    /// Text kinds: length. IP:port: the port.
    b: u16,
    kind: u8,
    exact_only: u8,
}

const _: () = assert!(std::mem::size_of::<Entry>() == 8);

/// The hasher: fixed seed, so a compiled set hashes the same in every process.
pub(crate) const HASH: FixedState = FixedState::with_seed(0x7a64_6e5f_7365_7421);

#[derive(Debug, Default)]
pub struct IndicatorSet {
    pub(crate) entries: Vec<Entry>,
    pub(crate) text: String,
    /// IPv6 addresses and CIDR networks, which do not fit an entry.
    pub(crate) wide: Vec<IpNet>,
    pub(crate) metas: Vec<Meta>,
    /// (first entry, meta index) at each change of metadata, in entry order.
    pub(crate) meta_runs: Vec<(u32, u32)>,
    pub(crate) ids: HashMap<u32, Box<str>>,
    v4: HashTable<u32>,
    v6: HashTable<u32>,
    v4_ports: HashTable<u32>,
    v6_ports: HashTable<u32>,
    networks: networks::NetworkTable,
    /// The /16s holding an IPv4 address or network indicator: most misses end at one bit.
    v4_gate: networks::Gate,
    domains: HashTable<u32>,
    urls: HashTable<u32>,
    ja3: HashTable<u32>,
    ja4: HashTable<u32>,
    /// The IPv4 address indicators, hashed: most misses past the gate skip the `v4` probe.
    v4_filter: address_filter::AddressFilter,
}

/// A matched (or iterated) indicator, borrowed from its set.
#[derive(Debug, Clone, Copy)]
pub struct Match<'s> {
    set: &'s IndicatorSet,
    index: u32,
}

impl<'s> Match<'s> {
    fn entry(&self) -> Entry {
        self.set.entries[self.index as usize]
    }

    pub fn kind(&self) -> Kind {
        kind_from_u8(self.entry().kind)
    }

    /// The canonical value.
    pub fn value(&self) -> Cow<'s, str> {
        let e = self.entry();
        match self.kind() {
            Kind::Ipv4 => Cow::Owned(Ipv4Addr::from(e.a).to_string()),
            Kind::IpPort if e.kind == KIND_V4_PORT => Cow::Owned(format!("{}:{}", Ipv4Addr::from(e.a), e.b)),
            Kind::IpPort => Cow::Owned(format!("[{}]:{}", self.set.wide[e.a as usize].addr(), e.b)),
            Kind::Ipv6 => Cow::Owned(self.set.wide[e.a as usize].addr().to_string()),
            Kind::Cidr => Cow::Owned(self.set.wide[e.a as usize].to_string()),
            _ => Cow::Borrowed(&self.set.text[e.a as usize..e.a as usize + e.b as usize]),
        }
    }

    /// The id from the source, or the value when the source has none.
    pub fn id(&self) -> Cow<'s, str> {
        match self.set.ids.get(&self.index) {
            Some(id) => Cow::Borrowed(id),
            None => self.value(),
        }
    }

    pub fn meta(&self) -> &'s Meta {
        let runs = &self.set.meta_runs;
        let run = runs.partition_point(|&(first, _)| first <= self.index).saturating_sub(1);
        &self.set.metas[runs.get(run).map_or(0, |&(_, m)| m as usize)]
    }

    pub fn exact_only(&self) -> bool {
        self.entry().exact_only != 0
    }

    /// The whole indicator, for publishing and display.
    pub fn to_indicator(&self) -> Indicator {
        Indicator {
            id: self.set.ids.get(&self.index).map(|id| id.to_string()),
            kind: self.kind(),
            value: self.value().into_owned(),
            meta: std::sync::Arc::new(self.meta().clone()),
            exact_only: self.exact_only(),
        }
    }
}

/// Entry kinds: the model's kinds, with IPv4:port and IPv6:port told apart.
const KIND_V4_PORT: u8 = 8;
const KIND_V6_PORT: u8 = 9;

fn kind_to_u8(kind: Kind) -> u8 {
    Kind::ALL.iter().position(|k| *k == kind).expect("every kind is in ALL") as u8
}

fn kind_from_u8(k: u8) -> Kind {
    match k {
        KIND_V4_PORT | KIND_V6_PORT => Kind::IpPort,
        k => Kind::ALL.get(usize::from(k)).copied().unwrap_or(Kind::Domain),
    }
}

fn hash_v4(ip: u32) -> u64 {
    HASH.hash_one(ip)
}

fn hash_v6(ip: u128) -> u64 {
    HASH.hash_one(ip)
}

fn hash_v4_port(ip: u32, port: u16) -> u64 {
    HASH.hash_one((u64::from(ip) << 16) | u64::from(port))
}

fn hash_v6_port(ip: u128, port: u16) -> u64 {
    HASH.hash_one((ip, port))
}

fn hash_text(text: &str) -> u64 {
    HASH.hash_one(text)
}

impl IndicatorSet {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = Match<'_>> {
        (0..self.entries.len() as u32).map(move |index| Match { set: self, index })
    }

    fn at(&self, index: u32) -> Match<'_> {
        Match { set: self, index }
    }

    fn text_of(&self, index: u32) -> &str {
        let e = self.entries[index as usize];
        &self.text[e.a as usize..e.a as usize + e.b as usize]
    }

    fn wide_addr(&self, index: u32) -> IpAddr {
        self.wide[self.entries[index as usize].a as usize].addr()
    }

    /// An exact address indicator, else the most specific network containing `ip`.
    pub fn match_ip(&self, ip: IpAddr) -> Option<Match<'_>> {
        let found = match ip.to_canonical() {
            IpAddr::V4(v4) => {
                let key = u32::from(v4);
                if !self.v4_gate.contains(key) {
                    return None;
                }
                let exact = match self.v4_filter.may_contain(key) {
                    true => self.v4.find(hash_v4(key), |&i| self.entries[i as usize].a == key),
                    false => None,
                };
                return exact.copied().or_else(|| self.networks.lookup_v4(key)).map(|i| self.at(i));
            }
            IpAddr::V6(v6) => self.v6.find(hash_v6(u128::from(v6)), |&i| self.wide_addr(i) == IpAddr::V6(v6)),
        };
        found.copied().or_else(|| self.networks.lookup(ip.to_canonical())).map(|i| self.at(i))
    }

    pub fn match_ip_port(&self, ip: IpAddr, port: u16) -> Option<Match<'_>> {
        let found = match ip.to_canonical() {
            IpAddr::V4(v4) => {
                let key = u32::from(v4);
                self.v4_ports.find(hash_v4_port(key, port), |&i| {
                    let e = self.entries[i as usize];
                    e.a == key && e.b == port
                })
            }
            IpAddr::V6(v6) => self.v6_ports.find(hash_v6_port(u128::from(v6), port), |&i| {
                self.entries[i as usize].b == port && self.wide_addr(i) == IpAddr::V6(v6)
            }),
        };
        found.map(|&i| self.at(i))
    }

    /// `name` must be lower-case without a trailing dot (as the agent's extractors give it).
    /// Matches the name itself, else its closest parent domain that is not exact-only.
    pub fn match_domain(&self, name: &str) -> Option<Match<'_>> {
        if self.domains.is_empty() {
            return None;
        }
        // A single label is never a domain indicator (normalisation refuses them), so the walk
        // stops before the top-level domain. Dots are found with inlined byte scans: names
        // are short, and a call into memchr per label costs more than it saves.
        let bytes = name.as_bytes();
        let last_dot = bytes.iter().rposition(|&b| b == b'.')?;
        let mut start = 0;
        loop {
            let rest = &name[start..];
            if let Some(&i) = self.domains.find(hash_text(rest), |&i| self.text_of(i) == rest) {
                let m = self.at(i);
                if start == 0 || !m.exact_only() {
                    return Some(m);
                }
            }
            let dot = start + bytes[start..].iter().position(|&b| b == b'.')?;
            if dot >= last_dot {
                return None;
            }
            start = dot + 1;
        }
    }

    /// URL (canonical `host/path`, or a bare `/path`), JA3 or JA4 by exact canonical text.
    /// Other kinds never match by text and return `None`.
    pub fn match_text(&self, kind: Kind, value: &str) -> Option<Match<'_>> {
        let table = match kind {
            Kind::Url => &self.urls,
            Kind::Ja3 => &self.ja3,
            Kind::Ja4 => &self.ja4,
            _ => return None,
        };
        table.find(hash_text(value), |&i| self.text_of(i) == value).map(|&i| self.at(i))
    }

    /// Whether exactly this canonical value is in the set (no parent walk, no networks).
    pub fn contains(&self, kind: Kind, value: &str) -> bool {
        match kind {
            Kind::Domain => self.domains.find(hash_text(value), |&i| self.text_of(i) == value).is_some(),
            Kind::Url | Kind::Ja3 | Kind::Ja4 => self.match_text(kind, value).is_some(),
            _ => self.iter().any(|m| m.kind() == kind && m.value() == value),
        }
    }

    /// Bytes this set holds in memory (tables at their allocated capacity).
    pub fn heap_bytes(&self) -> usize {
        // hashbrown keeps a power-of-two number of buckets at most 7/8 full: four bytes of
        // entry index and one control byte each, plus one group of control bytes.
        let table = |t: &HashTable<u32>| match t.capacity() {
            0 => 0,
            cap => (cap * 8 / 7).next_power_of_two() * 5 + 16,
        };
        self.entries.capacity() * std::mem::size_of::<Entry>()
            + self.meta_runs.capacity() * 8
            + self.text.capacity()
            + self.wide.capacity() * std::mem::size_of::<IpNet>()
            + self.ids.iter().map(|(_, v)| 4 + 8 + 16 + v.len()).sum::<usize>()
            + [
                &self.v4,
                &self.v6,
                &self.v4_ports,
                &self.v6_ports,
                &self.domains,
                &self.urls,
                &self.ja3,
                &self.ja4,
            ]
            .into_iter()
            .map(table)
            .sum::<usize>()
            + self.networks.heap_bytes()
            + self.v4_gate.heap_bytes()
            + self.v4_filter.heap_bytes()
    }

    /// Rebuilds every lookup table from `entries` (after building or loading a compiled set).
    /// The domain table, the largest, is built on a second thread beside the others: loading
    /// the compiled form is mostly this.
    fn index(&mut self) {
        let (domains, tables) = std::thread::scope(|scope| {
            let domains = scope.spawn(|| self.domain_table());
            let tables = self.other_tables();
            (domains.join().expect("building the domain table does not panic"), tables)
        });
        let OtherTables { v4, v6, v4_ports, v6_ports, urls, ja3, ja4, networks } = tables;
        (self.v4, self.v6, self.v4_ports, self.v6_ports) = (v4, v6, v4_ports, v6_ports);
        (self.domains, self.urls, self.ja3, self.ja4) = (domains, urls, ja3, ja4);
        self.networks = networks::NetworkTable::new(networks);
        let mut gate = self.networks.gate.clone();
        let v4_kind = kind_to_u8(Kind::Ipv4);
        let addresses = || self.entries.iter().filter(move |e| e.kind == v4_kind).map(|e| e.a);
        let count = addresses().inspect(|&address| gate.mark(address, address)).count();
        self.v4_filter = address_filter::AddressFilter::new(addresses(), count);
        self.v4_gate = gate;
    }

    fn domain_table(&self) -> HashTable<u32> {
        let kind = kind_to_u8(Kind::Domain);
        let mut domains = HashTable::with_capacity(self.entries.iter().filter(|e| e.kind == kind).count());
        for (i, e) in self.entries.iter().enumerate().filter(|(_, e)| e.kind == kind) {
            let text = &self.text[e.a as usize..e.a as usize + e.b as usize];
            domains.insert_unique(hash_text(text), i as u32, |&j| self.rehash(j));
        }
        domains
    }

    /// Every table but the domains', and the networks to build the network table from.
    fn other_tables(&self) -> OtherTables {
        let count = |k: u8| self.entries.iter().filter(|e| e.kind == k).count();
        let mut v4 = HashTable::with_capacity(count(kind_to_u8(Kind::Ipv4)));
        let mut v6 = HashTable::with_capacity(count(kind_to_u8(Kind::Ipv6)));
        let mut v4_ports = HashTable::with_capacity(count(KIND_V4_PORT));
        let mut v6_ports = HashTable::with_capacity(count(KIND_V6_PORT));
        let mut urls = HashTable::with_capacity(count(kind_to_u8(Kind::Url)));
        let (mut ja3, mut ja4, mut networks) = (HashTable::new(), HashTable::new(), Vec::new());
        for (i, &e) in self.entries.iter().enumerate() {
            let i = i as u32;
            let text_hash = || hash_text(&self.text[e.a as usize..e.a as usize + e.b as usize]);
            let wide = |e: Entry| self.wide[e.a as usize];
            match e.kind {
                KIND_V4_PORT => v4_ports.insert_unique(hash_v4_port(e.a, e.b), i, |&j| self.rehash(j)),
                KIND_V6_PORT => {
                    v6_ports.insert_unique(hash_v6_port(v6_bits(wide(e).addr()), e.b), i, |&j| self.rehash(j))
                }
                k if k == kind_to_u8(Kind::Ipv4) => v4.insert_unique(hash_v4(e.a), i, |&j| self.rehash(j)),
                k if k == kind_to_u8(Kind::Ipv6) => {
                    v6.insert_unique(hash_v6(v6_bits(wide(e).addr())), i, |&j| self.rehash(j))
                }
                k if k == kind_to_u8(Kind::Cidr) => {
                    networks.push((wide(e), i));
                    continue;
                }
                k if k == kind_to_u8(Kind::Domain) => continue,
                k if k == kind_to_u8(Kind::Url) => urls.insert_unique(text_hash(), i, |&j| self.rehash(j)),
                k if k == kind_to_u8(Kind::Ja3) => ja3.insert_unique(text_hash(), i, |&j| self.rehash(j)),
                _ => ja4.insert_unique(text_hash(), i, |&j| self.rehash(j)),
            };
        }
        OtherTables { v4, v6, v4_ports, v6_ports, urls, ja3, ja4, networks }
    }

    /// The hash of entry `i` under its own table's key (for table growth).
    fn rehash(&self, i: u32) -> u64 {
        let e = self.entries[i as usize];
        match e.kind {
            KIND_V4_PORT => hash_v4_port(e.a, e.b),
            KIND_V6_PORT => hash_v6_port(v6_bits(self.wide_addr(i)), e.b),
            k if k == kind_to_u8(Kind::Ipv4) => hash_v4(e.a),
            k if k == kind_to_u8(Kind::Ipv6) => hash_v6(v6_bits(self.wide_addr(i))),
            _ => hash_text(self.text_of(i)),
        }
    }
}

/// What [`IndicatorSet::other_tables`] builds: every hash table but the domains', and the
/// CIDR networks the network table is built from.
struct OtherTables {
    v4: HashTable<u32>,
    v6: HashTable<u32>,
    v4_ports: HashTable<u32>,
    v6_ports: HashTable<u32>,
    urls: HashTable<u32>,
    ja3: HashTable<u32>,
    ja4: HashTable<u32>,
    networks: Vec<(IpNet, u32)>,
}

fn v6_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V6(v6) => u128::from(v6),
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
    }
}

/// Parses the canonical value of an address kind (used when building).
fn socket(value: &str) -> Option<SocketAddr> {
    value.parse().ok()
}

fn ipv6(value: &str) -> Option<Ipv6Addr> {
    value.parse().ok()
}

#[cfg(test)]
mod tests;
