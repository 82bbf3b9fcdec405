//! The loaders on the real samples in `../shared/data/intel-samples/`: `truth.json` says which
//! values must match (live) and which must not (dead: `to_ids: false` or expired).

use serde_json::Value;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use zdn_indicators::{IndicatorSet, Kind, build_set, load, normalise};

fn samples(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/intel-samples").join(rel)
}

fn truth(section: &str, state: &str) -> Vec<(String, String)> {
    let t: Value = serde_json::from_slice(&std::fs::read(samples("truth.json")).unwrap()).unwrap();
    t[section][state]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["value"].as_str().unwrap().to_owned(), e["kind"].as_str().unwrap().to_owned()))
        .collect()
}

/// Whether `raw` matches, looked up the way the agent looks up what it sees.
fn matches(set: &IndicatorSet, raw: &str) -> bool {
    let n = normalise(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
    match n.kind {
        Kind::Domain => set.match_domain(&n.value).is_some(),
        Kind::Ipv4 | Kind::Ipv6 => set.match_ip(n.value.parse::<IpAddr>().unwrap()).is_some(),
        Kind::IpPort => {
            let sa: SocketAddr = n.value.parse().unwrap();
            set.match_ip_port(sa.ip(), sa.port()).is_some()
        }
        kind => set.match_text(kind, &n.value).is_some(),
    }
}

/// Whether exactly this value is an indicator of the set (not merely covered by a parent).
fn holds(set: &IndicatorSet, raw: &str) -> bool {
    let n = normalise(raw).unwrap();
    set.contains(n.kind, &n.value)
}

fn check(path: &Path, section: &str) {
    let built = build_set(&[path.to_owned()], zdn_indicators::Allowlists::NONE, None).unwrap();
    let set = &built.set;
    let live = truth(section, "live");
    let missing: Vec<_> = live.iter().filter(|(v, _)| !matches(set, v)).collect();
    assert!(missing.is_empty(), "{section}: live values that do not match: {missing:?}");
    let dead = truth(section, "dead");
    let present: Vec<_> = dead.iter().filter(|(v, _)| holds(set, v)).collect();
    assert!(present.is_empty(), "{section}: dead values in the set: {present:?}");
    for r in &built.reports {
        assert!(r.rejected.is_empty(), "{r}");
    }
}

#[test]
fn misp_feed_live_values_match_and_dead_ones_do_not() {
    check(&samples("misp-feed"), "misp");
    // The manifest alone names the same feed.
    check(&samples("misp-feed/manifest.json"), "misp");
    let feed = &load(&samples("misp-feed")).unwrap()[0];
    assert!(feed.report.skipped["to_ids false"] > 0);
    let tlps: std::collections::BTreeSet<&str> =
        feed.indicators.iter().map(|i| i.meta.tlp.as_str()).collect();
    assert!(tlps.contains("amber") && tlps.contains("clear"), "{tlps:?}");
    assert!(feed.indicators.iter().all(|i| !i.meta.event.is_empty() && i.id().len() == 36));
}

#[test]
fn stix_bundles_live_values_match_and_expired_ones_do_not() {
    check(&samples("stix21"), "stix");
    let skipped: usize = load(&samples("stix21"))
        .unwrap()
        .iter()
        .map(|l| l.report.skipped.get("expired").copied().unwrap_or(0))
        .sum();
    assert!(skipped > 0);
}

#[test]
fn zeek_and_plain_samples_hold_the_same_values() {
    let zeek = build_set(&[samples("zeek-intel.txt")], zdn_indicators::Allowlists::NONE, None).unwrap();
    let plain = build_set(&[samples("plain.txt")], zdn_indicators::Allowlists::NONE, None).unwrap();
    assert_eq!(zeek.reports[0].format, "zeek-intel");
    for r in zeek.reports.iter().chain(&plain.reports) {
        assert!(r.rejected.is_empty(), "{r}");
    }
    // Zeek's Intel framework has no IP:port type; everything else is the same list.
    let values = |s: &IndicatorSet| {
        s.iter()
            .filter(|i| i.kind() != Kind::IpPort)
            .map(|i| (i.kind(), i.value().into_owned()))
            .collect::<std::collections::BTreeSet<_>>()
    };
    let (z, p) = (values(&zeek.set), values(&plain.set));
    let differ: Vec<_> = z.symmetric_difference(&p).take(10).collect();
    assert!(differ.is_empty(), "zeek and plain differ in: {differ:?}");
    assert!(zeek.set.len() > 500);
}

#[test]
fn real_misp_exports_and_misp_made_stix_load() {
    for dir in ["misp-events", "stix21-from-misp"] {
        for entry in std::fs::read_dir(samples(dir)).unwrap() {
            let path = entry.unwrap().path();
            match load(&path) {
                Ok(sources) => {
                    assert!(sources.iter().all(|s| s.report.rejected.is_empty()), "{}", sources[0].report)
                }
                // Some test events carry no network indicator at all: that must say so.
                Err(e) => assert!(e.to_string().contains("holds no indicators"), "{}: {e}", path.display()),
            }
        }
    }
    let event = &load(&samples("misp-events/existing_event.json")).unwrap()[0];
    assert_eq!(event.report.format, "misp-event");
    assert!(event.report.skipped["type sha1"] > 0, "hashes are counted, not matched");
}

#[test]
fn a_warninglist_is_refused_as_indicators_and_works_as_allowlist() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("trend")).unwrap();
    let list = dir.path().join("trend/list.json");
    std::fs::write(
        &list,
        r#"{"name":"t","type":"hostname","matching_attributes":["domain"],"list":["trendav.vip"]}"#,
    )
    .unwrap();
    let err = load(&list).unwrap_err().to_string();
    assert!(err.contains("pass it as an allowlist"), "{err}");
    let policies = zdn_indicators::Policies::default();
    let allowlists = zdn_indicators::Allowlists { paths: &[list], policies: &policies };
    let built = build_set(&[samples("plain.txt")], allowlists, None).unwrap();
    assert!(built.suppressed.iter().any(|i| i.value == "trendav.vip"));
    assert!(built.set.match_domain("trendav.vip").is_none());
    let summary = built.summary();
    assert!(summary.contains("warninglists: 1 lists, 1 entries; 1 indicators withdrawn"), "{summary}");
    assert!(
        summary.contains("\n  trend (warninglist/hostname, policy specific): 1 withdrawn, 0 flagged"),
        "{summary}"
    );
}

#[test]
fn a_damaged_misp_feed_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(samples("misp-feed")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    let victim = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().len() == 41)
        .unwrap();
    std::fs::write(&victim, "{ not json").unwrap();
    let err = load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("not valid MISP event") && err.contains(victim.to_str().unwrap()), "{err}");
    std::fs::remove_file(&victim).unwrap();
    let err = load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("missing"), "{err}");
    std::fs::write(dir.path().join("manifest.json"), "[1, 2]").unwrap();
    let err = load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("not an object of event uuids"), "{err}");
}
