//! The 1.85M real Maltrail trails, unpacked into a temporary directory and loaded: what both
//! benchmarks of this crate run over.

use std::path::Path;
use zdn_indicators::{IndicatorSet, build_set};

pub fn real_set() -> IndicatorSet {
    let archive =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/indicators/maltrail-static.tar.xz");
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("tar")
        .arg("-xJf")
        .arg(&archive)
        .arg("-C")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    build_set(&[dir.path().join("static")], zdn_indicators::Allowlists::NONE, None).unwrap().set
}
