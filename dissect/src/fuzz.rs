//! The fuzzing entry points: one function per parser, taking arbitrary bytes and checking the
//! parser's bounds. The libFuzzer targets (`fuzz/fuzz_targets/*.rs`) are one line each around
//! these, and the bounded, deterministic passes that `cargo test` runs
//! (`tests/bounded_fuzz.rs`) feed them random and mutated inputs — so what the fuzzer checks
//! and what CI checks are one body, and a crash the fuzzer finds becomes a test by pasting its
//! bytes.
//!
//! Each function panics only on a broken invariant (a bound exceeded, two decoders
//! disagreeing); any input the parsers refuse is simply an error they return.

use crate::decode::{Decoded, LinkType, Transport, decode};
use crate::defrag::{Defragmenter, MAX_DATAGRAM};
use crate::dns::{self, Answer, MAX_ANSWERS, MAX_NAME};
use crate::extract::Extractor;
use crate::hpack::{self, HpackError};
use crate::quic::{MAX_CRYPTO, QuicTable};
use crate::stream::FlowKey;
use crate::{h2c, tls};
use std::net::{IpAddr, Ipv4Addr};

/// The link types a frame is tried as: its first byte picks one.
pub const LINKS: [LinkType; 7] = [
    LinkType::Ethernet,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::RawIp,
    LinkType::Loopback,
    LinkType::Ppp,
    LinkType::CiscoHdlc,
];

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const SERVER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

/// A frame (first byte: the link type, see [`LINKS`]) through decode, defragmentation and
/// extraction, on `extractor` (so state carries across calls, as on a capture).
pub fn frame(extractor: &mut Extractor, data: &[u8], now_ms: i64) {
    let Some((&selector, frame)) = data.split_first() else { return };
    let link = LINKS[usize::from(selector) % LINKS.len()];
    let Ok(packet) = decode(link, frame) else { return };
    if let Transport::Fragment { .. } = packet.transport {
        if let Some(whole) = extractor.defragment(&packet, now_ms)
            && let Ok(packet) = whole.decoded()
        {
            extractor.extract(&packet, now_ms, |_| {});
        }
        return;
    }
    extractor.extract(&packet, now_ms, |_| {});
}

/// Fragments of one source, each `id (1) offset (2, in bytes) more (bit 0 of 1) payload`,
/// separated by `0xfd`: reassembled datagrams stay within the IP maximum.
pub fn defrag(data: &[u8]) {
    let mut defrag = Defragmenter::default();
    for (i, piece) in data.split(|&b| b == 0xfd).enumerate() {
        let [id, off_hi, off_lo, flags, payload @ ..] = piece else { continue };
        let packet = Decoded {
            src: CLIENT,
            dst: SERVER,
            transport: Transport::Fragment {
                proto: 17,
                id: u32::from(*id),
                offset: u16::from_be_bytes([*off_hi, *off_lo]) & !7,
                more: flags & 1 == 1,
                payload,
            },
        };
        if let Some(whole) = defrag.add(&packet, i as i64) {
            assert!(whole.payload.len() <= MAX_DATAGRAM);
            let _ = whole.decoded();
        }
    }
}

/// A DNS message read as a query and as a response: names and answers stay within bounds.
pub fn dns(data: &[u8]) {
    let _ = dns::for_each_query_name(data, |name| assert!(name.len() <= MAX_NAME));
    let mut answers = 0;
    let _ = dns::for_each_answer(data, |owner, answer| {
        answers += 1;
        assert!(owner.len() <= MAX_NAME);
        if let Answer::Alias(name) = answer {
            assert!(name.len() <= MAX_NAME);
        }
    });
    assert!(answers <= MAX_ANSWERS);
}

/// TCP segments of one client connection, separated by `0xfe`; the byte before each picks the
/// server port (TLS, HTTP, DNS), so reassembly, ClientHellos, requests and DNS/TCP are reached.
pub fn tcp_stream(data: &[u8]) {
    let mut extractor = Extractor::default();
    let mut seq = 1u32;
    for segment in data.split(|&b| b == 0xfe) {
        let Some((&selector, payload)) = segment.split_first() else { continue };
        let dst_port = [443, 80, 53][usize::from(selector) % 3];
        let packet = Decoded {
            src: CLIENT,
            dst: SERVER,
            transport: Transport::Tcp { src_port: 40000, dst_port, seq, flags: 0x18, payload },
        };
        extractor.extract(&packet, 0, |_| {});
        seq = seq.wrapping_add(payload.len() as u32);
    }
}

/// An HTTP/2 cleartext connection's first bytes, as they are and behind a real preface.
pub fn h2c(data: &[u8]) {
    let _ = h2c::progress(data);
    let stream = [h2c::PREFACE, data].concat();
    if let Ok(h2c::Progress::Complete { .. }) = h2c::progress(&stream) {
        let _ = h2c::first_request(&stream);
    }
}

/// Decoded header fields, owned.
pub type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// An HPACK header block, decoded by ours and by `oracle` (the fuzz target and the tests pass
/// `loona-hpack`): every block one accepts, the other accepts with the same fields — except a
/// dynamic-table size update, which we refuse by design (after a field, or above 4 KiB).
/// Returns whether both accepted the block, so a test can tell that it exercised both outcomes.
pub fn hpack(block: &[u8], oracle: impl FnOnce(&[u8]) -> Option<Fields>) -> bool {
    let mut fields = Vec::new();
    let ours = hpack::decode_block(block, |n, v| fields.push((n.to_vec(), v.to_vec()))).map(|()| fields);
    match (ours, oracle(block)) {
        (Ok(a), Some(b)) => {
            assert_eq!(a, b, "ours and the oracle decode {block:02x?} differently");
            true
        }
        (Err(_), None) | (Err(HpackError::SizeUpdate), Some(_)) => false,
        (a, b) => panic!("ours {a:?}, the oracle {b:?} on {block:02x?}"),
    }
}

/// Datagrams of one QUIC client, separated by `0xff`: Initial parsing, decryption attempts and
/// CRYPTO reassembly, state carried across them; a reassembled hello stays within bounds.
pub fn quic(data: &[u8]) {
    let key = FlowKey { src: CLIENT, dst: SERVER, src_port: 50000, dst_port: 443 };
    let mut table = QuicTable::default();
    for datagram in data.split(|&b| b == 0xff) {
        let _ = table.offer(key, datagram, |hello| assert!(hello.len() <= MAX_CRYPTO));
    }
}

/// A TLS stream prefix (records) and a bare handshake message: a complete hello parses, and
/// every parsed hello has a JA4 of the fixed length.
pub fn tls(data: &[u8]) {
    if let Ok(tls::Progress::Complete { .. }) = tls::client_hello_progress(data) {
        let message = tls::handshake_of(data).expect("a complete hello has a handshake message");
        let _ = tls::parse_handshake(&message, false);
    }
    if let Ok(hello) = tls::parse_handshake(data, true) {
        assert_eq!(hello.ja4.as_str().len(), 36);
    }
}
