//! One hour of history: in memory while it is recorded, then one file.
//!
//! File layout (little-endian), all of it covered by the CRC-32 in the header:
//!
//! ```text
//! header   "ZDNH" | version u8 (1) | 3 zero bytes | hour u64 (Unix hours) | entries u32 | hosts u32 | host refs u32 | crc32 u32
//! entries  key u64 | count u32 | first minute u8 | last minute u8 | via u8 | hosts u8    (16 bytes, sorted by key)
//! hosts    pseudonym u64                                                              (the hour's distinct hosts)
//! refs     host index u32                                                             (each entry's hosts, in entry order)
//! ```

use crate::keys::Key;
use std::collections::HashMap;

/// The maps' hasher: their keys are already keyed hashes (uniform 64-bit values) or host
/// pseudonyms (HMAC outputs), so they are used as they are instead of hashed again.
#[derive(Debug, Default, Clone, Copy)]
pub struct Prehashed(u64);

impl std::hash::Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type PrehashedMap<V> = HashMap<u64, V, std::hash::BuildHasherDefault<Prehashed>>;

/// Hosts kept per entry at most; more are counted (the entry's count still grows).
pub const MAX_HOSTS: usize = 8;

const MAGIC: &[u8; 4] = b"ZDNH";
const VERSION: u8 = 1;
const HEADER: usize = 32;
const ENTRY: usize = 16;
const HOUR_MS: i64 = 3_600_000;

/// What one bucket says about one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub count: u32,
    /// Minutes into the hour of the first and last contact.
    pub first_minute: u8,
    pub last_minute: u8,
    /// The recording's own code for how it was seen (the agent's `Via`).
    pub via: u8,
    pub hosts: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Open {
    count: u32,
    first_minute: u8,
    last_minute: u8,
    via: u8,
    hosts: [u32; MAX_HOSTS],
    host_count: u8,
}

/// One hour being recorded.
#[derive(Debug, Default)]
pub struct Bucket {
    pub hour: i64,
    entries: PrehashedMap<Open>,
    host_index: PrehashedMap<u32>,
    hosts: Vec<u64>,
    /// Hosts not kept because an entry already held [`MAX_HOSTS`].
    pub hosts_dropped: u64,
}

/// Why a bucket file was not read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BucketError {
    #[error("not a history bucket (magic or version)")]
    Format,
    #[error("truncated")]
    Truncated,
    #[error("checksum mismatch (torn or damaged)")]
    Checksum,
}

impl Bucket {
    pub fn new(hour: i64) -> Bucket {
        Bucket { hour, ..Bucket::default() }
    }

    /// The hour (Unix hours) of `ts_ms`.
    pub fn hour_of(ts_ms: i64) -> i64 {
        ts_ms.div_euclid(HOUR_MS)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records a contact with `key` by `host` (its pseudonym) at `ts_ms`, seen by `via`.
    pub fn record(&mut self, key: Key, via: u8, host: u64, ts_ms: i64) {
        let minute = u8::try_from((ts_ms - self.hour * HOUR_MS).clamp(0, HOUR_MS - 1) / 60_000).unwrap_or(59);
        let next_host = u32::try_from(self.hosts.len()).unwrap_or(u32::MAX);
        let host_at = *self.host_index.entry(host).or_insert_with(|| {
            self.hosts.push(host);
            next_host
        });
        let open = self.entries.entry(key).or_insert(Open {
            count: 0,
            first_minute: minute,
            last_minute: minute,
            via,
            hosts: [0; MAX_HOSTS],
            host_count: 0,
        });
        open.count = open.count.saturating_add(1);
        open.first_minute = open.first_minute.min(minute);
        open.last_minute = open.last_minute.max(minute);
        let held = &open.hosts[..usize::from(open.host_count)];
        if !held.contains(&host_at) {
            if usize::from(open.host_count) < MAX_HOSTS {
                open.hosts[usize::from(open.host_count)] = host_at;
                open.host_count += 1;
            } else {
                self.hosts_dropped += 1;
            }
        }
    }

    /// The file this bucket is.
    pub fn encode(&self) -> Vec<u8> {
        let mut keys: Vec<&Key> = self.entries.keys().collect();
        keys.sort_unstable();
        let refs: usize = self.entries.values().map(|o| usize::from(o.host_count)).sum();
        let mut body = Vec::with_capacity(keys.len() * ENTRY + self.hosts.len() * 8 + refs * 4);
        for key in &keys {
            let o = &self.entries[key];
            body.extend_from_slice(&key.to_le_bytes());
            body.extend_from_slice(&o.count.to_le_bytes());
            body.extend_from_slice(&[o.first_minute, o.last_minute, o.via, o.host_count]);
        }
        for host in &self.hosts {
            body.extend_from_slice(&host.to_le_bytes());
        }
        for key in &keys {
            let o = &self.entries[key];
            for host in &o.hosts[..usize::from(o.host_count)] {
                body.extend_from_slice(&host.to_le_bytes());
            }
        }
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
        let mut file = Vec::with_capacity(HEADER + body.len());
        file.extend_from_slice(MAGIC);
        file.extend_from_slice(&[VERSION, 0, 0, 0]);
        file.extend_from_slice(&self.hour.to_le_bytes());
        file.extend_from_slice(&count(keys.len()));
        file.extend_from_slice(&count(self.hosts.len()));
        file.extend_from_slice(&count(refs));
        file.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        file.extend_from_slice(&body);
        file
    }
}

/// A sealed bucket, read back: its hour, and a lookup by key.
#[derive(Debug)]
pub struct Sealed<'b> {
    pub hour: i64,
    entries: &'b [u8],
    hosts: &'b [u8],
    refs: &'b [u8],
    /// Where each entry's hosts start in `refs`.
    ref_starts: Vec<u32>,
}

