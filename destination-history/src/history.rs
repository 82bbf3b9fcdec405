//! The directory of buckets: a [`Recorder`] per capture worker fills this hour's bucket in
//! memory; [`History::seal`] writes it (whole, atomically) when the hour ends and every few
//! minutes before that; [`History::expire`] keeps the days and bytes bounded, oldest first;
//! [`History::hunt`] looks keys up in every bucket kept.
//!
//! Files are `<hour>-<worker>.zdnh` (Unix hours), so workers never write the same file and a
//! hunt reads them all.

use crate::bucket::{Bucket, Sealed};
use crate::keys::{Key, Keyer, Observed, Probe};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const EXTENSION: &str = "zdnh";
const HOUR_MS: i64 = 3_600_000;

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("history {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HistoryError + '_ {
    move |source| HistoryError::Io { path: path.display().to_string(), source }
}

/// Counters of the history, for `/metrics` and the heartbeat.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HistoryStats {
    pub buckets: u64,
    pub bytes: u64,
    /// Buckets deleted for age or for the size cap.
    pub evicted: u64,
    /// Buckets skipped because they failed their checksum (a torn write, damage).
    pub unreadable: u64,
}

/// One worker's bucket of the current hour.
pub struct Recorder {
    keyer: Keyer,
    worker: usize,
    bucket: Option<Bucket>,
    scratch: Vec<Key>,
}

impl Recorder {
    pub fn new(keyer: Keyer, worker: usize) -> Recorder {
        Recorder { keyer, worker, bucket: None, scratch: Vec::with_capacity(16) }
    }

    /// Records `observed` for `host` at `ts_ms`; returns the previous hour's bucket when
    /// `ts_ms` is in a later hour (to be sealed).
    pub fn record(&mut self, observed: Observed<'_>, via: u8, host: u64, ts_ms: i64) -> Option<Bucket> {
        let hour = Bucket::hour_of(ts_ms);
        let finished = match &self.bucket {
            Some(b) if hour > b.hour => self.bucket.replace(Bucket::new(hour)),
            Some(_) => None,
            None => {
                self.bucket = Some(Bucket::new(hour));
                None
            }
        };
        self.scratch.clear();
        self.keyer.of_observation(observed, &mut self.scratch);
        let bucket = self.bucket.as_mut().expect("made above");
        for key in &self.scratch {
            bucket.record(*key, via, host, ts_ms);
        }
        finished
    }

    /// The bucket being recorded, to seal a snapshot of it.
    pub fn current(&self) -> Option<&Bucket> {
        self.bucket.as_ref()
    }

    pub fn worker(&self) -> usize {
        self.worker
    }
}

/// A past contact a hunt found: one key's entry in one worker's bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// Which probe (its index in the hunt's list).
    pub probe: usize,
    pub hour: i64,
    pub first_ms: i64,
    pub last_ms: i64,
    pub count: u32,
    pub via: u8,
    pub hosts: Vec<u64>,
}

/// The history directory and its limits.
pub struct History {
    dir: PathBuf,
    keyer: Keyer,
    retention_days: u32,
    max_bytes: u64,
}

