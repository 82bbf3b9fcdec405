//! IP datagrams put back together from their fragments (IPv4 and IPv6 alike), so a DNS query
//! or an HTTP request split at the IP layer — an old evasion — is still read.
//!
//! Bounded: at most [`MAX_DATAGRAMS`] datagrams and [`MAX_BYTES`] of fragments are held; the
//! oldest datagram is evicted beyond either, and one not completed within [`MAX_AGE_MS`] of
//! packet time is dropped. Overlapping fragments keep the first copy of every byte ("first"
//! policy) and are counted: an overlap is either damage or an attempt to make two readers see
//! two different datagrams.

use crate::decode::{Decoded, Transport};
use crate::fifo::FifoMap;
use std::net::IpAddr;

pub const MAX_DATAGRAMS: usize = 1024;
pub const MAX_BYTES: usize = 8 << 20;
pub const MAX_AGE_MS: i64 = 30_000;
pub const MAX_DATAGRAM: usize = 65_535;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DefragStats {
    pub fragments: u64,
    pub reassembled: u64,
    pub overlaps: u64,
    pub oversized: u64,
    /// Datagrams dropped because their fragments contradict each other (data beyond the end
    /// the last fragment sets, two different ends).
    pub inconsistent: u64,
    pub evicted: u64,
    pub expired: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct DatagramKey {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    id: u32,
}

struct Datagram {
    /// (offset, bytes), in arrival order; overlaps trimmed away on arrival.
    pieces: Vec<(usize, Vec<u8>)>,
    received: usize,
    /// Known once the last fragment (no "more fragments") has arrived.
    total: Option<usize>,
    started_ms: i64,
}

/// A reassembled datagram: its addresses, protocol and whole payload.
pub struct Whole {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub payload: Vec<u8>,
}

impl Whole {
    pub fn decoded(&self) -> Result<Decoded<'_>, crate::decode::DecodeError> {
        crate::decode::transport_of(self.src, self.dst, self.proto, &self.payload)
    }
}

#[derive(Default)]
pub struct Defragmenter {
    datagrams: FifoMap<DatagramKey, Datagram>,
    bytes: usize,
    pub stats: DefragStats,
}

impl Defragmenter {
    /// Adds a fragment; returns the datagram when this fragment completed it. Packets that
    /// are not fragments return `None`.
    pub fn add(&mut self, packet: &Decoded<'_>, now_ms: i64) -> Option<Whole> {
        let Transport::Fragment { proto, id, offset, more, payload } = packet.transport else { return None };
        self.stats.fragments += 1;
        self.expire(now_ms);
        let key = DatagramKey { src: packet.src, dst: packet.dst, proto, id };
        let offset = usize::from(offset);
        let end = offset + payload.len();
        if end > MAX_DATAGRAM {
            self.stats.oversized += 1;
            self.remove(&key);
            return None;
        }
        if !self.datagrams.contains_key(&key) {
            while self.datagrams.len() >= MAX_DATAGRAMS || self.bytes + payload.len() > MAX_BYTES {
                let Some((_, old)) = self.datagrams.pop_oldest() else { break };
                self.bytes -= old.received;
                self.stats.evicted += 1;
            }
            let datagram = Datagram { pieces: Vec::new(), received: 0, total: None, started_ms: now_ms };
            self.datagrams.insert(key, datagram);
        }
        let d = self.datagrams.get_mut(&key).expect("inserted above");
        let beyond = |total: usize| end > total || d.pieces.iter().any(|(o, b)| o + b.len() > total);
        let contradicts = match (d.total, more) {
            (Some(total), true) => end > total,
            (Some(total), false) => end != total,
            (None, false) => beyond(end),
            (None, true) => false,
        };
        if contradicts {
            self.stats.inconsistent += 1;
            self.remove(&key);
            return None;
        }
        if !more {
            d.total = Some(end);
        }
        // Keep only the bytes no earlier fragment covered.
        let mut fresh = vec![(offset, end)];
        for &(o, ref bytes) in &d.pieces {
            let (a, b) = (o, o + bytes.len());
            let mut next = Vec::new();
            for (s, e) in fresh {
                if e <= a || s >= b {
                    next.push((s, e));
                } else {
                    self.stats.overlaps += 1;
                    if s < a {
                        next.push((s, a));
                    }
                    if e > b {
                        next.push((b, e));
                    }
                }
            }
            fresh = next;
        }
        for (s, e) in fresh {
            d.pieces.push((s, payload[s - offset..e - offset].to_vec()));
            d.received += e - s;
            self.bytes += e - s;
        }
        let total = d.total?;
        if d.received != total {
            return None;
        }
        let d = self.remove(&key).expect("present");
        let mut whole = vec![0u8; total];
        for (o, bytes) in d.pieces {
            whole[o..o + bytes.len()].copy_from_slice(&bytes);
        }
        self.stats.reassembled += 1;
        Some(Whole { src: key.src, dst: key.dst, proto, payload: whole })
    }

