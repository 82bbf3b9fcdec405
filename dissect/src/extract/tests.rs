//! Tests of [`super`].

use super::*;

fn tcp<'a>(payload: &'a [u8], seq: u32, dst_port: u16) -> Decoded<'a> {
    Decoded {
        src: "10.0.0.1".parse().unwrap(),
        dst: "192.0.2.80".parse().unwrap(),
        transport: Transport::Tcp { src_port: 40000, dst_port, seq, flags: 0x18, payload },
    }
}

fn observe(ex: &mut Extractor, packet: &Decoded<'_>) -> Vec<String> {
    let mut out = Vec::new();
    ex.extract(packet, 0, |o| {
        out.push(match o {
            Observation::Seen { via, value, .. } => format!("{via} {value}"),
            Observation::Blind { spot, value } => format!("blind:{} {value}", spot.name()),
            Observation::Attribute { name, value } => format!("{name} {value}"),
        })
    });
    out
}

#[test]
fn http_host_and_canonical_url_across_segments() {
    let mut ex = Extractor::default();
    let req = b"GET /dl/a%7Eb.exe?x=1 HTTP/1.1\r\nHost: Evil.Example:8080\r\nUser-Agent: t\r\n\r\n";
    assert!(observe(&mut ex, &tcp(&req[..20], 1, 8080)).is_empty());
    let seen = observe(&mut ex, &tcp(&req[20..], 21, 8080));
    assert_eq!(
        seen,
        ["http_host evil.example", "http_url evil.example:8080/dl/a~b.exe?x=1", "http_user_agent t"]
    );
    let proxy = b"GET http://other.example/p HTTP/1.1\r\nHost: other.example\r\n\r\n";
    assert_eq!(observe(&mut ex, &tcp(proxy, 1, 3128))[1], "http_url other.example/p");
    let redirect = b"GET /r?u=http://x.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n";
    assert_eq!(
        observe(&mut ex, &tcp(redirect, 1, 80))[0],
        "http_host a.example",
        "a URL in the query is not the target"
    );
    let ip_host = b"GET / HTTP/1.1\r\nHost: 192.0.2.80\r\n\r\n";
    assert_eq!(observe(&mut ex, &tcp(ip_host, 1, 80)), ["http_url 192.0.2.80/"]);
    // IPv6 literals keep their brackets in the URL, also one that starts with a letter; a
    // name that starts with a digit is still a name; the path is canonical (`%41` is `A`).
    let v6 = b"GET /x HTTP/1.1\r\nHost: [FE80::1]:8080\r\n\r\n";
    assert_eq!(observe(&mut ex, &tcp(v6, 1, 8080)), ["http_url [fe80::1]:8080/x"]);
    let v6 = b"GET /x HTTP/1.1\r\nHost: [2001:db8::1]\r\n\r\n";
    assert_eq!(observe(&mut ex, &tcp(v6, 1, 80)), ["http_url [2001:db8::1]/x"]);
    let digits = b"GET /a%20b%41 HTTP/1.1\r\nHost: 1password.example:80\r\n\r\n";
    assert_eq!(
        observe(&mut ex, &tcp(digits, 1, 80)),
        ["http_host 1password.example", "http_url 1password.example/a%20bA"]
    );
}

#[test]
fn tls_sni_fingerprints_and_blind_spots() {
    use crate::tls::tests::{hello, sni_ext};
    let mut ex = Extractor::default();
    let rec = hello(&[sni_ext("dns.google"), (0xfe0d, vec![0; 4])], &[0x1301]);
    let seen = observe(&mut ex, &tcp(&rec[..50], 7, 443));
    assert!(seen.is_empty());
    let seen = observe(&mut ex, &tcp(&rec[50..], 57, 443));
    assert_eq!(
        &seen[..3],
        ["tls_sni dns.google", "blind:dns_over_https dns.google", "blind:tls_ech 192.0.2.80:443"]
    );
    assert!(seen[3].starts_with("ja3 ") && seen[4].starts_with("ja4 t12d0102"));
    let stats = ex.stats();
    assert_eq!((stats.tls_hellos, stats.blind_doh, stats.blind_ech), (1, 1, 1));
}

#[test]
fn http2_cleartext_requests_across_segments() {
    let mut ex = Extractor::default();
    let stream = crate::h2c::tests::h2c_request("c2.evil.example:8080", "/v1.Beacon/Check");
    assert!(observe(&mut ex, &tcp(&stream[..40], 1, 8080)).is_empty());
    let seen = observe(&mut ex, &tcp(&stream[40..], 41, 8080));
    assert_eq!(
        seen,
        [
            "http_host c2.evil.example",
            "http_url c2.evil.example:8080/v1.Beacon/Check",
            "http_user_agent grpc-go/1.60"
        ]
    );
    assert_eq!(ex.stats().http_requests, 1);
}

#[test]
fn a_server_name_hidden_in_small_records_is_still_read() {
    use crate::tls::tests::{hello, sni_ext};
    let mut ex = Extractor::default();
    let rec = hello(&[sni_ext("hidden.example")], &[0x1301]);
    // The hello re-cut into records of 16 bytes, sent in two segments.
    let records: Vec<u8> =
        rec[5..].chunks(16).flat_map(|c| [&[22, 3, 1, 0, c.len() as u8][..], c].concat()).collect();
    assert!(observe(&mut ex, &tcp(&records[..30], 1, 443)).is_empty());
    let seen = observe(&mut ex, &tcp(&records[30..], 31, 443));
    assert_eq!(seen[0], "tls_sni hidden.example");
    assert_eq!(ex.stats().tls_hellos, 1);
}

#[test]
fn dns_over_tcp_split_and_dot() {
    let mut ex = Extractor::default();
    let q = [
        &[0u8, 30][..],
        &[0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0],
        b"\x04evil\x07example\x00",
        &[0, 1, 0, 1],
    ]
    .concat();
    assert!(observe(&mut ex, &tcp(&q[..5], 1, 53)).is_empty());
    assert_eq!(observe(&mut ex, &tcp(&q[5..], 6, 53)), ["dns_query evil.example"]);
    let syn = Decoded {
        transport: Transport::Tcp { src_port: 1, dst_port: 853, seq: 0, flags: 0x02, payload: &[] },
        ..tcp(&[], 0, 853)
    };
    assert_eq!(observe(&mut ex, &syn)[2], "blind:dns_over_tls 192.0.2.80:853");
}

#[test]
fn dns_answers_over_tcp_split_feed_the_passive_dns_cache() {
    let mut ex = Extractor::default();
    let answer = [
        &[0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0][..],
        b"\x04evil\x07example\x00",
        &[0, 1, 0, 1],
        // The answer: a pointer to the question's name, A, IN, TTL 60, 203.0.113.5.
        &[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 203, 0, 113, 5],
    ]
    .concat();
    let framed = [&(answer.len() as u16).to_be_bytes()[..], &answer].concat();
    let from_server = |payload, seq| Decoded {
        src: "192.0.2.53".parse().unwrap(),
        dst: "10.0.0.1".parse().unwrap(),
        transport: Transport::Tcp { src_port: 53, dst_port: 40000, seq, flags: 0x18, payload },
    };
    assert!(observe(&mut ex, &from_server(&framed[..20], 1)).is_empty());
    assert_eq!(observe(&mut ex, &from_server(&framed[20..], 21)), ["dns_answer 203.0.113.5"]);
    assert_eq!(ex.stats().dns_answers, 1);
    assert_eq!(ex.resolved_name("203.0.113.5".parse().unwrap()), Some("evil.example"));
}
