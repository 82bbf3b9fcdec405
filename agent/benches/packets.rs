//! The per-packet cost of the agent's packet path (`PacketPath::inspect`: decode, defragment,
//! extract, match) — with the 1.85M real
//! Maltrail trails loaded, on real frames from Suricata's verification captures: a SYN, a DNS
//! query, a TLS ClientHello, a QUIC Initial (decrypted), an HTTP request, an HTTP/2
//! cleartext request (preface and headers in one segment), a bulk TCP segment,
//! and a mix of every Ethernet frame of the suite; and that mix again with the destination
//! history recording every contact.
//!
//! `cargo bench -p zdn-agent --bench packets` (numbers in docs/BENCHMARKS.md)

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::path::{Path, PathBuf};
use zdn_agent::capture;
use zdn_agent::capture::Frame;
use zdn_agent::packet_path::{HomeNet, PacketPath};
use zdn_dissect::decode::{LinkType, Transport, decode};
use zdn_indicators::{IndicatorSet, build_set};

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data")
}

fn real_set() -> IndicatorSet {
    let dir = tempfile::tempdir().unwrap();
    let archive = shared().join("indicators/maltrail-static.tar.xz");
    let status =
        std::process::Command::new("tar").arg("-xJf").arg(&archive).arg("-C").arg(dir.path()).status();
    assert!(status.unwrap().success());
    build_set(&[dir.path().join("static")], zdn_indicators::Allowlists::NONE, None).unwrap().set
}

/// Every Ethernet frame of the suite, in file order.
fn suite_frames() -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(shared().join("pcap/suricata-verify"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    for dir in dirs {
        for file in std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()) {
            let _ = capture::read_file(&file, |f| {
                if f.link == Some(LinkType::Ethernet) {
                    frames.push(f.data.to_vec());
                }
            });
        }
    }
    frames
}

/// The first frame of the mix that `pick` accepts.
fn find(frames: &[Vec<u8>], what: &str, pick: impl Fn(&Transport<'_>) -> bool) -> Vec<u8> {
    frames
        .iter()
        .find(|f| decode(LinkType::Ethernet, f).is_ok_and(|p| pick(&p.transport)))
        .unwrap_or_else(|| panic!("no {what} frame in the suite"))
        .clone()
}

/// An Ethernet frame as capture hands it to the packet path.
fn ethernet(data: &[u8], ts_ns: i64) -> Frame<'_> {
    Frame { ts_ns, link: Some(LinkType::Ethernet), linktype: 1, data }
}

fn packets(c: &mut Criterion) {
    let set = real_set();
    let home = HomeNet::default();
    let mix = suite_frames();
    let tcp = |t: &Transport<'_>, f: &dyn Fn(u16, u8, &[u8]) -> bool| match *t {
        Transport::Tcp { dst_port, flags, payload, .. } => f(dst_port, flags, payload),
        _ => false,
    };
    let singles = [
        ("TCP SYN", find(&mix, "SYN", |t| t.is_tcp_syn())),
        (
            "DNS query",
            find(
                &mix,
                "DNS",
                |t| matches!(t, Transport::Udp { dst_port: 53, payload, .. } if payload.len() > 12 && payload[2] & 0x80 == 0),
            ),
        ),
        (
            "TLS ClientHello",
            find(&mix, "ClientHello", |t| {
                tcp(t, &|_, _, p| {
                    p.len() > 200
                        && p[0] == 22
                        && p[5] == 1
                        && zdn_dissect::tls::handshake_of(p)
                            .is_ok_and(|m| zdn_dissect::tls::parse_handshake(&m, false).is_ok())
                })
            }),
        ),
        (
            "QUIC Initial",
            find(
                &mix,
                "QUIC Initial",
                |t| matches!(t, Transport::Udp { dst_port: 443, payload, .. } if payload.len() >= 1200 && payload[0] & 0xf0 == 0xc0),
            ),
        ),
        (
            "HTTP request",
            find(&mix, "HTTP request", |t| {
                tcp(t, &|port, _, p| {
                    port == 80 && p.starts_with(b"GET ") && p.windows(4).any(|w| w == b"\r\n\r\n")
                })
            }),
        ),
        (
            "HTTP/2 cleartext request",
            find(&mix, "h2c request", |t| {
                tcp(t, &|_, _, p| {
                    matches!(zdn_dissect::h2c::progress(p), Ok(zdn_dissect::h2c::Progress::Complete { .. }))
                })
            }),
        ),
        (
            "bulk TCP segment",
            find(&mix, "bulk", |t| {
                tcp(t, &|_, flags, p| {
                    p.len() > 1000
                        && flags & 0x02 == 0
                        && p[0] != 22
                        && !p.starts_with(b"HTTP")
                        && !p.starts_with(b"GET")
                })
            }),
        ),
    ];
    let mut g = c.benchmark_group("per packet, 1.85M indicators");
    g.throughput(Throughput::Elements(1));
    for (name, frame) in &singles {
        g.bench_function(*name, |b| {
            b.iter_batched_ref(
                PacketPath::default,
                |path| path.inspect(&ethernet(frame, 0), &set, &home, |_| {}),
                BatchSize::SmallInput,
            )
        });
    }
    g.throughput(Throughput::Elements(mix.len() as u64));
    g.bench_function(format!("mixed ({} suite frames)", mix.len()), |b| {
        b.iter_batched_ref(
            PacketPath::default,
            |path| {
                for (i, frame) in mix.iter().enumerate() {
                    path.inspect(&ethernet(frame, i as i64 * 1_000_000), &set, &home, |_| {});
                }
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();

    // The same mix with the destination history on (issue 18): every contact also recorded
    // into the hour's bucket, as a live capture worker does.
    let dir = tempfile::tempdir().unwrap();
    let pseudonyms = zdn_agent::pseudonym::Pseudonymiser::ephemeral();
    let keyer = zdn_destination_history::Keyer::new(pseudonyms.history_key());
    let history =
        std::sync::Arc::new(zdn_destination_history::History::open(dir.path(), keyer, 14, u64::MAX).unwrap());
    let mut tap = zdn_agent::history::Tap::new(history, pseudonyms, 0);
    let mut g = c.benchmark_group("per packet, 1.85M indicators, destination history on");
    g.throughput(Throughput::Elements(mix.len() as u64));
    g.bench_function(format!("mixed ({} suite frames)", mix.len()), |b| {
        b.iter_batched_ref(
            PacketPath::default,
            |path| {
                for (i, frame) in mix.iter().enumerate() {
                    let ts = i as i64 * 1_000_000;
                    path.inspect_recording(&ethernet(frame, ts), &set, &home, |_| {}, &mut |c| {
                        tap.record(c, ts / 1_000_000)
                    });
                }
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = packets
}
criterion_main!(benches);