    fn remove(&mut self, key: &DatagramKey) -> Option<Datagram> {
        let d = self.datagrams.remove(key)?;
        self.bytes -= d.received;
        Some(d)
    }

    fn expire(&mut self, now_ms: i64) {
        while self.datagrams.oldest().is_some_and(|(_, d)| d.started_ms + MAX_AGE_MS <= now_ms) {
            let (_, old) = self.datagrams.pop_oldest().expect("just seen");
            self.bytes -= old.received;
            self.stats.expired += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fragment(id: u32, offset: u16, more: bool, payload: &[u8]) -> Decoded<'_> {
        Decoded {
            src: "10.0.0.1".parse().unwrap(),
            dst: "192.0.2.1".parse().unwrap(),
            transport: Transport::Fragment { proto: 17, id, offset, more, payload },
        }
    }

    #[test]
    fn out_of_order_fragments_make_the_datagram_and_overlaps_keep_the_first() {
        let mut d = Defragmenter::default();
        let data: Vec<u8> = (0..48).collect();
        assert!(d.add(&fragment(7, 32, false, &data[32..]), 0).is_none());
        assert!(d.add(&fragment(7, 0, true, &data[..16]), 0).is_none());
        let mut forged = data[8..32].to_vec();
        forged[0] = 0xff; // overlaps byte 8: the first copy wins
        let whole = d.add(&fragment(7, 8, true, &forged), 0).unwrap();
        assert_eq!(whole.payload, data);
        assert_eq!((d.stats.reassembled, d.stats.overlaps), (1, 1));
        assert_eq!(d.bytes, 0);
    }

    #[test]
    fn contradicting_fragments_drop_the_datagram() {
        let mut d = Defragmenter::default();
        d.add(&fragment(1, 2560, true, &[0; 8]), 0);
        assert!(d.add(&fragment(1, 0, false, &[0; 8]), 0).is_none(), "data beyond the end");
        d.add(&fragment(2, 8, false, &[0; 8]), 0);
        assert!(d.add(&fragment(2, 0, false, &[0; 4]), 0).is_none(), "two ends");
        assert_eq!((d.stats.inconsistent, d.datagrams.len(), d.bytes), (2, 0, 0));
    }

    /// The bounded fuzz pass `cargo test` runs (the libFuzzer target is `fuzz/fuzz_targets/defrag.rs`).
    #[test]
    fn random_fragment_sequences_never_panic_and_stay_bounded() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(0xf4a9);
        let mut d = Defragmenter::default();
        let payload = [0x5au8; 1500];
        for i in 0..50_000 {
            let id = rng.random_range(0..64);
            let offset = rng.random_range(0..8200u16) & !7;
            let len = rng.random_range(0..64);
            if let Some(whole) = d.add(&fragment(id, offset, rng.random_bool(0.7), &payload[..len]), i / 10) {
                assert!(whole.payload.len() <= MAX_DATAGRAM);
            }
            assert!(d.bytes <= MAX_BYTES && d.datagrams.len() <= MAX_DATAGRAMS);
        }
        assert!(d.stats.reassembled > 0 && d.stats.inconsistent > 0, "{:?}", d.stats);
    }

    #[test]
    fn the_table_is_bounded_in_count_age_and_size() {
        let mut d = Defragmenter::default();
        for id in 0..(MAX_DATAGRAMS as u32 + 5) {
            d.add(&fragment(id, 0, true, &[0; 8]), 0);
        }
        assert_eq!((d.datagrams.len(), d.stats.evicted), (MAX_DATAGRAMS, 5));
        d.add(&fragment(99_999, 0, true, &[0; 8]), MAX_AGE_MS + 1);
        assert_eq!(d.datagrams.len(), 1);
        assert!(d.add(&fragment(5, 65_528, true, &[0; 16]), MAX_AGE_MS + 1).is_none());
        assert_eq!(d.stats.oversized, 1);
    }
}
