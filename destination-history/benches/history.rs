//! The destination history's cost: recording one observation (a name with its parents, an
//! address with its prefixes) into the hour's bucket, with names from a pool too large for
//! caches; and a retro-hunt of 10,000 added indicators over 14 days of hourly buckets of a
//! synthetic gateway (5,000 hosts, 20,000 distinct destinations an hour). It prints the bytes
//! per entry and the disk of that gateway day before measuring.
//!
//! `cargo bench -p zdn-destination-history --bench history`

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use zdn_destination_history::history::Recorder;
use zdn_destination_history::{History, Keyer, Observed, Probe};

const HOUR_MS: i64 = 3_600_000;
const T0: i64 = 20_000 * 24 * HOUR_MS;

fn name(i: u64) -> String {
    format!("host{}.site{}.example{}.com", i % 97, i / 97 % 5_003, i % 7)
}

fn address(i: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x5000_0000u32.wrapping_add((i as u32).wrapping_mul(2_654_435_761))))
}

fn record(c: &mut Criterion) {
    let keyer = Keyer::new([9; 16]);
    let names: Vec<String> = (0..1_000_000).map(name).collect();
    let gateway: Vec<String> = (0..20_000).map(name).collect();
    let mut g = c.benchmark_group("record");
    let mut recorder = Recorder::new(keyer.clone(), 0);
    let mut i = 0u64;
    g.bench_function("name, 1M distinct an hour (a DNS query: the name and its parents)", |b| {
        b.iter(|| {
            i = (i + 7_919) % names.len() as u64;
            black_box(recorder.record(
                Observed::Name(&names[i as usize]),
                1,
                i % 5_000,
                T0 + (i as i64 % HOUR_MS),
            ));
        })
    });
    let mut recorder = Recorder::new(keyer.clone(), 2);
    g.bench_function("name, 20000 distinct an hour (a gateway's hour)", |b| {
        b.iter(|| {
            i = (i + 7_919) % gateway.len() as u64;
            black_box(recorder.record(
                Observed::Name(&gateway[i as usize]),
                1,
                i % 5_000,
                T0 + (i as i64 % HOUR_MS),
            ));
        })
    });
    let mut recorder = Recorder::new(keyer, 1);
    g.bench_function("address (a SYN: the address and its prefixes)", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            black_box(recorder.record(
                Observed::Address(address(i % 1_000_000)),
                2,
                i % 5_000,
                T0 + (i as i64 % HOUR_MS),
            ));
        })
    });
    g.finish();
}

fn hunt(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let keyer = Keyer::new([9; 16]);
    let history = History::open(dir.path(), keyer.clone(), 14, u64::MAX).unwrap();
    let (mut entries, mut bytes) = (0usize, 0u64);
    for hour in 0..14 * 24 {
        let mut recorder = Recorder::new(keyer.clone(), 0);
        for d in 0..20_000u64 {
            let at = T0 + hour * HOUR_MS + (d as i64 % 3_600) * 1_000;
            let destination = (hour as u64 * 7_777 + d) % 200_000;
            recorder.record(Observed::Address(address(destination)), 2, d % 5_000, at);
        }
        let bucket = recorder.current().unwrap();
        entries += bucket.len();
        history.seal(bucket, 0).unwrap();
    }
    for e in std::fs::read_dir(dir.path()).unwrap() {
        bytes += e.unwrap().metadata().unwrap().len();
    }
    eprintln!(
        "14 days x 24 hours: {entries} entries (address + 2 prefixes per destination), {:.1} MB on disk, {:.1} MB a day, {:.1} bytes per entry with its host",
        bytes as f64 / 1e6,
        bytes as f64 / 14e6,
        bytes as f64 / entries as f64
    );
    let probes: Vec<Probe> = (0..10_000u64).map(|i| Probe::Address(address(i * 37))).collect();
    let mut g = c.benchmark_group("hunt");
    g.sample_size(10);
    g.bench_function("10000 indicators over 14 days (336 buckets)", |b| {
        b.iter(|| black_box(history.hunt(&probes, T0).unwrap().0.len()))
    });
    g.finish();
}

criterion_group!(benches, record, hunt);
criterion_main!(benches);
