use super::*;
use rand::{Rng, SeedableRng, rngs::StdRng};

/// Huffman-codes `text` (RFC 7541, 5.2): codes packed from the most significant bit, the last
/// octet padded with EOS's leading ones. What real clients send for most strings.
pub(crate) fn huffman_encode(text: &[u8]) -> Vec<u8> {
    let (mut out, mut bits, mut pending) = (Vec::new(), 0u64, 0u32);
    for &byte in text {
        let (code, len) = huffman::CODES[usize::from(byte)];
        bits = (bits << len) | u64::from(code);
        pending += u32::from(len);
        while pending >= 8 {
            pending -= 8;
            out.push((bits >> pending) as u8);
        }
    }
    if pending > 0 {
        out.push(((bits << (8 - pending)) as u8) | (0xff >> pending));
    }
    out
}

/// A string literal: Huffman-coded or raw, length with a 7-bit prefix.
pub(crate) fn string_literal(text: &[u8], huffman: bool) -> Vec<u8> {
    let body = if huffman { huffman_encode(text) } else { text.to_vec() };
    let mut out = loona_hpack::encoder::encode_integer(body.len(), 7);
    if huffman {
        out[0] |= 0x80;
    }
    [out, body].concat()
}

/// Decoded fields, owned: what `loona-hpack`'s `decode` returns too.
type Fields = Vec<(Vec<u8>, Vec<u8>)>;

fn decode_all(block: &[u8]) -> Result<Fields, HpackError> {
    let mut fields = Vec::new();
    decode_block(block, |n, v| fields.push((n.to_vec(), v.to_vec())))?;
    Ok(fields)
}

fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits.chunks(2).map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap()).collect()
}

