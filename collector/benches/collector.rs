//! Whole-collector benchmark over real gRPC and TLS on loopback, against the collector targets
//! of the product specification:
//!
//! 1. **ingest**: 100 agents of 100 institutions stream batches of 1000 sightings at once;
//!    sustained sightings/s from the first batch sent to the last acknowledgement (an ack
//!    means the batch is committed durably) — for a worst-case and a steady workload
//!    ([`Workload`]), `ZDN_BENCH_SIGHTINGS` each.
//! 2. **correlation latency**: a `WatchCorrelations` subscriber; a second institution reports
//!    a sighting of an indicator a first one already reported; time from sending that batch
//!    to the `opened` event arriving, p50/p99 over 200 indicators.
//! 3. **analyst queries** over everything stored: correlations, a sightings page by indicator
//!    and by participant, an indicator's detail; p50/p99 per query over 200 calls each.
//!
//! ```sh
//! cargo bench -p zdn-collector --bench collector                       # SQLite, 1M sightings
//! ZDN_BENCH_SIGHTINGS=10000000 ZDN_BENCH_WORKLOADS=steady cargo bench -p zdn-collector --bench collector
//! ZDN_BENCH_STORE=postgres://zdn:zdn@127.0.0.1:5432/zdn_bench cargo bench -p zdn-collector --bench collector
//! ```
//! The PostgreSQL database must exist and be empty. Figures go to docs/BENCHMARKS.md.

use std::path::Path;
use std::time::{Duration, Instant};
use tokio_stream::StreamExt;
use zdn_collector::config::Config;
use zdn_collector::{pki, server};
use zdn_proto::v1::analyst_service_client::AnalystServiceClient;
use zdn_proto::v1::sighting_service_client::SightingServiceClient;
use zdn_proto::v1::{self, correlation_event::Change};
use zdn_transport::{Bundle, Role};

const AGENTS: usize = 100;
const BATCH: usize = 1000;
/// Distinct indicators the ingest phase draws from.
const INDICATORS: usize = 20_000;

fn sighting(id: String, indicator: String, at: i64) -> v1::Sighting {
    v1::Sighting {
        id,
        observed: indicator.clone(),
        indicator,
        kind: v1::IndicatorKind::Domain as i32,
        via: v1::Via::DnsQuery as i32,
        first_seen_unix_ms: at,
        last_seen_unix_ms: at,
        count: 1,
        src: "h-0123456789abcdef".into(),
        dst_ip: "198.51.100.7".into(),
        dst_port: 53,
        proto: "udp".into(),
        ..Default::default()
    }
}

async fn channel(url: &str, bundle: &Path) -> tonic::transport::Channel {
    zdn_transport::client::connect(url, Some(&Bundle::load(bundle).unwrap())).await.unwrap()
}

/// Streams `batches` on one Report call and waits for every acknowledgement.
async fn report(url: String, bundle: std::path::PathBuf, batches: Vec<v1::SightingBatch>) -> u64 {
    let n = batches.len();
    let mut client = SightingServiceClient::new(channel(&url, &bundle).await);
    let mut acks = client.report(tokio_stream::iter(batches)).await.unwrap().into_inner();
    let mut stored = 0;
    for _ in 0..n {
        let ack = acks.message().await.unwrap().expect("an ack per batch");
        stored += u64::from(ack.stored);
    }
    stored
}

/// What the sightings of the ingest phase look like.
#[derive(Debug, Clone, Copy)]
enum Workload {
    /// Worst case: nearly every sighting is an institution's first of its indicator, so
    /// nearly every one escalates a correlation (20,000 indicators, each reaching all 100).
    Spreading,
    /// Steady state: each institution keeps hitting its own 200 indicators (each shared with
    /// about ten others); after the first pass every sighting is a repeat.
    Steady,
}

impl Workload {
    fn indicator(self, agent: usize, i: usize) -> String {
        match self {
            Workload::Spreading => format!("i{}.bench.example", (agent * 7919 + i) % INDICATORS),
            Workload::Steady => format!("s{}.bench.example", (agent * 13 + i % 200) % 2000),
        }
    }
}

/// `total` sightings from all agents at once; the stored count and the time to the last ack.
async fn ingest(
    url: &str,
    bundles: &[std::path::PathBuf],
    total: usize,
    workload: Workload,
) -> (u64, Duration) {
    let per_agent = total / bundles.len();
    // Recent packet times: the collector keeps sightings older than `max_age_days` out of
    // incidents, which would make ingest look cheaper than it is.
    let packet_clock = zdn_timestamps::now_ms() - 3_600_000;
    let mut work = Vec::new();
    for (a, bundle) in bundles.iter().enumerate() {
        let batches: Vec<v1::SightingBatch> = (0..per_agent)
            .collect::<Vec<_>>()
            .chunks(BATCH)
            .zip(1u64..)
            .map(|(chunk, sequence)| v1::SightingBatch {
                sequence,
                sightings: chunk
                    .iter()
                    .map(|&i| {
                        let id = format!("{workload:?}-{a}-{i}");
                        sighting(id, workload.indicator(a, i), packet_clock + i as i64)
                    })
                    .collect(),
            })
            .collect();
        work.push((url.to_owned(), bundle.clone(), batches));
    }
    let started = Instant::now();
    let tasks: Vec<_> = work.into_iter().map(|(u, b, batches)| tokio::spawn(report(u, b, batches))).collect();
    let mut stored = 0;
    for t in tasks {
        stored += t.await.unwrap();
    }
    (stored, started.elapsed())
}

