//! Lookups in the matcher loaded with the 1.85M real Maltrail trails, as the agent does them.
//!
//! `cargo bench -p zdn-indicators --bench lookup` (unpacks the trails into a temporary
//! directory first; the numbers are in docs/BENCHMARKS.md).

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::net::IpAddr;
use trails::real_set;
use zdn_indicators::Kind;

mod trails;

fn lookups(c: &mut Criterion) {
    // On the heap, as the agent holds it (in an `ArcSwap`): a set on the bench's stack shares
    // it with criterion's own stores, and its timings then move with the struct's size.
    let set = std::sync::Arc::new(real_set());
    let listed_v4 = set.iter().find(|m| m.kind() == Kind::Ipv4).unwrap().value().parse::<IpAddr>().unwrap();
    let listed_domain = set.iter().find(|m| m.kind() == Kind::Domain).unwrap().value().into_owned();
    let sub_of_listed = format!("a.b.{listed_domain}");
    // 5.63.150.1 shares its /16 with listed networks (5.63.151.0/24), so it goes past the /16
    // gate to the tables; 192.0.2.77 lies in a /16 without any indicator, like most addresses.
    let unlisted_v4: IpAddr = "5.63.150.1".parse().unwrap();
    let quiet_v4: IpAddr = "192.0.2.77".parse().unwrap();
    assert!(set.match_ip(unlisted_v4).is_none());
    assert!(set.match_ip(quiet_v4).is_none());
    let mut g = c.benchmark_group("lookup (1.85M Maltrail trails)");
    g.bench_function("ipv4 hit", |b| b.iter(|| set.match_ip(black_box(listed_v4)).is_some()));
    g.bench_function("ipv4 miss, /16 with indicators", |b| {
        b.iter(|| set.match_ip(black_box(unlisted_v4)).is_some())
    });
    g.bench_function("ipv4 miss, /16 without", |b| b.iter(|| set.match_ip(black_box(quiet_v4)).is_some()));
    g.bench_function("ip:port miss", |b| {
        b.iter(|| set.match_ip_port(black_box(unlisted_v4), black_box(443)).is_some())
    });
    g.bench_function("domain 4 labels miss", |b| {
        b.iter(|| set.match_domain(black_box("cdn.static.example-shop.nl")).is_some())
    });
    g.bench_function("domain hit via parent", |b| {
        b.iter(|| set.match_domain(black_box(&sub_of_listed)).is_some())
    });
    g.bench_function("url miss", |b| {
        b.iter(|| set.match_text(Kind::Url, black_box("www.example.nl/index.html")).is_some())
    });
    g.finish();
}

/// IPv6 networks: the trails hold few, so a synthetic list of 20,000 (prefixes /29 to /64,
/// as hosting ranges are published) shows what a feed rich in them costs per lookup.
fn ipv6_networks(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("v6-networks.txt");
    let lines: String = (0..20_000u32)
        .map(|i| {
            let prefix = [29, 32, 40, 44, 48, 56, 64][(i % 7) as usize];
            let addr = std::net::Ipv6Addr::from((0x2a00_0000 + u128::from(i) * 16) << 96 | 1 << 64);
            format!("{}\n", ipnet::Ipv6Net::new(addr, prefix).unwrap().trunc())
        })
        .collect();
    std::fs::write(&list, lines).unwrap();
    let set = std::sync::Arc::new(
        zdn_indicators::build_set(&[list], zdn_indicators::Allowlists::NONE, None).unwrap().set,
    );
    // 2a00:10::/32 is listed; 2a00:18::/32 lies between listed networks.
    let listed: IpAddr = "2a00:10::1".parse().unwrap();
    let unlisted: IpAddr = "2a00:18::1".parse().unwrap();
    assert!(set.match_ip(listed).is_some() && set.match_ip(unlisted).is_none());
    let mut g = c.benchmark_group("lookup (20,000 IPv6 networks)");
    g.bench_function("ipv6 hit", |b| b.iter(|| set.match_ip(black_box(listed)).is_some()));
    g.bench_function("ipv6 miss", |b| b.iter(|| set.match_ip(black_box(unlisted)).is_some()));
    g.finish();
}

criterion_group!(benches, lookups, ipv6_networks);
criterion_main!(benches);
