//! The capture files `zdn-agent run` has read (`capture.pcap`), remembered in the state
//! directory so that a restart does not read them again: every sighting in them would be
//! reported twice, under new ids the collector cannot recognise as repeats.
//!
//! A file is known by its path, size and modification time: one that was appended to or
//! replaced is read again, whole. `<state_dir>/captures-read.jsonl` has one JSON line per file,
//! appended once the file's sightings are in the spool; a torn last line (a crash while
//! appending) is ignored, so that file is read again rather than lost.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Read {
    path: PathBuf,
    size: u64,
    modified_unix_ns: i128,
}

impl Read {
    fn of(path: &Path) -> std::io::Result<Read> {
        let meta = std::fs::metadata(path)?;
        let modified = meta.modified()?;
        let modified_unix_ns = match modified.duration_since(std::time::UNIX_EPOCH) {
            Ok(after) => after.as_nanos() as i128,
            Err(before) => -(before.duration().as_nanos() as i128),
        };
        Ok(Read { path: path.to_owned(), size: meta.len(), modified_unix_ns })
    }
}

/// The record of files read, in `<state_dir>/captures-read.jsonl`.
pub struct CapturesRead {
    file: PathBuf,
    read: Vec<Read>,
}

impl CapturesRead {
    pub fn open(state_dir: &Path) -> CapturesRead {
        let file = state_dir.join("captures-read.jsonl");
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let read = text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect();
        CapturesRead { file, read }
    }

    /// Whether `path`, as it is now, was read before.
    pub fn was_read(&self, path: &Path) -> bool {
        Read::of(path).is_ok_and(|now| self.read.contains(&now))
    }

    /// Records `path` as read (call once its sightings are spooled).
    pub fn mark_read(&mut self, path: &Path) -> std::io::Result<()> {
        let entry = Read::of(path)?;
        let mut line = serde_json::to_string(&entry).map_err(std::io::Error::other)?;
        line.push('\n');
        let mut out = std::fs::OpenOptions::new().create(true).append(true).open(&self.file)?;
        out.write_all(line.as_bytes())?;
        out.sync_all()?;
        self.read.push(entry);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_read_once_until_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let capture = dir.path().join("gw.pcap");
        std::fs::write(&capture, b"first").unwrap();
        let mut record = CapturesRead::open(dir.path());
        assert!(!record.was_read(&capture));
        record.mark_read(&capture).unwrap();
        assert!(CapturesRead::open(dir.path()).was_read(&capture), "remembered across restarts");
        std::fs::write(&capture, b"first and more").unwrap();
        assert!(!CapturesRead::open(dir.path()).was_read(&capture), "grown: read again");
        // A torn last line is ignored, not fatal.
        let mut f =
            std::fs::OpenOptions::new().append(true).open(dir.path().join("captures-read.jsonl")).unwrap();
        f.write_all(b"{\"path\":\"/x\",\"si").unwrap();
        assert_eq!(CapturesRead::open(dir.path()).read.len(), 1);
    }
}
