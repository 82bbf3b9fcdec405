//! # zdn-destination-history
//!
//! What an agent's hosts contacted, kept so that an indicator published *later* can be looked
//! for in the past (a retro-hunt) — with data minimisation built in: the history holds no
//! destination in the clear, only keyed hashes of it.
//!
//! ```text
//! observation (name, address, address:port, URL, JA3/JA4) ─▶ keys::of_observation ─▶ keyed hashes
//!        host pseudonym ──────────────────────────────────────────────┐                    │
//!                                                                      ▼                    ▼
//!                                  bucket::Bucket (this hour, in memory) ─seal─▶ <dir>/<hour>.zdnh
//! indicator added later ─▶ keys::of_indicator ─▶ keyed hashes ─▶ History::hunt (every bucket kept)
//! ```
//!
//! | module | job |
//! | --- | --- |
//! | [`keys`] | the keyed hash, and which keys an observation records and an indicator looks up (a domain finds its subdomains, a network the addresses in it) |
//! | [`bucket`] | one hour: entries (key, count, first/last minute, via, hosts) and the file format |
//! | [`history`] | the directory of buckets: record, seal atomically, retention and size cap, hunt |
//!
//! Invariants:
//! - Nothing written reveals a destination without the key: entries are 64-bit SipHash-2-4
//!   values under a 128-bit secret that never leaves the agent; hosts are the agent's own
//!   pseudonyms. A test reads the files for the cleartext.
//! - An entry is 16 bytes before its hosts (at most [`bucket::MAX_HOSTS`] per entry, 4 bytes
//!   each, plus 8 per distinct host of the hour).
//! - A bucket is written whole to a temporary file and renamed over the old one; each carries
//!   a CRC-32, and one that fails it is skipped and counted: a torn write loses at most the
//!   bucket being written.
//! - Recording allocates only for a new entry or host; it never touches the disk.

#![forbid(unsafe_code)]

pub mod bucket;
pub mod history;
pub mod keys;

pub use history::{Contact, History, HistoryError, HistoryStats};
pub use keys::{Key, Keyer, Observed, Probe};
