//! Live capture, `replay` and `observe` take frames through one packet path, so on the same
//! frames they count the same: every real capture of Suricata's verification suite goes
//! through all three entry points, and their counters are compared.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use support::suricata_pcaps;
use zdn_agent::capture;
use zdn_agent::counters::Counters;
use zdn_agent::packet_path::HomeNet;
use zdn_agent::pipeline::{Pipeline, Shared};
use zdn_agent::pseudonym::Pseudonymiser;
use zdn_agent::ratelimit::RateLimits;
use zdn_agent::replay::{self, AGGREGATE_CAPACITY};
use zdn_agent::sighting::Aggregator;
use zdn_agent::spool::Spool;
use zdn_indicators::{IndicatorSet, parse_plain};

/// The suite's captures that every reader reads whole (the deliberately damaged ones end
/// early, and an entry point that stops at the error counts less).
fn suite() -> Vec<PathBuf> {
    suricata_pcaps().into_iter().filter(|p| capture::read_file(p, |_| {}).is_ok()).collect()
}

/// Indicators that match in many captures, of every kind the path looks up.
fn set() -> IndicatorSet {
    let list = "8.8.8.8\n10.0.0.0/8\n192.168.0.0/16\ncom\nnet\norg\nexample.com\n";
    IndicatorSet::new(parse_plain("t", list).indicators)
}

/// Frames the decoder refuses, for each reason the path counts: an ARP frame (not IP), a
/// damaged IPv4 header, and a link type we do not decode.
fn undecodable(dir: &Path) -> Vec<PathBuf> {
    use pcap_file::DataLink;
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    let write = |name: &str, datalink, frames: &[&[u8]]| {
        let path = dir.join(name);
        let header = PcapHeader { datalink, ..PcapHeader::default() };
        let mut w = PcapWriter::with_header(std::fs::File::create(&path).unwrap(), header).unwrap();
        for (i, frame) in frames.iter().enumerate() {
            let ts = std::time::Duration::from_secs(1_768_467_600 + i as u64);
            w.write_packet(&PcapPacket::new(ts, frame.len() as u32, frame)).unwrap();
        }
        path
    };
    let mut arp = vec![0xff; 12];
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0; 28]);
    let mut bad_ipv4 = vec![0x02; 12];
    bad_ipv4.extend_from_slice(&[0x08, 0x00, 0x45, 0x00, 0x00]);
    vec![
        write("undecodable.pcap", DataLink::ETHERNET, &[&arp, &bad_ipv4]),
        write("foreign-link.pcap", DataLink::USER0, &[b"not ours"]),
    ]
}

fn aggregator() -> Aggregator {
    Aggregator::new(60_000, AGGREGATE_CAPACITY, Pseudonymiser::ephemeral())
}

#[test]
fn live_replay_and_observe_count_the_same_frames_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let mut pcaps = suite();
    assert!(pcaps.len() > 250, "only {} captures", pcaps.len());
    pcaps.extend(undecodable(dir.path()));
    let (set, home) = (set(), HomeNet::default());

    let (_, replayed) = replay::replay(&set, &home, &pcaps, aggregator()).unwrap();
    let replayed = replayed.path;
    let observed = zdn_agent::observe::observe(&pcaps, |_| {}).unwrap();

    let counters = Arc::new(Counters::default());
    let shared = Arc::new(Shared {
        set: arc_swap::ArcSwap::from_pointee(set),
        set_version: AtomicU64::new(0),
        home,
        limits: RateLimits::new(u32::MAX, u32::MAX),
        spool: Arc::new(Spool::open(&dir.path().join("spool.sqlite"), 1 << 30).unwrap()),
        alerts: None,
        counters: counters.clone(),
        spooled: Arc::new(tokio::sync::Notify::new()),
        hunt_answers: std::sync::Mutex::new(Vec::new()),
    });
    let mut live = Pipeline::new(shared, aggregator());
    for pcap in &pcaps {
        capture::read_file(pcap, |frame| live.frame(&frame)).unwrap();
    }
    live.finish();

    // The suite holds undecodable frames, fragments, DNS, TLS, HTTP and hits: the comparison
    // covers every counter, not zeros.
    let e = &replayed.extract;
    assert!(
        replayed.packets > 4_000 && replayed.undecodable.len() == 3 && replayed.hits > 100,
        "{replayed:?}"
    );
    assert!(e.dns_queries > 0 && e.tls_hellos > 0 && e.http_requests > 0 && e.dns_answers > 0, "{e:?}");

    // observe: the same path without a matcher.
    assert_eq!(observed.packets, replayed.packets);
    assert_eq!(observed.undecodable, replayed.undecodable);
    assert_eq!(observed.extract, replayed.extract);
    assert_eq!(observed.hits, 0, "observe matches nothing");

    // live: the same numbers, through the shared counters the heartbeat and metrics read.
    let live = [
        counters.packets.get(),
        counters.undecodable.get(),
        counters.hits.get(),
        counters.dns_queries.get(),
        counters.dns_malformed.get(),
        counters.tls_hellos.get(),
        counters.tls_malformed.get(),
        counters.http_requests.get(),
        counters.http_malformed.get(),
        counters.blind_ech.get(),
        counters.blind_dot.get(),
        counters.blind_doh.get(),
        counters.streams_dropped.get(),
        counters.datagrams_dropped.get(),
        counters.quic_undecryptable.get(),
    ];
    let expected = [
        replayed.packets,
        replayed.undecodable_total(),
        replayed.hits,
        e.dns_queries,
        e.dns_malformed,
        e.tls_hellos,
        e.tls_malformed,
        e.http_requests,
        e.http_malformed,
        e.blind_ech,
        e.blind_dot,
        e.blind_doh,
        e.streams_dropped,
        e.datagrams_dropped,
        e.quic_undecryptable,
    ];
    assert_eq!(live, expected);
}
