//! What `observe` extracts from the Suricata verification captures against what tshark
//! (Wireshark's dissectors) finds in them: DNS query names, TLS/QUIC server names, HTTP hosts.
//! tshark's findings are committed in `tests/data/tshark-names.tsv`, made by the script beside
//! it (so the test needs no tshark). Every difference, either way, is listed in `EXPLAINED`
//! with the reason, or the test fails.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use zdn_agent::observe::observe;

type Names = BTreeSet<(String, String)>; // (field, value)

fn suite() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/pcap/suricata-verify")
}

/// tshark's (field, value) per capture directory.
fn tshark() -> BTreeMap<String, Names> {
    let text = include_str!("data/tshark-names.tsv");
    let mut out: BTreeMap<String, Names> = BTreeMap::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, '\t');
        let (Some(dir), Some(field), Some(value)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let value = match field {
            "http_host" => strip_port(value).to_owned(),
            _ => value.trim_end_matches('.').to_owned(),
        };
        out.entry(dir.to_owned()).or_default().insert((field.to_owned(), value));
    }
    out
}

/// `host[:port]` → `host` (IPv6 literals keep their brackets).
fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.find(']').map_or(authority, |i| &authority[..=i]);
    }
    match authority.split_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => authority,
    }
}

/// The agent's (field, value) for the captures in `dir`.
fn agent(dir: &Path) -> Names {
    let pcaps: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    let mut out = Names::new();
    let _ = observe(&pcaps, |o| {
        let field = match o.via.as_str() {
            "dns_query" => "dns",
            "tls_sni" | "quic_sni" => "sni",
            "http_host" => "http_host",
            // tshark names IP-literal hosts too; the agent has them in the URL only.
            "http_url" => {
                let host = strip_port(o.value.split('/').next().unwrap_or_default());
                if host.parse::<std::net::IpAddr>().is_ok()
                    || host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok()
                {
                    out.insert(("http_host".into(), host.to_owned()));
                }
                return;
            }
            _ => return,
        };
        out.insert((field.to_owned(), o.value));
    });
    out
}

#[test]
fn observe_agrees_with_tshark() {
    let reference = tshark();
    assert!(reference.len() > 100, "the committed tshark findings are missing");
    let mut differences: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut compared = 0;
    for entry in std::fs::read_dir(suite()).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let theirs = reference.get(&name).cloned().unwrap_or_default();
        let ours = agent(&dir);
        compared += theirs.len();
        for (field, value) in theirs.difference(&ours) {
            differences.entry(name.clone()).or_default().push(format!("tshark only: {field} {value}"));
        }
        for (field, value) in ours.difference(&theirs) {
            differences.entry(name.clone()).or_default().push(format!("agent only: {field} {value}"));
        }
    }
    eprintln!("{compared} tshark findings compared; differences: {differences:#?}");
    // Each difference is explained by itself: a new one in a capture that already has an
    // explained one still fails.
    let found: BTreeSet<(&str, &str)> = differences
        .iter()
        .flat_map(|(dir, lines)| lines.iter().map(move |l| (dir.as_str(), l.as_str())))
        .collect();
    let explained: BTreeSet<(&str, &str)> =
        EXPLAINED.iter().map(|(dir, difference, _)| (*dir, *difference)).collect();
    let unexplained: Vec<_> = found.difference(&explained).collect();
    assert!(unexplained.is_empty(), "unexplained differences: {unexplained:#?}");
    let stale: Vec<_> = explained.difference(&found).collect();
    assert!(stale.is_empty(), "explained but now agreeing (remove from EXPLAINED): {stale:?}");
}

/// Why the agent names hosts in HTTP/2 cleartext captures where tshark's script does not.
const H2C: &str = "HTTP/2 in cleartext: the agent reads the first request's :authority (HPACK); \
    tshark's http.host covers HTTP/1 only (HTTP/2 headers are in http2.header fields, which the \
    script does not extract)";

/// Every difference between the agent and tshark, by capture, and why.
const EXPLAINED: &[(&str, &str, &str)] = &[
    ("dns-over-http2", "agent only: http_host dns.google", H2C),
    ("http2-authority-mismatch", "agent only: http_host example.com", H2C),
    ("http2-continuation", "agent only: http_host 127.0.0.1", H2C),
    ("http2-long-frame", "agent only: http_host target.com", H2C),
    (
        "dns-opcode",
        "tshark only: dns bortzmeyer.42",
        "a NOTIFY (opcode 4): its question names a zone that changed, not a lookup; the agent \
         skips NOTIFY and UPDATE by design",
    ),
    (
        "http-protocol-nodup",
        "tshark only: http_host 116.181.2.152,116.181.2.152,116.181.2.152,116.181.2.152,116.181.2.152,116.181.2.152,116.181.2.152",
        NODUP,
    ),
    (
        "http-protocol-nodup",
        "tshark only: http_host 116.181.2.152,116.181.2.152,116.181.2.152,116.181.2.152,116.181.2.152,116.181.2.152,116.181.2.152,116.181.2.152",
        NODUP,
    ),
    (
        "http-protocol-nodup",
        "tshark only: http_host 116.181.2.152,116.181.2.152,116.181.2.152,116.181.2.152,116.181.2.152,116.181.2.152,116.181.2.152,116.181.2.152,116.181.2.152",
        NODUP,
    ),
    ("http-protocol-nodup", "agent only: http_host 116.181.2.152", NODUP),
    (
        "http-request-invalid",
        "tshark only: http_host 239.255.255.250",
        "SSDP (HTTP-over-UDP multicast discovery to 239.255.255.250): local service discovery, \
         not a destination; the agent reads HTTP over TCP",
    ),
    (
        "vxlan-decoder-01",
        "tshark only: dns localhost",
        "a DNS query *from* port 53 to port 32021, which tshark labels DNS by the source port; \
         the agent reads queries sent to port 53 (the VXLAN inner packets themselves agree)",
    ),
];

/// Why tshark and the agent name the duplicated Host headers differently.
const NODUP: &str = "duplicate Host headers: tshark joins them with commas, the agent takes the first (the \
    one servers use); the host is the same";