impl<'b> Sealed<'b> {
    /// Reads `file`, checking its format, lengths and checksum.
    pub fn read(file: &'b [u8]) -> Result<Sealed<'b>, BucketError> {
        if file.len() < HEADER {
            return Err(BucketError::Truncated);
        }
        if &file[..4] != MAGIC || file[4] != VERSION {
            return Err(BucketError::Format);
        }
        let u32_at = |at: usize| u32::from_le_bytes(file[at..at + 4].try_into().expect("4 bytes")) as usize;
        let hour = i64::from_le_bytes(file[8..16].try_into().expect("8 bytes"));
        let (entries, hosts, refs, crc) = (u32_at(16), u32_at(20), u32_at(24), u32_at(28));
        let body = &file[HEADER..];
        let expected = entries
            .checked_mul(ENTRY)
            .and_then(|e| hosts.checked_mul(8).and_then(|h| e.checked_add(h)))
            .and_then(|eh| refs.checked_mul(4).and_then(|r| eh.checked_add(r)))
            .ok_or(BucketError::Truncated)?;
        if body.len() != expected {
            return Err(BucketError::Truncated);
        }
        if crc32fast::hash(body) as usize != crc {
            return Err(BucketError::Checksum);
        }
        let (entries, rest) = body.split_at(entries * ENTRY);
        let (hosts, refs) = rest.split_at(hosts * 8);
        let mut ref_starts = Vec::with_capacity(entries.len() / ENTRY);
        let mut at = 0u32;
        for entry in entries.chunks_exact(ENTRY) {
            ref_starts.push(at);
            at += u32::from(entry[15]);
        }
        if at as usize * 4 != refs.len() {
            return Err(BucketError::Truncated);
        }
        Ok(Sealed { hour, entries, hosts, refs, ref_starts })
    }

    pub fn len(&self) -> usize {
        self.ref_starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ref_starts.is_empty()
    }

    /// Every key in the bucket, in order, with its position.
    pub fn keys(&self) -> impl Iterator<Item = (usize, Key)> + '_ {
        self.entries
            .chunks_exact(ENTRY)
            .enumerate()
            .map(|(i, e)| (i, u64::from_le_bytes(e[..8].try_into().expect("8 bytes"))))
    }

    /// The entry at `position` (from [`Sealed::keys`]); a host index out of range is skipped.
    pub fn entry(&self, position: usize) -> Entry {
        let e = &self.entries[position * ENTRY..(position + 1) * ENTRY];
        let start = self.ref_starts[position] as usize;
        let hosts = (start..start + usize::from(e[15]))
            .filter_map(|r| {
                let index = u32::from_le_bytes(self.refs[r * 4..r * 4 + 4].try_into().ok()?) as usize;
                let bytes = self.hosts.get(index * 8..index * 8 + 8)?;
                Some(u64::from_le_bytes(bytes.try_into().ok()?))
            })
            .collect();
        Entry {
            count: u32::from_le_bytes(e[8..12].try_into().expect("4 bytes")),
            first_minute: e[12],
            last_minute: e[13],
            via: e[14],
            hosts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_reads_back_what_was_recorded_in_16_bytes_an_entry() {
        let hour = 493_000;
        let mut b = Bucket::new(hour);
        let at = |minute: i64| hour * HOUR_MS + minute * 60_000;
        b.record(42, 1, 0xaaaa, at(5));
        b.record(42, 1, 0xbbbb, at(50));
        b.record(42, 1, 0xaaaa, at(20));
        b.record(7, 3, 0xbbbb, at(59));
        for host in 0..20u64 {
            b.record(9, 2, 1000 + host, at(1));
        }
        assert_eq!(b.hosts_dropped, 20 - MAX_HOSTS as u64);
        let file = b.encode();
        let hosts = 2 + 20;
        let refs = 2 + 1 + MAX_HOSTS;
        assert_eq!(file.len(), HEADER + 3 * ENTRY + hosts * 8 + refs * 4);
        let sealed = Sealed::read(&file).unwrap();
        assert_eq!(sealed.hour, hour);
        let by_key: HashMap<Key, Entry> = sealed.keys().map(|(i, k)| (k, sealed.entry(i))).collect();
        assert_eq!(
            by_key[&42],
            Entry { count: 3, first_minute: 5, last_minute: 50, via: 1, hosts: vec![0xaaaa, 0xbbbb] }
        );
        assert_eq!(by_key[&7].hosts, [0xbbbb]);
        assert_eq!(by_key[&9].hosts.len(), MAX_HOSTS);
    }

    #[test]
    fn a_torn_or_damaged_bucket_is_refused_whole() {
        let mut b = Bucket::new(1);
        for key in 0..100 {
            b.record(key, 0, key % 7, 3_600_000 + key as i64);
        }
        let file = b.encode();
        for cut in [0, 10, HEADER, file.len() / 2, file.len() - 1] {
            assert!(Sealed::read(&file[..cut]).is_err(), "cut at {cut}");
        }
        for at in [HEADER + 3, file.len() - 2] {
            let mut damaged = file.clone();
            damaged[at] ^= 0x40;
            assert_eq!(Sealed::read(&damaged).unwrap_err(), BucketError::Checksum);
        }
        let mut other = file.clone();
        other[0] = b'X';
        assert_eq!(Sealed::read(&other).unwrap_err(), BucketError::Format);
        // Random bytes never panic.
        for seed in 0..200u64 {
            let junk: Vec<u8> = (0..seed as usize * 3).map(|i| (i as u64 * 31 + seed) as u8).collect();
            let _ = Sealed::read(&junk);
        }
    }
}
