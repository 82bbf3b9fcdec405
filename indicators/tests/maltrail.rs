//! The 1.85M real Maltrail trails, checked against the trail files themselves: every line the
//! normaliser accepts is in the built set under its canonical value and found again by the
//! lookup the agent uses for its kind (no trail lost or wrongly merged while loading), and the
//! load reports' accepted / duplicate / rejected counts are exactly what the files hold.
//!
//! The oracle reads the files with the plain format's rule written out here (`#` starts a
//! comment at the start of a line or after whitespace) and canonicalises each value with
//! `normalise`, so it checks file walking, comment handling, per-file dedup, merging across
//! files and the set's lookups, not the normaliser (tested on its own).

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use zdn_indicators::{IndicatorSet, Kind, build_set, normalise};

/// What the trail files hold, counted the slow, obvious way.
#[derive(Debug, Default, PartialEq, Eq)]
struct Expected {
    accepted: usize,
    duplicates: usize,
    rejected: usize,
}

fn trail_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            trail_files(&path, out);
        } else if name.ends_with(".txt") {
            out.push(path);
        }
    }
}

fn value_of(line: &str) -> &str {
    if line.trim_start().starts_with('#') {
        return "";
    }
    let cut = [" #", "\t#"].iter().filter_map(|c| line.find(c)).min().unwrap_or(line.len());
    line[..cut].trim()
}

fn found(set: &IndicatorSet, kind: Kind, value: &str) -> bool {
    let exact = |f: Option<zdn_indicators::set::Match<'_>>| f.is_some_and(|f| f.value() == value);
    match kind {
        Kind::Domain => exact(set.match_domain(value)),
        Kind::Ipv4 | Kind::Ipv6 => exact(set.match_ip(value.parse::<IpAddr>().unwrap())),
        // The network address may itself be listed: then that more specific indicator wins.
        Kind::Cidr => set.match_ip(value.parse::<ipnet::IpNet>().unwrap().network()).is_some(),
        Kind::IpPort => {
            let sa: SocketAddr = value.parse().unwrap();
            exact(set.match_ip_port(sa.ip(), sa.port()))
        }
        kind => exact(set.match_text(kind, value)),
    }
}

#[test]
fn every_trail_in_the_files_is_in_the_set_and_the_counts_are_exact() {
    let archive =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/indicators/maltrail-static.tar.xz");
    let dir = tempfile::tempdir().unwrap();
    let status =
        Command::new("tar").arg("-xJf").arg(&archive).arg("-C").arg(dir.path()).status().expect("run tar");
    assert!(status.success(), "cannot unpack {}", archive.display());
    let root = dir.path().join("static");

    let mut files = Vec::new();
    trail_files(&root, &mut files);
    let (mut expected, mut all) = (Expected::default(), HashSet::new());
    for file in &files {
        let text = String::from_utf8_lossy(&std::fs::read(file).unwrap()).into_owned();
        let mut in_file = HashSet::new();
        for value in text.lines().map(value_of).filter(|v| !v.is_empty()) {
            match normalise(value) {
                Ok(n) if in_file.insert((n.kind, n.value.clone())) => {
                    expected.accepted += 1;
                    all.insert((n.kind, n.value));
                }
                Ok(_) => expected.duplicates += 1,
                Err(_) => expected.rejected += 1,
            }
        }
    }

    let built = build_set(&[root], zdn_indicators::Allowlists::NONE, None).unwrap();
    let reports = &built.reports;
    let loaded = Expected {
        accepted: reports.iter().map(|r| r.accepted).sum(),
        duplicates: reports.iter().map(|r| r.duplicates).sum(),
        rejected: reports.iter().map(|r| r.rejected.len()).sum(),
    };
    assert_eq!(reports.len(), files.len(), "one report per trail file");
    assert_eq!(loaded, expected);
    let skipped: BTreeMap<&String, usize> =
        reports.iter().flat_map(|r| r.skipped.iter()).map(|(k, v)| (k, *v)).collect();
    assert!(skipped.is_empty(), "plain trails have nothing to skip: {skipped:?}");
    // Sanity of scale: the corpus is what its README says.
    assert!(all.len() > 1_600_000 && expected.rejected < 500, "{} distinct, {expected:?}", all.len());

    let set = &built.set;
    assert_eq!(set.len(), all.len(), "one set entry per distinct canonical trail");
    let missing: Vec<_> = all.iter().filter(|(kind, value)| !found(set, *kind, value)).take(10).collect();
    assert!(missing.is_empty(), "trails in the files the set does not find: {missing:?}");
}
