//! The first bytes of TCP client streams, put back together when a message that names the
//! destination (a TLS ClientHello, HTTP request headers) spans several segments — modern
//! browsers' post-quantum key shares make ~1.8 KB ClientHellos that never fit one segment.
//!
//! Bounded on every axis: at most [`MAX_STREAMS`] streams are pending, each holds at most
//! [`MAX_BYTES`], and a stream not completed within [`MAX_AGE_MS`] of packet time is dropped.
//! When the table is full the oldest pending stream is evicted (a flood of half-sent hellos
//! cannot lock new streams out). Out-of-order segments end a stream's reassembly (a gap is
//! counted, not guessed at); retransmissions are ignored. A message complete in one segment —
//! the common case — is parsed in place and never enters the table.

use crate::fifo::FifoMap;
use std::borrow::Cow;
use std::net::IpAddr;

pub const MAX_STREAMS: usize = 4096;
pub const MAX_BYTES: usize = 16 * 1024;
pub const MAX_AGE_MS: i64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
}

/// What the caller's classifier says of the stream bytes so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Complete,
    Incomplete,
    /// Not a message we read (or malformed): stop following the stream.
    NotOurs,
}

/// Counters of reassembly, for the heartbeat's blind spots.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StreamStats {
    /// Messages completed from several segments.
    pub reassembled: u64,
    /// Streams abandoned: a segment was missing or out of order.
    pub gaps: u64,
    /// Streams abandoned: the message grew beyond [`MAX_BYTES`].
    pub oversized: u64,
    /// Pending streams evicted because the table was full.
    pub evicted: u64,
    /// Pending streams dropped for age.
    pub expired: u64,
}

struct Pending {
    buf: Vec<u8>,
    next_seq: u32,
    started_ms: i64,
}

#[derive(Default)]
pub struct StreamTable {
    pending: FifoMap<FlowKey, Pending>,
    pub stats: StreamStats,
}

impl StreamTable {
    /// Offers one client→server segment with payload. Returns the complete message's bytes
    /// (borrowed from the segment when it was whole, owned when reassembled).
    pub fn offer<'a>(
        &mut self,
        key: FlowKey,
        seq: u32,
        payload: &'a [u8],
        now_ms: i64,
        classify: impl Fn(&[u8]) -> Unit,
    ) -> Option<Cow<'a, [u8]>> {
        if let Some(p) = self.pending.get_mut(&key) {
            let ahead = seq.wrapping_sub(p.next_seq) as i32;
            let end_ahead = seq.wrapping_add(payload.len() as u32).wrapping_sub(p.next_seq) as i32;
            if end_ahead <= 0 {
                return None; // a retransmission of what we have
            }
            if ahead > 0 {
                self.pending.remove(&key);
                self.stats.gaps += 1;
                return None;
            }
            let new = &payload[(-ahead) as usize..]; // overlap trimmed
            if p.buf.len() + new.len() > MAX_BYTES {
                self.pending.remove(&key);
                self.stats.oversized += 1;
                return None;
            }
            p.buf.extend_from_slice(new);
            p.next_seq = p.next_seq.wrapping_add(new.len() as u32);
            return match classify(&p.buf) {
                Unit::Incomplete => None,
                Unit::NotOurs => {
                    self.pending.remove(&key);
                    None
                }
                Unit::Complete => {
                    self.stats.reassembled += 1;
                    self.pending.remove(&key).map(|p| Cow::Owned(p.buf))
                }
            };
        }
        match classify(payload) {
            Unit::Complete => Some(Cow::Borrowed(payload)),
            Unit::NotOurs => None,
            Unit::Incomplete if payload.len() > MAX_BYTES => {
                self.stats.oversized += 1;
                None
            }
            Unit::Incomplete => {
                self.expire(now_ms);
                if self.pending.len() >= MAX_STREAMS && self.pending.pop_oldest().is_some() {
                    self.stats.evicted += 1;
                }
                let mut buf = Vec::with_capacity(payload.len() * 2);
                buf.extend_from_slice(payload);
                let next_seq = seq.wrapping_add(payload.len() as u32);
                self.pending.insert(key, Pending { buf, next_seq, started_ms: now_ms });
                None
            }
        }
    }

    /// Drops pending streams older than [`MAX_AGE_MS`].
    fn expire(&mut self, now_ms: i64) {
        while self.pending.oldest().is_some_and(|(_, p)| p.started_ms + MAX_AGE_MS <= now_ms) {
            self.pending.pop_oldest();
            self.stats.expired += 1;
        }
    }

    /// Streams waiting for more segments.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16) -> FlowKey {
        FlowKey {
            src: "10.0.0.1".parse().unwrap(),
            dst: "192.0.2.1".parse().unwrap(),
            src_port: port,
            dst_port: 443,
        }
    }

    /// Complete once the bytes end with `!`.
    fn bang(b: &[u8]) -> Unit {
        if b.ends_with(b"!") { Unit::Complete } else { Unit::Incomplete }
    }

    #[test]
    fn segments_are_joined_in_order_and_gaps_give_up() {
        let mut t = StreamTable::default();
        assert_eq!(t.offer(key(1), 100, b"whole!", 0, bang).as_deref(), Some(&b"whole!"[..]));
        assert!(t.is_empty(), "a whole message never enters the table");
        assert!(t.offer(key(1), 100, b"hel", 0, bang).is_none());
        assert!(t.offer(key(1), 100, b"hel", 0, bang).is_none(), "retransmission");
        assert!(t.offer(key(1), 102, b"llo", 0, bang).is_none(), "overlap trimmed");
        assert_eq!(t.offer(key(1), 105, b" there!", 0, bang).as_deref(), Some(&b"hello there!"[..]));
        assert_eq!(t.stats.reassembled, 1);
        assert!(t.offer(key(2), u32::MAX - 1, b"ab", 0, bang).is_none());
        assert_eq!(t.offer(key(2), 0, b"c!", 0, bang).as_deref(), Some(&b"abc!"[..]), "sequence wraps");
        assert!(t.offer(key(3), 10, b"ab", 0, bang).is_none());
        assert!(t.offer(key(3), 20, b"c!", 0, bang).is_none());
        assert_eq!((t.stats.gaps, t.len()), (1, 0));
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut t = StreamTable::default();
        for port in 0..(MAX_STREAMS as u16 + 10) {
            t.offer(key(port), 0, b"x", 0, bang);
        }
        assert_eq!((t.len(), t.stats.evicted), (MAX_STREAMS, 10));
        t.offer(key(60_000), 0, b"x", MAX_AGE_MS + 1, bang);
        assert_eq!((t.len(), t.stats.expired), (1, MAX_STREAMS as u64));
        let big = vec![b'x'; MAX_BYTES];
        t.offer(key(60_001), 0, &big[..10], MAX_AGE_MS + 1, bang);
        assert!(t.offer(key(60_001), 10, &big, MAX_AGE_MS + 1, bang).is_none());
        assert_eq!(t.stats.oversized, 1);
    }
}
