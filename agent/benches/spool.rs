//! The durable spool's cost: one `push` of a 256-sighting batch (one transaction, fsync'd),
//! and one delivery step (`peek` 500 + `remove` them), on the disk `TMPDIR` is on.
//!
//! `cargo bench -p zdn-agent --bench spool`

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use zdn_agent::spool::Spool;
use zdn_proto::v1;

fn sighting(i: u64) -> v1::Sighting {
    v1::Sighting {
        id: format!("0190c6f2-6a4e-7c1d-9b7a-{i:012x}"),
        indicator: "updates.evil-cdn.example".into(),
        kind: 1,
        via: 2,
        observed: "cdn.updates.evil-cdn.example".into(),
        first_seen_unix_ms: 1_768_467_600_000 + i as i64,
        last_seen_unix_ms: 1_768_467_600_000 + i as i64,
        count: 1,
        src: "h-3f9a1c2b7d4e5f60".into(),
        dst_ip: "10.0.0.53".into(),
        dst_port: 53,
        proto: "udp".into(),
        indicator_id: "maltrail:evil-cdn".into(),
        resolved_name: String::new(),
        retro: false,
    }
}

fn spool(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(&dir.path().join("spool.sqlite"), 1 << 34).unwrap();
    let mut next = 0u64;
    let mut group = c.benchmark_group("spool");
    group.throughput(Throughput::Elements(256));
    group.bench_function("push 256 (one fsync'd transaction)", |b| {
        b.iter_batched(
            || {
                let batch: Vec<_> = (next..next + 256).map(sighting).collect();
                next += 256;
                batch
            },
            |batch| assert_eq!(spool.push(&batch).queued, 256),
            BatchSize::SmallInput,
        )
    });
    group.throughput(Throughput::Elements(500));
    group.bench_function("peek 500 + remove (one delivery step)", |b| {
        b.iter_batched(
            || {
                let batch: Vec<_> = (next..next + 500).map(sighting).collect();
                next += 500;
                spool.push(&batch);
            },
            |()| {
                let rows = spool.peek(0, 500).unwrap();
                spool.remove(&rows.iter().map(|r| r.seq).collect::<Vec<_>>()).unwrap();
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = spool
}
criterion_main!(benches);