impl History {
    /// Opens (creating, owner-only) the directory `dir`.
    pub fn open(
        dir: &Path,
        keyer: Keyer,
        retention_days: u32,
        max_bytes: u64,
    ) -> Result<History, HistoryError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
        }
        Ok(History { dir: dir.to_owned(), keyer, retention_days, max_bytes })
    }

    pub fn keyer(&self) -> &Keyer {
        &self.keyer
    }

    /// Writes `bucket` as worker `worker`'s file of its hour, replacing an earlier snapshot:
    /// a temporary file, synced, renamed over it.
    pub fn seal(&self, bucket: &Bucket, worker: usize) -> Result<(), HistoryError> {
        if bucket.is_empty() {
            return Ok(());
        }
        let path = self.dir.join(format!("{}-{worker}.{EXTENSION}", bucket.hour));
        let mut temp =
            tempfile::Builder::new().prefix(".sealing").tempfile_in(&self.dir).map_err(io(&path))?;
        std::io::Write::write_all(&mut temp, &bucket.encode()).map_err(io(&path))?;
        temp.as_file().sync_all().map_err(io(&path))?;
        temp.persist(&path)
            .map_err(|e| HistoryError::Io { path: path.display().to_string(), source: e.error })?;
        Ok(())
    }

    /// The bucket files, oldest hour first: (hour, path, bytes).
    fn files(&self) -> Result<Vec<(i64, PathBuf, u64)>, HistoryError> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let entry = entry.map_err(io(&self.dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(&format!(".{EXTENSION}")) else { continue };
            let Some(hour) = stem.split('-').next().and_then(|h| h.parse::<i64>().ok()) else { continue };
            let bytes = entry.metadata().map_or(0, |m| m.len());
            files.push((hour, entry.path(), bytes));
        }
        files.sort();
        Ok(files)
    }

    /// Deletes buckets older than the retention days before `now_ms` (all of them when it is
    /// 0), then the oldest until the rest fit `max_bytes`; returns what is left and what went.
    pub fn expire(&self, now_ms: i64) -> Result<HistoryStats, HistoryError> {
        let oldest_kept = Bucket::hour_of(now_ms) - i64::from(self.retention_days) * 24;
        let mut stats = HistoryStats::default();
        let mut files = self.files()?;
        let mut total: u64 = files.iter().map(|f| f.2).sum();
        let mut keep = Vec::new();
        for (hour, path, bytes) in files.drain(..) {
            if hour < oldest_kept || self.retention_days == 0 {
                remove(&path, bytes, &mut total, &mut stats)?;
            } else {
                keep.push((hour, path, bytes));
            }
        }
        for (_, path, bytes) in keep.iter() {
            if total <= self.max_bytes {
                break;
            }
            remove(path, *bytes, &mut total, &mut stats)?;
        }
        let left = self.files()?;
        stats.buckets = left.len() as u64;
        stats.bytes = left.iter().map(|f| f.2).sum();
        Ok(stats)
    }

    /// Every contact with any of `probes` in the buckets from `since_ms` on. One pass over
    /// each bucket (its keys against a map of the probes' keys), so hunting many added
    /// indicators costs about what hunting one does. Unreadable buckets are skipped and
    /// counted.
    pub fn hunt(
        &self,
        probes: &[Probe],
        since_ms: i64,
    ) -> Result<(Vec<Contact>, HistoryStats), HistoryError> {
        let mut wanted: HashMap<Key, Vec<usize>> = HashMap::new();
        for (i, probe) in probes.iter().enumerate() {
            for key in self.keyer.of_probe(probe) {
                wanted.entry(key).or_default().push(i);
            }
        }
        let mut stats = HistoryStats::default();
        let mut found = Vec::new();
        if wanted.is_empty() {
            return Ok((found, stats));
        }
        let since_hour = Bucket::hour_of(since_ms);
        for (hour, path, bytes) in self.files()? {
            if hour < since_hour {
                continue;
            }
            let file = std::fs::read(&path).map_err(io(&path))?;
            stats.buckets += 1;
            stats.bytes += bytes;
            let Ok(sealed) = Sealed::read(&file) else {
                stats.unreadable += 1;
                continue;
            };
            for (position, key) in sealed.keys() {
                let Some(probe_ids) = wanted.get(&key) else { continue };
                let entry = sealed.entry(position);
                let start = sealed.hour * HOUR_MS;
                for &probe in probe_ids {
                    found.push(Contact {
                        probe,
                        hour: sealed.hour,
                        first_ms: start + i64::from(entry.first_minute) * 60_000,
                        last_ms: start + i64::from(entry.last_minute) * 60_000 + 59_999,
                        count: entry.count,
                        via: entry.via,
                        hosts: entry.hosts.clone(),
                    });
                }
            }
        }
        Ok((found, stats))
    }
}

