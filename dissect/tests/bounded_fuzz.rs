//! The bounded, deterministic fuzz pass `cargo test` runs: every entry point of
//! `zdn_dissect::fuzz` (the bodies of the libFuzzer targets in `fuzz/`) on random inputs of
//! the shape each target reads, seeded so a failure repeats. The coverage-guided fuzzer goes
//! deeper (`cargo +nightly fuzz run <target>`); this pass keeps every target's body honest
//! on every commit. Real captures and mutations of their frames go through the agent's whole
//! packet path in `agent/tests/robustness.rs`.

use rand::{Rng, SeedableRng, rngs::StdRng};
use zdn_dissect::extract::Extractor;
use zdn_dissect::fuzz;

/// Random bytes, mostly short, with the separators and magic bytes the targets look for
/// (TLS handshake 0x16, QUIC long headers, HTTP methods) more often than chance would give.
fn input(rng: &mut StdRng, separator: u8) -> Vec<u8> {
    let len = if rng.random_bool(0.8) { rng.random_range(0..128) } else { rng.random_range(0..2048) };
    let mut bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
    for _ in 0..rng.random_range(0..6) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.random_range(0..bytes.len());
        let magic: &[u8] = match rng.random_range(0..5) {
            0 => &[separator],
            1 => &[0x16, 0x03, 0x01],
            2 => &[0xc0, 0x00, 0x00, 0x00, 0x01],
            3 => b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n",
            _ => &[0x00, 0x01, 0x00, 0x00],
        };
        let end = (at + magic.len()).min(bytes.len());
        bytes[at..end].copy_from_slice(&magic[..end - at]);
    }
    bytes
}

const ROUNDS: usize = 20_000;

#[test]
fn frames_through_decode_defragmentation_and_extraction() {
    let mut rng = StdRng::seed_from_u64(0xf7a3e);
    let mut extractor = Extractor::default();
    for i in 0..ROUNDS {
        fuzz::frame(&mut extractor, &input(&mut rng, 0x08), i as i64);
    }
}

#[test]
fn fragment_sequences() {
    let mut rng = StdRng::seed_from_u64(0xf4a9);
    for _ in 0..ROUNDS {
        fuzz::defrag(&input(&mut rng, 0xfd));
    }
}

#[test]
fn dns_messages_and_tls_hellos() {
    let mut rng = StdRng::seed_from_u64(0xd45);
    for _ in 0..ROUNDS {
        let bytes = input(&mut rng, 0x00);
        fuzz::dns(&bytes);
        fuzz::tls(&bytes);
        fuzz::h2c(&bytes);
    }
}

#[test]
fn tcp_streams_and_quic_clients() {
    let mut rng = StdRng::seed_from_u64(0x7c9);
    for _ in 0..ROUNDS / 4 {
        fuzz::tcp_stream(&input(&mut rng, 0xfe));
        fuzz::quic(&input(&mut rng, 0xff));
    }
}

#[test]
fn hpack_blocks_agree_with_loona_hpack() {
    let mut rng = StdRng::seed_from_u64(0x4ac);
    let mut both_accepted = 0;
    for _ in 0..ROUNDS {
        let len = rng.random_range(0..48);
        let block: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        both_accepted += usize::from(fuzz::hpack(&block, |b| loona_hpack::Decoder::new().decode(b).ok()));
    }
    // Both outcomes were exercised: blocks both decoders accept (and agree on), and refusals.
    assert!(both_accepted > 0 && both_accepted < ROUNDS, "{both_accepted} of {ROUNDS} accepted by both");
}
