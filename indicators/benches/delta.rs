//! Deltas over the 1.85M real Maltrail trails: what the collector does to publish a version
//! (diff, apply, encode) and what an agent does to install it from a delta (apply, encode),
//! for a change of about 3,300 indicators (every 1,000th removed, as many added).
//!
//! `cargo bench -p zdn-indicators --bench delta` (the numbers are in docs/BENCHMARKS.md).

use criterion::{Criterion, criterion_group, criterion_main};
use std::time::Duration;
use trails::real_set;
use zdn_indicators::IndicatorSet;
use zdn_indicators::formats::parse_plain;
use zdn_indicators::set::compiled;
use zdn_indicators::set::delta::diff;

mod trails;

fn deltas(c: &mut Criterion) {
    let old = real_set();
    let mut next: Vec<_> =
        old.iter().enumerate().filter(|(i, _)| i % 1000 != 0).map(|(_, m)| m.to_indicator()).collect();
    let added: String = (0..old.len() / 1000).map(|i| format!("new-{i}.delta.example\n")).collect();
    next.extend(parse_plain("added.txt", &added).indicators);
    let new = IndicatorSet::new(next);
    let change = diff(&old, &new);
    eprintln!(
        "set: {} indicators, {} bytes compiled; change: {} added, {} removed",
        old.len(),
        compiled::encode(&old, 1).len(),
        change.added.len(),
        change.removed.len()
    );
    let mut g = c.benchmark_group("delta over the real trails");
    g.sample_size(10).measurement_time(Duration::from_secs(30));
    g.bench_function("collector: diff", |b| b.iter(|| diff(&old, &new)));
    g.bench_function("agent: apply and encode", |b| b.iter(|| compiled::encode(&old.apply(&change), 2)));
    g.finish();
}

criterion_group!(benches, deltas);
criterion_main!(benches);
