//! Agent tests that need root, run for real in CI (`ZDN_REQUIRE_ROOT=1`, set by `.ci/run`,
//! turns a skip into a failure): the spool on a full disk (a tiny tmpfs), refusals counted,
//! nothing queued lost or broken, and the space given back once the disk has room again.
//! Live capture's root tests are in `live_capture.rs`.

mod root;

use root::{root_or_skip, run};
use std::process::Command;

/// A tmpfs of `size` mounted on a fresh directory, unmounted when dropped.
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    fn new(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path()));
        SmallDisk(dir)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

/// A sighting of about 1 KB, to fill a small disk quickly.
fn sighting(i: u32) -> zdn_proto::v1::Sighting {
    zdn_proto::v1::Sighting {
        id: format!("s-{i}"),
        indicator: format!("{i}.{}", "x".repeat(900)),
        count: 1,
        ..Default::default()
    }
}

#[test]
fn a_full_disk_refuses_new_sightings_counted_and_keeps_the_queue_intact() {
    use zdn_agent::spool::Spool;
    if !root_or_skip("a_full_disk_refuses_new_sightings_counted_and_keeps_the_queue_intact") {
        return;
    }
    let disk = SmallDisk::new("512k");
    let path = disk.0.path().join("spool.sqlite");
    let spool = Spool::open(&path, 1 << 30).unwrap();
    let (mut queued, mut refused, mut i) = (0u64, 0u64, 0u32);
    for _ in 0..2_000 {
        let batch: Vec<_> = (i..i + 8).map(sighting).collect();
        i += 8;
        let pushed = spool.push(&batch);
        queued += pushed.queued;
        refused += pushed.refused_disk;
        if refused > 0 {
            break;
        }
    }
    assert!(queued > 0 && refused > 0, "queued {queued}, refused {refused}: the disk never filled");
    assert_eq!(spool.len(), queued, "a refused batch leaves no partial rows");
    drop(spool);
    // As after a restart: the queue opens, whole, in order.
    let spool = Spool::open(&path, 1 << 30).unwrap();
    let rows = spool.peek(0, 100_000).unwrap();
    assert_eq!(rows.len() as u64, queued);
    assert!(rows.iter().enumerate().all(|(n, r)| r.sighting.id == format!("s-{n}")));
}

/// After a full disk the spool gets its space back: once room is freed, acknowledged rows are
/// deleted, the WAL is emptied into the database and truncated (it does not keep the freed
/// space), and new sightings are queued again. While the disk is full, the error names it.
#[test]
fn after_a_full_disk_the_spool_recovers_with_the_space_freed() {
    use zdn_agent::spool::{Spool, SpoolError, WAL_SIZE_LIMIT};
    if !root_or_skip("after_a_full_disk_the_spool_recovers_with_the_space_freed") {
        return;
    }
    let disk = SmallDisk::new("2m");
    let filler = disk.0.path().join("filler");
    std::fs::write(&filler, vec![0u8; 768 * 1024]).unwrap();
    let path = disk.0.path().join("spool.sqlite");
    let spool = Spool::open(&path, 1 << 30).unwrap();
    let mut i = 0u32;
    while spool.push(&(i..i + 8).map(sighting).collect::<Vec<_>>()).refused_disk == 0 {
        i += 8;
        assert!(i < 100_000, "the disk never filled");
    }
    let seqs: Vec<i64> = spool.peek(0, 100_000).unwrap().iter().map(|r| r.seq).collect();
    assert!(!seqs.is_empty());
    // Acknowledged while the disk is full: the error is about this disk, not the collector.
    if let Err(e) = spool.remove(&seqs) {
        assert!(
            matches!(e, SpoolError::DiskFull { .. }) && e.to_string().contains("agent's own disk"),
            "{e}"
        );
    }
    std::fs::remove_file(&filler).unwrap();
    spool.remove(&seqs).unwrap();
    assert!(spool.is_empty());
    assert_eq!(spool.push(&[sighting(1_000_000)]).queued, 1, "new sightings are queued again");
    let wal = std::fs::metadata(disk.0.path().join("spool.sqlite-wal")).map_or(0, |m| m.len());
    assert!(wal <= WAL_SIZE_LIMIT as u64, "the WAL kept {wal} bytes of the freed space");
}
