//! Every capture of the Suricata verification suite, and mutations of its frames, through the
//! agent's parsers: no panic, every frame accounted for. A bounded, deterministic fuzz pass
//! that runs in `cargo test` (the coverage-guided fuzz targets are in `fuzz/`, their bodies in
//! `zdn_dissect::fuzz`).

mod support;

use rand::{Rng, SeedableRng, rngs::StdRng};
use std::path::Path;
use support::suricata_pcaps;
use zdn_agent::capture::{self, Frame};
use zdn_agent::packet_path::{HomeNet, PacketPath};
use zdn_dissect::decode::LinkType;
use zdn_indicators::{IndicatorSet, parse_plain};

/// Indicators that match something in most captures: common resolvers and names.
fn set() -> IndicatorSet {
    IndicatorSet::new(
        parse_plain("t", "8.8.8.8\n10.0.0.0/8\n192.168.0.0/16\ncom\nnet\nexample.com\norg\n").indicators,
    )
}

#[test]
fn every_real_capture_decodes_without_panic() {
    let (set, home) = (set(), HomeNet::default());
    let (mut files, mut frames) = (0, 0u64);
    let (mut failures, mut damaged) = (std::collections::BTreeMap::new(), Vec::new());
    for pcap in suricata_pcaps() {
        let mut path = PacketPath::default();
        // Some suite captures are deliberately damaged; that must be an error, not a panic.
        if let Err(e) =
            capture::read_file(&pcap, |frame: Frame<'_>| path.inspect(&frame, &set, &home, |_| {}))
        {
            assert!(matches!(e, capture::CaptureError::Corrupt { .. }), "{}: {e}", pcap.display());
            damaged.push(pcap.display().to_string());
        }
        let stats = path.stats();
        frames += stats.packets;
        for (reason, n) in stats.undecodable {
            *failures.entry(reason).or_insert(0) += n;
        }
        files += 1;
    }
    assert!(files > 250, "only {files} captures found");
    assert!(damaged.len() <= 5, "more damaged captures than the suite has: {damaged:#?}");
    // Every link type of the suite is decoded (fragments too, as fragments). Non-IP frames
    // (ARP, PPP control) are not ours, and the suite has one deliberately broken IP header.
    // Anything else is a decoder bug.
    failures.remove("not_ip");
    assert!(failures.values().sum::<u64>() <= 1, "undecodable frames of {frames}: {failures:?}");
}

/// Real frames, damaged: through the whole packet path (decode, defragmentation, extraction,
/// matching, with state carried across frames), and the same bytes through the DNS, HTTP/2
/// and TLS fuzz bodies of `zdn_dissect::fuzz`.
#[test]
fn mutated_frames_and_random_bytes_never_panic() {
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let (set, home) = (set(), HomeNet::default());
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    for pcap in suricata_pcaps().iter().take(120) {
        // A damaged capture still gives the frames before the damage: seeds either way.
        let _seeds_before_any_damage = capture::read_file(pcap, |f| {
            if f.link == Some(LinkType::Ethernet) && seeds.len() < 3000 {
                seeds.push(f.data.to_vec());
            }
        });
    }
    assert!(seeds.len() > 1_000, "{} seed frames", seeds.len());
    let mut path = PacketPath::default();
    let links = [LinkType::Ethernet, LinkType::LinuxSll, LinkType::LinuxSll2, LinkType::RawIp];
    for i in 0..200_000 {
        let mut frame = seeds[i % seeds.len()].clone();
        match rng.random_range(0..4) {
            0 => {
                for _ in 0..rng.random_range(1..8) {
                    let at = rng.random_range(0..frame.len().max(1));
                    if let Some(b) = frame.get_mut(at) {
                        *b ^= 1 << rng.random_range(0..8);
                    }
                }
            }
            1 => frame.truncate(rng.random_range(0..=frame.len())),
            2 => frame = (0..rng.random_range(0..200)).map(|_| rng.random()).collect(),
            _ => {
                let at = rng.random_range(0..frame.len().max(1)).min(frame.len());
                frame[at..].iter_mut().for_each(|b| *b = rng.random());
            }
        }
        let link = links[rng.random_range(0..links.len())];
        let captured = Frame { ts_ns: i as i64 * 1_000_000, link: Some(link), linktype: 0, data: &frame };
        path.inspect(&captured, &set, &home, |_| {});
        zdn_dissect::fuzz::dns(&frame);
        zdn_dissect::fuzz::dns(frame.get(42..).unwrap_or_default());
        zdn_dissect::fuzz::h2c(&frame);
        zdn_dissect::fuzz::tls(&frame);
    }
    assert_eq!(path.stats().packets, 200_000, "every frame counted");
}

#[test]
fn damaged_capture_files_are_errors_not_panics() {
    let mut rng = StdRng::seed_from_u64(7);
    let original = std::fs::read(&suricata_pcaps()[0]).unwrap();
    let frames_of = |bytes: &[u8]| {
        let mut frames = Vec::new();
        let read = capture::read_bytes("mutated", bytes, |f| frames.push(f.data.to_vec()));
        (frames, read)
    };
    let (whole, read) = frames_of(&original);
    assert!(read.is_ok() && whole.len() > 1);
    let (mut cut_errors, mut mutated_errors) = (0, 0);
    for _ in 0..2_000 {
        let mut bytes = original.clone();
        let cut = rng.random_range(0..=bytes.len());
        bytes.truncate(cut);
        let damage = rng.random_range(0..4);
        for _ in 0..damage {
            if !bytes.is_empty() {
                let at = rng.random_range(0..bytes.len());
                bytes[at] = rng.random();
            }
        }
        let (frames, read) = frames_of(&bytes);
        if damage == 0 {
            // Only cut: what is read is the original's frames up to the cut, in order, and
            // the cut is an error unless it fell between records.
            assert!(whole.starts_with(&frames), "cut at {cut}: not a prefix");
            cut_errors += usize::from(read.is_err());
        } else {
            mutated_errors += usize::from(read.is_err());
        }
        if let Err(e) = read {
            assert!(!matches!(e, capture::CaptureError::Io { .. }), "{e}");
        }
    }
    assert!(cut_errors > 0 && mutated_errors > 0, "{cut_errors} cut, {mutated_errors} mutated refused");
}

#[test]
fn a_syn_fragmented_at_the_ip_layer_is_reassembled_and_seen() {
    // Suricata's bug-6887 capture: a TCP SYN in three IPv4 fragments over PPP (with
    // protocol-field compression); tshark reassembles it to 1.1.1.1 -> 2.2.2.2:8080.
    let pcap = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/pcap/suricata-verify/defrag__bug-6887-defrag-ppp-ipv4-tcp-syn/frag-ppp-ip-tcp-syn.pcap");
    let mut seen = Vec::new();
    zdn_agent::observe::observe(&[pcap], |o| seen.push(format!("{} {}", o.via, o.value))).unwrap();
    assert_eq!(seen, ["ip_dst 2.2.2.2:8080", "ip_dst 2.2.2.2"]);
}
