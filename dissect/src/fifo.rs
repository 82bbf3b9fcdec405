//! `FifoMap`: a hash map that remembers insertion order, for the agent's bounded tables
//! (pending client streams, QUIC clients, fragmented datagrams, passive DNS). They all need
//! the same three things: find by key, drop the oldest when full, drop entries too old.
//!
//! Removing an entry by key leaves its place in the order queue behind as a stale marker
//! (recognised by its generation and skipped); the queue is compacted whenever stale markers
//! outnumber live entries, so it stays within twice the map's size whatever the traffic.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

pub struct FifoMap<K, V> {
    map: HashMap<K, (V, u64)>,
    order: VecDeque<(K, u64)>,
    generation: u64,
}

impl<K, V> Default for FifoMap<K, V> {
    fn default() -> Self {
        FifoMap { map: HashMap::new(), order: VecDeque::new(), generation: 0 }
    }
}

impl<K: Hash + Eq + Copy, V> FifoMap<K, V> {
    /// Inserts (or replaces, moving it to the young end) `key`.
    pub fn insert(&mut self, key: K, value: V) {
        self.generation += 1;
        self.map.insert(key, (value, self.generation));
        self.order.push_back((key, self.generation));
        self.compact();
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key).map(|(v, _)| v)
    }

    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.map.get_mut(key).map(|(v, _)| v)
    }

    pub fn contains_key(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        let removed = self.map.remove(key).map(|(v, _)| v);
        self.compact();
        removed
    }

    /// The oldest live entry.
    pub fn oldest(&mut self) -> Option<(&K, &V)> {
        while let Some(&(key, generation)) = self.order.front() {
            if self.map.get(&key).is_some_and(|(_, g)| *g == generation) {
                let (value, _) = &self.map[&key];
                let (key, _) = self.order.front().expect("just seen");
                return Some((key, value));
            }
            self.order.pop_front();
        }
        None
    }

    /// Removes and returns the oldest live entry.
    pub fn pop_oldest(&mut self) -> Option<(K, V)> {
        while let Some((key, generation)) = self.order.pop_front() {
            if self.map.get(&key).is_some_and(|(_, g)| *g == generation) {
                let (value, _) = self.map.remove(&key).expect("present");
                return Some((key, value));
            }
        }
        None
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Drops stale markers once they outnumber live entries.
    fn compact(&mut self) {
        if self.order.len() > 2 * self.map.len() + 64 {
            let map = &self.map;
            self.order.retain(|(key, generation)| map.get(key).is_some_and(|(_, g)| g == generation));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oldest_first_and_the_order_queue_stays_bounded() {
        let mut f = FifoMap::default();
        f.insert(1, "a");
        f.insert(2, "b");
        f.insert(1, "a2"); // replaced: now the youngest
        assert_eq!(f.oldest(), Some((&2, &"b")));
        assert_eq!(f.pop_oldest(), Some((2, "b")));
        assert_eq!(f.pop_oldest(), Some((1, "a2")));
        assert_eq!(f.pop_oldest(), None);
        // One long-lived entry at the front and a million short-lived ones behind it.
        f.insert(0, "old");
        for i in 1..1_000_000 {
            f.insert(i, "x");
            f.remove(&i);
        }
        assert_eq!(f.len(), 1);
        assert!(f.order.len() <= 2 * f.len() + 65, "{}", f.order.len());
        assert_eq!(f.oldest(), Some((&0, &"old")));
    }
}
