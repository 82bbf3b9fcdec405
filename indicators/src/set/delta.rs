//! What changed between two versions of a set ([`Change`]), and a set with a change applied.
//!
//! Publishing a new version of 1.85M indicators where a few hundred changed should not mean
//! sending 38 MB to every agent. The collector sends the [`Change`] instead, with the
//! signature of the whole new set; the agent applies it to the set it has and checks the
//! result against that signature, so a delta is exactly as trustworthy as a full set.
//!
//! That works because applying is deterministic and is also how the collector makes the new
//! version: [`IndicatorSet::apply`] keeps the old entries in their order, drops the removed
//! ones, appends the added ones in theirs, and builds the set from that list, which
//! `compiled::encode` turns into the same bytes on both sides. An indicator whose id, metadata
//! or flags changed is removed and added again.

use super::{IndicatorSet, Match, kind_to_u8};
use crate::model::{Indicator, Kind, Meta};
use hashbrown::HashTable;
use std::collections::HashSet;
use std::hash::BuildHasher;
use std::sync::Arc;

/// The indicators added since a version, and the (kind, value) of those removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    pub added: Vec<Indicator>,
    pub removed: Vec<(Kind, String)>,
}

impl Change {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }

    /// Indicators added plus removed.
    pub fn len(&self) -> usize {
        self.added.len() + self.removed.len()
    }
}

fn key_hash(kind: Kind, value: &str) -> u64 {
    super::HASH.hash_one((kind_to_u8(kind), value))
}

/// Whether two indicators with the same kind and value are the same in every other way.
fn same(a: &Match<'_>, b: &Match<'_>) -> bool {
    a.exact_only() == b.exact_only() && a.id() == b.id() && a.meta() == b.meta()
}

/// What turns `old` into `new`: `old.apply(&diff(old, new))` holds the same indicators as
/// `new`. Linear in both sets, with one table of `u32` over `old`.
pub fn diff(old: &IndicatorSet, new: &IndicatorSet) -> Change {
    let mut against = Against::new(old);
    let mut added = Vec::new();
    for n in new.iter() {
        match against.find(n.kind(), &n.value()) {
            Some(o) if same(&o, &n) => against.keep(o),
            _ => added.push(n.to_indicator()),
        }
    }
    against.change(added)
}

/// What [`diff`] finds between `old` and the set `IndicatorSet::from_sources(new)` would
/// build, without building it (a republish saves a whole build): `new` in order, the first of
/// each (kind, value) counting, as `from_sources` keeps it.
pub fn diff_sources(old: &IndicatorSet, new: &[Vec<Indicator>]) -> Change {
    let mut against = Against::new(old);
    let mut seen: HashSet<(Kind, &str), foldhash::fast::RandomState> = HashSet::default();
    let mut added = Vec::new();
    for ind in new.iter().flatten() {
        if !seen.insert((ind.kind, ind.value.as_str())) {
            continue;
        }
        match against.find(ind.kind, &ind.value) {
            Some(o) if o.exact_only() == ind.exact_only && o.id() == ind.id() && *o.meta() == *ind.meta => {
                against.keep(o)
            }
            _ => added.push(ind.clone()),
        }
    }
    against.change(added)
}

/// The old set, indexed by (kind, value), and which of its indicators the new one keeps.
struct Against<'s> {
    old: &'s IndicatorSet,
    by_key: HashTable<u32>,
    kept: Vec<bool>,
}

impl<'s> Against<'s> {
    fn new(old: &'s IndicatorSet) -> Against<'s> {
        let mut by_key: HashTable<u32> = HashTable::with_capacity(old.len());
        for m in old.iter() {
            by_key.insert_unique(key_hash(m.kind(), &m.value()), m.index, |&i| {
                let o = old.at(i);
                key_hash(o.kind(), &o.value())
            });
        }
        Against { old, by_key, kept: vec![false; old.len()] }
    }

    fn find(&self, kind: Kind, value: &str) -> Option<Match<'s>> {
        let old = self.old;
        let found = self.by_key.find(key_hash(kind, value), |&i| {
            let o = old.at(i);
            o.kind() == kind && o.value() == value
        });
        found.map(|&i| old.at(i))
    }

    fn keep(&mut self, m: Match<'_>) {
        self.kept[m.index as usize] = true;
    }