#[test]
fn the_rfc_examples_decode() {
    // RFC 7541, C.4.1: a request with Huffman-coded strings.
    let fields = decode_all(&hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff")).unwrap();
    let expected: Vec<(Vec<u8>, Vec<u8>)> =
        [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")]
            .iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect();
    assert_eq!(fields, expected);
    // C.2.1: a literal with indexing and a new name, raw; then the same block plus an indexed
    // reference to the entry it added (index 62, the newest dynamic entry).
    let literal = hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572");
    let custom = (b"custom-key".to_vec(), b"custom-header".to_vec());
    assert_eq!(decode_all(&literal).unwrap(), vec![custom.clone()]);
    assert_eq!(decode_all(&[literal, vec![0xbe]].concat()).unwrap(), vec![custom.clone(), custom]);
}

#[test]
fn huffman_round_trips_every_byte_and_agrees_with_loona_hpack() {
    let mut rng = StdRng::seed_from_u64(0x4e2c);
    let all: Vec<u8> = (0..=255).collect();
    let mut out = Vec::new();
    huffman::decode(&huffman_encode(&all), &mut out).unwrap();
    assert_eq!(out, all);
    let mut oracle = loona_hpack::huffman::HuffmanDecoder::new();
    for round in 0..20_000 {
        let len = rng.random_range(0..40);
        let bytes: Vec<u8> = if round % 2 == 0 {
            // Random octets: mostly invalid strings (EOS, bad padding).
            (0..len).map(|_| rng.random()).collect()
        } else {
            let text: Vec<u8> = (0..len).map(|_| rng.random_range(b' '..=b'~')).collect();
            huffman_encode(&text)
        };
        let mut ours = Vec::new();
        let ours = huffman::decode(&bytes, &mut ours).map(|()| ours);
        assert_eq!(ours.ok(), oracle.decode(&bytes).ok(), "{bytes:02x?}");
    }
}

#[test]
fn bad_blocks_are_refused_with_their_reason() {
    assert_eq!(decode_all(&[0x80]), Err(HpackError::Index(0)));
    assert_eq!(decode_all(&[0xbe]), Err(HpackError::Index(62)));
    assert_eq!(decode_all(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), Err(HpackError::Integer));
    assert_eq!(decode_all(&[0xff]), Err(HpackError::Integer));
    assert_eq!(decode_all(&[0x04, 0x05, b'a']), Err(HpackError::Truncated));
    assert_eq!(decode_all(&[0x04, 0x81, 0xff]), Err(HpackError::Huffman(HuffmanError::Padding)));
    // Size updates: within 4 KiB at the start, not after a field, not above 4 KiB.
    assert_eq!(decode_all(&[0x20, 0x82]).unwrap().len(), 1);
    assert_eq!(decode_all(&[0x82, 0x20]), Err(HpackError::SizeUpdate));
    assert_eq!(decode_all(&[0x3f, 0xe2, 0x1f]), Err(HpackError::SizeUpdate));
}

#[test]
fn the_dynamic_table_stays_within_its_size() {
    // Literals with indexing of 900-octet values (937 octets each with name and overhead): four fit in 4 KiB, the fifth evicts the
    // first, so index 62 is the newest and 65 the oldest still kept.
    let mut block = Vec::new();
    for i in 0..5u8 {
        block.extend([0x40]);
        block.extend(string_literal(b"x-pad", false));
        block.extend(string_literal(&vec![b'a' + i; 900], i % 2 == 0));
    }
    block.extend([0xbe, 0xc1]);
    let fields = decode_all(&block).unwrap();
    assert_eq!(fields[5].1, vec![b'e'; 900]);
    assert_eq!(fields[6].1, vec![b'b'; 900]);
    assert_eq!(decode_all(&[block, vec![0xc2]].concat()), Err(HpackError::Index(66)));
}

/// Random blocks built from valid and broken representations, decoded by ours and by
/// `loona-hpack`: every block one accepts, the other accepts with the same fields — except
/// the size updates we refuse by design (after a field, or above 4 KiB).
#[test]
fn random_blocks_agree_with_loona_hpack() {
    let mut rng = StdRng::seed_from_u64(0x7ab1e);
    let (mut agreed_ok, mut agreed_err) = (0, 0);
    for _ in 0..8_000 {
        let mut block = Vec::new();
        for _ in 0..rng.random_range(0..6) {
            match rng.random_range(0..7) {
                0 => block.push(0x80 | rng.random_range(1..62)),
                1 => {
                    let mut index = loona_hpack::encoder::encode_integer(rng.random_range(0..70), 7);
                    index[0] |= 0x80;
                    block.extend(index);
                }
                2 | 3 => {
                    let prefix = if rng.random() { 0x40 } else { 0x00 };
                    block.push(prefix | if rng.random() { 0 } else { rng.random_range(1..62) });
                    if block.last() == Some(&prefix) {
                        let name: Vec<u8> = (0..rng.random_range(0..12)).map(|_| rng.random()).collect();
                        block.extend(string_literal(&name, rng.random()));
                    }
                    let value: Vec<u8> = (0..rng.random_range(0..300)).map(|_| rng.random()).collect();
                    block.extend(string_literal(&value, rng.random()));
                }
                4 => {
                    let mut update = loona_hpack::encoder::encode_integer(rng.random_range(0..5000), 5);
                    update[0] |= 0x20;
                    block.extend(update);
                }
                _ => block.extend((0..rng.random_range(1..8)).map(|_| rng.random::<u8>())),
            }
        }
        // The fuzz target's body (`crate::fuzz::hpack`), on blocks built to reach both outcomes.
        if crate::fuzz::hpack(&block, |b| loona_hpack::Decoder::new().decode(b).ok()) {
            agreed_ok += 1;
        } else if decode_all(&block).is_err() {
            agreed_err += 1;
        }
    }
    // Both outcomes are exercised, or the comparison proves nothing.
    assert!(agreed_ok > 1_000 && agreed_err > 1_000, "{agreed_ok} accepted, {agreed_err} refused");
}
