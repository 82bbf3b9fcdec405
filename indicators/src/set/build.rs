//! Building an [`IndicatorSet`] from loaded indicators.

use super::{Entry, IndicatorSet, KIND_V4_PORT, KIND_V6_PORT, ipv6, kind_to_u8, socket};
use crate::model::{Indicator, Kind, Meta};
use ipnet::IpNet;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

impl IndicatorSet {
    /// Builds the matcher. Values must be canonical (as [`crate::normalise`] returns them);
    /// when two indicators have the same kind and value, the first is kept.
    pub fn new(indicators: Vec<Indicator>) -> IndicatorSet {
        IndicatorSet::from_sources(&[indicators])
    }

    /// As [`IndicatorSet::new`] over several sources in order, without first moving them
    /// into one vector (1.85M indicators are hundreds of megabytes to copy).
    pub fn from_sources(sources: &[Vec<Indicator>]) -> IndicatorSet {
        let total = sources.iter().map(Vec::len).sum();
        let mut set = IndicatorSet::default();
        set.entries.reserve_exact(total);
        let mut seen: HashSet<(Kind, &str), foldhash::fast::RandomState> =
            HashSet::with_capacity_and_hasher(total, foldhash::fast::RandomState::default());
        let mut metas: HashMap<Meta, u32> = HashMap::new();
        // Records by address: indicators of one record share its `Arc`, and flagged ones
        // (warninglists) interleave with the rest, so the previous indicator's record is often
        // not this one's. The sources outlive this loop, so no address is reused meanwhile.
        let mut by_address: hashbrown::HashMap<*const Meta, u32> = hashbrown::HashMap::default();
        let mut last_meta: Option<(&Indicator, u32)> = None;
        for ind in sources.iter().flatten() {
            if !seen.insert((ind.kind, ind.value.as_str())) {
                continue;
            }
            let Some((kind, a, b)) = set.place(ind) else { continue };
            // Indicators of one record share its `Arc`: compare pointers before contents, and
            // hash a record only when it changes.
            let meta = match last_meta {
                Some((prev, m)) if Arc::ptr_eq(&prev.meta, &ind.meta) || prev.meta == ind.meta => m,
                _ => *by_address.entry(Arc::as_ptr(&ind.meta)).or_insert_with(|| {
                    let next = metas.len() as u32;
                    *metas.entry(Meta::clone(&ind.meta)).or_insert(next)
                }),
            };
            last_meta = Some((ind, meta));
            let index = set.entries.len() as u32;
            if set.meta_runs.last().is_none_or(|&(_, m)| m != meta) {
                set.meta_runs.push((index, meta));
            }
            set.entries.push(Entry { a, b, kind, exact_only: u8::from(ind.exact_only) });
            if let Some(id) = ind.id.as_deref().filter(|id| *id != ind.value) {
                set.ids.insert(index, id.into());
            }
        }
        set.metas = vec![Meta::default(); metas.len()];
        for (meta, i) in metas {
            set.metas[i as usize] = meta;
        }
        set.text.shrink_to_fit();
        set.meta_runs.shrink_to_fit();
        set.index();
        set
    }

    /// Where an indicator's value goes: (entry kind, a, b), or `None` if the value is not the
    /// canonical form of its kind.
    fn place(&mut self, ind: &Indicator) -> Option<(u8, u32, u16)> {
        let wide = |set: &mut IndicatorSet, net: IpNet| {
            set.wide.push(net);
            (set.wide.len() - 1) as u32
        };
        Some(match ind.kind {
            Kind::Ipv4 => (kind_to_u8(Kind::Ipv4), u32::from(ind.value.parse::<Ipv4Addr>().ok()?), 0),
            Kind::Ipv6 => (kind_to_u8(Kind::Ipv6), wide(self, IpNet::from(IpAddr::V6(ipv6(&ind.value)?))), 0),
            Kind::Cidr => (kind_to_u8(Kind::Cidr), wide(self, ind.value.parse::<IpNet>().ok()?), 0),
            Kind::IpPort => match socket(&ind.value)? {
                std::net::SocketAddr::V4(sa) => (KIND_V4_PORT, u32::from(*sa.ip()), sa.port()),
                std::net::SocketAddr::V6(sa) => {
                    (KIND_V6_PORT, wide(self, IpNet::from(IpAddr::V6(*sa.ip()))), sa.port())
                }
            },
            Kind::Domain | Kind::Url | Kind::Ja3 | Kind::Ja4 => {
                let len = u16::try_from(ind.value.len()).ok()?;
                let start = u32::try_from(self.text.len()).ok()?;
                self.text.push_str(&ind.value);
                (kind_to_u8(ind.kind), start, len)
            }
        })
    }
}