fn remove(path: &Path, bytes: u64, total: &mut u64, stats: &mut HistoryStats) -> Result<(), HistoryError> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(path)(e)),
    }
    *total = total.saturating_sub(bytes);
    stats.evicted += 1;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: i64 = 24 * HOUR_MS;

    fn history(dir: &Path, days: u32, max_bytes: u64) -> History {
        History::open(dir, Keyer::new([1; 16]), days, max_bytes).unwrap()
    }

    #[test]
    fn recorded_contacts_are_found_by_later_indicators_and_nothing_is_in_the_clear() {
        let dir = tempfile::tempdir().unwrap();
        let h = history(dir.path(), 14, u64::MAX);
        let mut r = Recorder::new(h.keyer().clone(), 0);
        let t0 = 20_000 * DAY_MS + 10 * HOUR_MS;
        assert!(r.record(Observed::Name("cdn.updates.evil-cdn.example"), 1, 0xa1, t0 + 60_000).is_none());
        r.record(Observed::Address("203.0.113.66".parse().unwrap()), 2, 0xb2, t0 + 120_000);
        let finished = r.record(Observed::Name("other.example"), 1, 0xa1, t0 + HOUR_MS).unwrap();
        h.seal(&finished, 0).unwrap();
        h.seal(r.current().unwrap(), 0).unwrap();
        let probes = [
            Probe::Domain { name: "evil-cdn.example".into(), exact: false },
            Probe::Network("203.0.113.0/24".parse().unwrap()),
            Probe::Domain { name: "absent.example".into(), exact: false },
        ];
        let (found, stats) = h.hunt(&probes, t0 - DAY_MS).unwrap();
        assert_eq!(stats.buckets, 2);
        let mut by_probe: Vec<(usize, Vec<u64>, i64)> =
            found.iter().map(|c| (c.probe, c.hosts.clone(), c.first_ms)).collect();
        by_probe.sort();
        assert_eq!(by_probe, [(0, vec![0xa1], t0 + 60_000), (1, vec![0xb2], t0 + 120_000)]);
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            for clear in ["evil-cdn", "example", "other"] {
                assert!(!text.contains(clear), "{clear} in the clear");
            }
            assert!(!bytes.windows(4).any(|w| w == [203, 0, 113, 66]), "the address in the clear");
        }
    }

    #[test]
    fn old_buckets_go_first_and_a_damaged_one_is_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let h = history(dir.path(), 14, u64::MAX);
        let now = 20_000 * DAY_MS;
        for days_ago in [20, 10, 1] {
            let mut b = Bucket::new(Bucket::hour_of(now - days_ago * DAY_MS));
            b.record(1, 0, 1, now - days_ago * DAY_MS);
            h.seal(&b, 0).unwrap();
        }
        let stats = h.expire(now).unwrap();
        assert_eq!((stats.evicted, stats.buckets), (1, 2), "the one older than 14 days");
        let small = history(dir.path(), 14, 1);
        assert_eq!(small.expire(now).unwrap().buckets, 0, "over the size cap, oldest first, until it fits");
        let mut b = Bucket::new(Bucket::hour_of(now));
        b.record(1, 0, 1, now);
        h.seal(&b, 3).unwrap();
        let path = dir.path().join(format!("{}-3.zdnh", b.hour));
        let mut bytes = std::fs::read(&path).unwrap();
        let end = bytes.len() - 1;
        bytes[end] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let probe = [Probe::Address("10.0.0.1".parse().unwrap())];
        assert_eq!(h.hunt(&probe, 0).unwrap().1.unreadable, 1);
        assert_eq!(history(dir.path(), 0, u64::MAX).expire(now).unwrap().buckets, 0, "0 days: none kept");
    }
}