    /// The change: `added`, and every old indicator not kept, removed.
    fn change(self, added: Vec<Indicator>) -> Change {
        let removed = self
            .old
            .iter()
            .filter(|m| !self.kept[m.index as usize])
            .map(|m| (m.kind(), m.value().into_owned()))
            .collect();
        Change { added, removed }
    }
}

impl IndicatorSet {
    /// This set with `change` applied: its indicators in order without the removed ones,
    /// then the added ones in order (see the module documentation for why the order matters).
    pub fn apply(&self, change: &Change) -> IndicatorSet {
        let removed: HashSet<(Kind, &str)> = change.removed.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if change.added.is_empty() {
            // Only removals (a false positive withdrawn): the same set, made without a rebuild.
            return self.without(|m| removed.contains(&(m.kind(), m.value().as_ref())));
        }
        // One `Arc` per metadata record, shared by its indicators, as a fresh load would.
        let metas: Vec<Arc<Meta>> = self.metas.iter().cloned().map(Arc::new).collect();
        let mut run = 0;
        let kept: Vec<Indicator> = self
            .iter()
            .filter_map(|m| {
                while self.meta_runs.get(run + 1).is_some_and(|&(first, _)| first <= m.index) {
                    run += 1;
                }
                let meta = self.meta_runs.get(run).map_or(0, |&(_, meta)| meta as usize);
                let value = m.value();
                if removed.contains(&(m.kind(), value.as_ref())) {
                    return None;
                }
                Some(Indicator {
                    id: self.ids.get(&m.index).map(|id| id.to_string()),
                    kind: m.kind(),
                    value: value.into_owned(),
                    meta: metas.get(meta).cloned().unwrap_or_default(),
                    exact_only: m.exact_only(),
                })
            })
            .collect();
        IndicatorSet::from_sources(&[kept, change.added.clone()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::parse_plain;
    use crate::set::compiled;

    fn set(text: &str) -> IndicatorSet {
        IndicatorSet::new(parse_plain("feed.txt", text).indicators)
    }

    fn keys(set: &IndicatorSet) -> Vec<(Kind, String, String)> {
        let mut all: Vec<_> =
            set.iter().map(|m| (m.kind(), m.value().into_owned(), m.meta().source.clone())).collect();
        all.sort();
        all
    }

    #[test]
    fn applying_the_diff_gives_the_new_set_and_the_same_bytes_every_time() {
        let old = set(
            "evil.example\n203.0.113.9\n198.51.100.1:443\n2001:db8::/32\nhttp://x.example/a\nkept.example\n",
        );
        let mut new =
            parse_plain("feed.txt", "kept.example\nevil.example\n203.0.113.10\n2001:db8::/32\n").indicators;
        // Same value, other source: removed and added again.
        new.extend(parse_plain("other.txt", "http://x.example/a\n").indicators);
        let new = IndicatorSet::new(new);

        let change = diff(&old, &new);
        assert_eq!(change.added.len(), 2, "{change:?}");
        let mut removed = change.removed.clone();
        removed.sort();
        assert_eq!(
            removed,
            [
                (Kind::Ipv4, "203.0.113.9".to_owned()),
                (Kind::IpPort, "198.51.100.1:443".to_owned()),
                (Kind::Url, "x.example/a".to_owned()),
            ]
        );
        let applied = old.apply(&change);
        assert_eq!(keys(&applied), keys(&new));
        assert!(
            applied.match_domain("a.evil.example").is_some()
                && applied.match_ip("203.0.113.9".parse().unwrap()).is_none()
        );
        // The agent applies the change to its own copy of the old set, decoded from the bytes it
        // installed; that must encode to the bytes the collector signed for the new version,
        // which the collector makes by applying the change to the set it holds in memory (not
        // by building from its sources, whose string table is in another order).
        let (agents_old, _) = compiled::decode(&compiled::encode(&old, 6)).unwrap();
        let collectors = compiled::encode(&old.apply(&change), 7);
        assert_eq!(compiled::encode(&agents_old.apply(&change), 7), collectors);
        assert!(diff(&applied, &new).is_empty());
        assert!(diff(&new, &new).is_empty());
        assert_eq!(change.len(), change.added.len() + change.removed.len());
    }

    /// Random sources of every kind, some values repeated across them, some with ids.
    fn random_sources(rng: &mut rand::rngs::StdRng, round: usize) -> Vec<Vec<Indicator>> {
        use rand::Rng;
        let values = |rng: &mut rand::rngs::StdRng| -> String {
            (0..60)
                .map(|i| match rng.random_range(0..8) {
                    0 => format!("d{i}.example\n"),
                    1 => format!("192.0.2.{i}\n"),
                    2 => format!("2001:db8::{i:x}\n"),
                    3 => format!("198.51.{i}.0/24\n"),
                    4 => format!("203.0.113.{i}:{}\n", 1000 + i),
                    5 => format!("[2001:db8::{i:x}]:443\n"),
                    6 => format!("u{i}.example/p?q={i}\n"),
                    _ => format!("{:032x}\n", i * 7919),
                })
                .collect()
        };
        let mut sources = Vec::new();
        for feed in 0..rng.random_range(1..4) {
            let mut loaded = parse_plain(&format!("feed{feed}.txt"), &values(rng)).indicators;
            for ind in loaded.iter_mut().filter(|_| rng.random_bool(0.2)) {
                ind.id = Some(format!("id-{round}-{}", ind.value));
            }
            sources.push(loaded);
        }
        sources
    }

    /// Removals take the fast way (`without`); it must give the bytes a rebuild of the kept
    /// indicators gives, from the collector's set and from one decoded as an agent has it.
    #[test]
    fn removing_without_a_rebuild_gives_the_bytes_of_a_rebuild() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for round in 0..40 {
            let sources = random_sources(&mut rng, round);
            let old = IndicatorSet::from_sources(&sources);
            let all: Vec<Indicator> = old.iter().map(|m| m.to_indicator()).collect();
            let removed: Vec<(Kind, String)> =
                all.iter().filter(|_| rng.random_bool(0.3)).map(|i| (i.kind, i.value.clone())).collect();
            let kept: Vec<Indicator> =
                all.into_iter().filter(|i| !removed.contains(&(i.kind, i.value.clone()))).collect();
            let change = Change { added: Vec::new(), removed };
            let rebuilt = compiled::encode(&IndicatorSet::from_sources(&[kept]), 9);
            assert_eq!(compiled::encode(&old.apply(&change), 9), rebuilt, "round {round}");
            let (decoded, _) = compiled::decode(&compiled::encode(&old, 8)).unwrap();
            assert_eq!(compiled::encode(&decoded.apply(&change), 9), rebuilt, "round {round}, decoded");
        }
    }

    /// `diff_sources` finds what `diff` finds against the built set: the same removals, and
    /// additions that give the same bytes (duplicates across sources, changed metadata, ids).
    #[test]
    fn diffing_the_sources_is_diffing_the_set_they_build() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for round in 0..40 {
            let old = IndicatorSet::from_sources(&random_sources(&mut rng, round));
            let sources = random_sources(&mut rng, round + usize::from(round % 3 == 0));
            let built = IndicatorSet::from_sources(&sources);
            let (fast, slow) = (diff_sources(&old, &sources), diff(&old, &built));
            let (mut a, mut b) = (fast.removed.clone(), slow.removed.clone());
            a.sort();
            b.sort();
            assert_eq!(a, b, "round {round}");
            assert_eq!(fast.added.len(), slow.added.len(), "round {round}");
            assert!(
                !fast.added.is_empty() && !fast.removed.is_empty() && fast.len() < old.len() + built.len()
            );
            assert_eq!(compiled::encode(&old.apply(&fast), 3), compiled::encode(&old.apply(&slow), 3));
        }
    }

    #[test]
    fn a_chain_of_changes_ends_where_the_sources_do() {
        let v1 = set("a.example\nb.example\n192.0.2.1\n");
        let v2_sources = set("b.example\nc.example\n192.0.2.1\n192.0.2.2\n");
        let v2 = v1.apply(&diff(&v1, &v2_sources));
        let v3_sources = set("c.example\n192.0.2.2\nd.example\n");
        let v3 = v2.apply(&diff(&v2, &v3_sources));
        assert_eq!(keys(&v3), keys(&v3_sources));
        // Applying v2→v3 to a v2 made by someone else the same way gives identical bytes.
        let v2_again = set("a.example\nb.example\n192.0.2.1\n").apply(&diff(&v1, &v2_sources));
        assert_eq!(compiled::encode(&v2_again.apply(&diff(&v2, &v3_sources)), 3), compiled::encode(&v3, 3));
    }
}
