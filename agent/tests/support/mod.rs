//! What several of the agent's test files read: the real captures of the shared test data.

use std::path::{Path, PathBuf};

/// Every capture of Suricata's verification suite (`../shared/data/pcap/suricata-verify`),
/// in a fixed order.
pub fn suricata_pcaps() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/pcap/suricata-verify");
    let mut pcaps: Vec<_> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| {
            panic!("{}: {e} (the shared test data must sit beside the repository)", root.display())
        })
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|f| f.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    pcaps.sort();
    pcaps
}
