//! Tests of [`super`].

use super::*;

/// A minimal ClientHello with the given extensions, in one record.
pub(crate) fn hello(extensions: &[(u16, Vec<u8>)], suites: &[u16]) -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend([7u8; 32]);
    body.push(0);
    body.extend(((suites.len() * 2) as u16).to_be_bytes());
    suites.iter().for_each(|s| body.extend(s.to_be_bytes()));
    body.extend([1, 0]);
    let mut ext = Vec::new();
    for (ty, data) in extensions {
        ext.extend(ty.to_be_bytes());
        ext.extend((data.len() as u16).to_be_bytes());
        ext.extend(data);
    }
    body.extend((ext.len() as u16).to_be_bytes());
    body.extend(ext);
    let mut hs = vec![1, 0, (body.len() >> 8) as u8, body.len() as u8];
    hs.extend(body);
    let mut rec = vec![22, 3, 1, (hs.len() >> 8) as u8, hs.len() as u8];
    rec.extend(hs);
    rec
}

pub(crate) fn sni_ext(name: &str) -> (u16, Vec<u8>) {
    let mut v = ((name.len() + 3) as u16).to_be_bytes().to_vec();
    v.push(0);
    v.extend((name.len() as u16).to_be_bytes());
    v.extend(name.as_bytes());
    (0, v)
}

#[test]
fn reads_sni_alpn_and_fingerprints() {
    let alpn = (0x10, vec![0, 3, 2, b'h', b'2']);
    let rec = hello(
        &[(0x0a0a, vec![]), sni_ext("WWW.Example.COM."), alpn, (0x2b, vec![2, 3, 4])],
        &[0x1a1a, 0x1301, 0x1302],
    );
    assert_eq!(client_hello_progress(&rec), Ok(Progress::Complete { len: rec.len() }));
    assert_eq!(client_hello_progress(&rec[..rec.len() - 1]), Ok(Progress::Incomplete { total: rec.len() }));
    let h = parse_handshake(&rec[5..], false).unwrap();
    assert_eq!(h.sni.unwrap().as_str(), "www.example.com");
    assert_eq!(h.alpn, Some(&b"h2"[..]));
    assert!(!h.ech);
    // t, TLS 1.3 from supported_versions, SNI, 2 ciphers (GREASE left out), 3 extensions.
    assert!(h.ja4.as_str().starts_with("t13d0203h2_"), "{:?}", h.ja4);
    assert_eq!(&h.ja4.as_str()[11..23], &hex::encode(Sha256::digest(b"1301,1302"))[..12]);
    let ja3_text = "771,4865-4866,0-16-43,,";
    assert_eq!(ja3_str(&h.ja3), hex::encode(Md5::digest(ja3_text.as_bytes())));
}

#[test]
fn bad_hellos_are_errors_never_panics() {
    let rec = hello(&[sni_ext("a.example")], &[0x1301]);
    for cut in 0..rec.len() {
        let _ = client_hello_progress(&rec[..cut]);
        let _ = parse_handshake(&rec[5..cut.max(5)], false);
    }
    assert_eq!(client_hello_progress(b"GET / HTTP/1.1\r\n"), Err(TlsError::NotHandshake));
    let parse = |rec: &[u8]| handshake_of(rec).and_then(|m| parse_handshake(&m, false).map(|h| h.ech));
    let bad_name = hello(&[sni_ext("evil\u{7f}.example")], &[0x1301]);
    assert!(parse(&bad_name).is_err());
    let mut ech = hello(&[(0xfe0d, vec![0; 8])], &[0x1301]);
    assert_eq!(parse(&ech), Ok(true));
    ech[8] ^= 0xff; // corrupt the handshake length
    assert!(parse(&ech).is_err());
}

/// `record` (one record holding a whole ClientHello) re-cut into records of `size` bytes.
fn split_records(record: &[u8], size: usize) -> Vec<u8> {
    record[5..]
        .chunks(size)
        .flat_map(|c| [&[22, 3, 1][..], &(c.len() as u16).to_be_bytes(), c].concat())
        .collect()
}

#[test]
fn a_hello_split_over_many_records_is_read_whole() {
    let rec = hello(&[sni_ext("hidden.example")], &[0x1301, 0x1302]);
    let whole = handshake_of(&rec).unwrap();
    assert!(matches!(whole, Cow::Borrowed(_)), "one record: no copy");
    let single = parse_handshake(&whole, false).unwrap();
    for size in [1, 2, 3, 5, 40] {
        let split = split_records(&rec, size);
        let records = split.len() / (5 + size);
        if records > MAX_RECORDS {
            let refused = Err(TlsError::Malformed("ClientHello split over too many records"));
            assert_eq!(client_hello_progress(&split), refused, "{records} records of {size}");
            continue;
        }
        // Every prefix is incomplete, the whole is complete, and the hello is the same.
        for cut in 0..split.len() {
            let progress = client_hello_progress(&split[..cut]);
            assert!(matches!(progress, Ok(Progress::Incomplete { .. })), "{size} {cut}");
        }
        assert_eq!(client_hello_progress(&split), Ok(Progress::Complete { len: split.len() }));
        let message = handshake_of(&split).unwrap();
        assert_eq!(parse_handshake(&message, false).unwrap(), single, "records of {size}");
    }
    // Another record type in between, or an empty record: malformed, not followed.
    let mut mixed = split_records(&rec, 40);
    mixed[45] = 23;
    assert!(matches!(client_hello_progress(&mixed), Err(TlsError::Malformed(_))));
    let empty = [&[22, 3, 1, 0, 1, 1][..], &[22, 3, 1, 0, 0]].concat();
    assert!(matches!(client_hello_progress(&empty), Err(TlsError::Malformed(_))));
}