fn percentiles(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    format!("p50 {:.2} ms, p99 {:.2} ms", at(0.50).as_secs_f64() * 1e3, at(0.99).as_secs_f64() * 1e3)
}

#[tokio::main]
async fn main() {
    let total: usize =
        std::env::var("ZDN_BENCH_SIGHTINGS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let store = std::env::var("ZDN_BENCH_STORE").unwrap_or_else(|_| "sqlite".into());
    // Errors only: a failing batch says why on stderr.
    zdn_telemetry::init_logging(zdn_telemetry::LogFormat::Text, "error");
    let dir = tempfile::tempdir().unwrap();
    let pki_dir = dir.path().join("pki");
    pki::init(&pki_dir, &[]).unwrap();
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        store: store.clone(),
        identity: Some(pki_dir.join("collector")),
        ..Config::default()
    };
    config.console.enabled = false;
    config.ingest.per_agent_sightings_per_second = 1_000_000;
    config.ingest.per_agent_burst = 1_000_000;
    let collector = server::start(config, false).await.unwrap();
    let url = format!("https://{}", collector.addr);
    println!("collector benchmark: {total} sightings, {AGENTS} agents, batches of {BATCH}, store {store}");

    // 1. Ingest, twice: the worst case, then the steady state.
    let bundles: Vec<_> = (0..AGENTS)
        .map(|a| {
            pki::issue(&pki_dir, &pki::Request::new(&format!("p{a:03}"), Role::Agent, Some("gw-1"))).unwrap()
        })
        .collect();
    let only_steady = std::env::var("ZDN_BENCH_WORKLOADS").as_deref() == Ok("steady");
    let workloads: &[Workload] =
        if only_steady { &[Workload::Steady] } else { &[Workload::Spreading, Workload::Steady] };
    for &workload in workloads {
        let (stored, took) = ingest(&url, &bundles, total, workload).await;
        println!(
            "ingest {workload:?}: {stored} sightings in {:.2} s = {:.0} sightings/s sustained",
            took.as_secs_f64(),
            stored as f64 / took.as_secs_f64()
        );
    }

    // 2. Correlation latency.
    let analyst = pki::issue(&pki_dir, &pki::Request::new("z-cert", Role::Analyst, Some("bench"))).unwrap();
    let mut watcher = AnalystServiceClient::new(channel(&url, &analyst).await);
    let mut events = watcher.watch_correlations(v1::WatchCorrelationsRequest {}).await.unwrap().into_inner();
    let mut first = SightingServiceClient::new(channel(&url, &bundles[0]).await);
    let mut second = SightingServiceClient::new(channel(&url, &bundles[1]).await);
    let mut latencies = Vec::new();
    for round in 0..200u64 {
        let indicator = format!("latency-{round}.bench.example");
        let batch = |p: usize| v1::SightingBatch {
            sequence: 1,
            sightings: vec![sighting(
                format!("lat-{p}-{round}"),
                indicator.clone(),
                zdn_timestamps::now_ms(),
            )],
        };
        first.report(tokio_stream::iter([batch(0)])).await.unwrap().into_inner().message().await.unwrap();
        let sent = Instant::now();
        let mut acks = second.report(tokio_stream::iter([batch(1)])).await.unwrap().into_inner();
        loop {
            let event = events.next().await.unwrap().unwrap();
            let c = event.correlation.unwrap();
            if event.change == Change::Opened as i32 && c.indicator == indicator {
                latencies.push(sent.elapsed());
                break;
            }
        }
        acks.message().await.unwrap();
    }
    println!("correlation visible to a watcher after the causing batch: {}", percentiles(latencies));

    // 3. Queries.
    let mut client = AnalystServiceClient::new(channel(&url, &analyst).await);
    let mut samples: [Vec<Duration>; 4] = Default::default();
    for q in 0..200usize {
        // An indicator of the last workload ingested, so every lookup finds one.
        let indicator = workloads[workloads.len() - 1].indicator(q % AGENTS, q * 97);
        let t = Instant::now();
        client
            .list_correlations(v1::ListCorrelationsRequest { limit: 100, ..Default::default() })
            .await
            .unwrap();
        samples[0].push(t.elapsed());
        let t = Instant::now();
        let by_indicator =
            v1::ListSightingsRequest { indicator: indicator.clone(), page_size: 100, ..Default::default() };
        client.list_sightings(by_indicator).await.unwrap();
        samples[1].push(t.elapsed());
        let t = Instant::now();
        let by_participant = v1::ListSightingsRequest {
            participant: format!("p{:03}", q % AGENTS),
            page_size: 100,
            ..Default::default()
        };
        client.list_sightings(by_participant).await.unwrap();
        samples[2].push(t.elapsed());
        let t = Instant::now();
        client.get_indicator(v1::GetIndicatorRequest { indicator }).await.unwrap();
        samples[3].push(t.elapsed());
    }
    for (name, s) in [
        "correlations (100)",
        "sightings by indicator (page 100)",
        "sightings by participant (page 100)",
        "indicator detail",
    ]
    .iter()
    .zip(samples)
    {
        println!("query {name}: {}", percentiles(s));
    }
    collector.stop().await.unwrap();
}
