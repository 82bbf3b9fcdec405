//! The 1.85M real Maltrail trails: they load, almost all are accepted, and every indicator in
//! the set is found again by the lookup the agent uses for its kind (no false negatives).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Command;
use zdn_indicators::{Kind, build_set};

#[test]
fn every_real_trail_is_found_again() {
    let archive =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/indicators/maltrail-static.tar.xz");
    let dir = tempfile::tempdir().unwrap();
    let status =
        Command::new("tar").arg("-xJf").arg(&archive).arg("-C").arg(dir.path()).status().expect("run tar");
    assert!(status.success(), "cannot unpack {}", archive.display());
    let built = build_set(&[dir.path().join("static")], &[], None).unwrap();
    let set = &built.set;
    let rejected: usize = built.reports.iter().map(|r| r.rejected.len()).sum();
    assert!(set.len() > 1_600_000, "only {} indicators", set.len());
    // What is rejected is reported with file and line: Maltrail's regex trails and a few
    // malformed entries (ports > 65535, single labels).
    assert!(rejected < 500, "{rejected} rejected");
    let mut misses = Vec::new();
    for m in set.iter() {
        let value = m.value();
        let found = match m.kind() {
            Kind::Domain => set.match_domain(&value).map(|f| f.value() == value),
            Kind::Ipv4 | Kind::Ipv6 => {
                set.match_ip(value.parse::<IpAddr>().unwrap()).map(|f| f.value() == value)
            }
            // The network address may itself be listed: then that more specific indicator wins.
            Kind::Cidr => set.match_ip(value.parse::<ipnet::IpNet>().unwrap().network()).map(|_| true),
            Kind::IpPort => {
                let sa: SocketAddr = value.parse().unwrap();
                set.match_ip_port(sa.ip(), sa.port()).map(|f| f.value() == value)
            }
            kind => set.match_text(kind, &value).map(|f| f.value() == value),
        };
        if found != Some(true) && misses.len() < 10 {
            misses.push((m.kind(), value.into_owned()));
        }
    }
    assert!(misses.is_empty(), "indicators the matcher does not find: {misses:?}");
}
