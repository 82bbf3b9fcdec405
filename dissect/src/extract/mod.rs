//! Observables: everything in a packet that names a destination — the address of a
//! connection attempt, DNS query names and answers (UDP and TCP), the TLS server name and
//! fingerprints, HTTP host and URL — and the blind spots where a destination is hidden from us
//! (Encrypted Client Hello, DNS over TLS, DNS over HTTPS to public resolvers).
//!
//! Extraction knows nothing of indicators or of `home_net`; it says which way each
//! observation's packet went ([`Towards`]), and the agent's packet path decides what to match;
//! `zdn-agent observe` prints everything. Values are borrowed or built in stack buffers;
//! only an HTTP URL (canonical form), an h2c request's decoded headers and a reassembled
//! message allocate.

use crate::decode::{Decoded, Transport};
use crate::defrag::{Defragmenter, Whole};
use crate::dns;
use crate::h2c;
use crate::http::{self, HttpProgress};
use crate::pdns::PassiveDns;
use crate::quic::{QuicError, QuicTable};
use crate::stream::{FlowKey, StreamTable, Unit};
use crate::tls::{self, Progress};
use std::net::IpAddr;
use zdn_indicators::Via;

/// What an observation carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Ip(IpAddr),
    IpPort(IpAddr, u16),
    /// A host name, lower-case, no trailing dot.
    Name(&'a str),
    /// A URL in canonical `host/path?query` form, a JA3 or a JA4 fingerprint.
    Text(&'a str),
}

impl std::fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Ip(ip) => write!(f, "{ip}"),
            Value::IpPort(ip, port) => write!(f, "{}", std::net::SocketAddr::new(*ip, *port)),
            Value::Name(s) | Value::Text(s) => f.write_str(s),
        }
    }
}

/// Where a destination could not be seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlindSpot {
    /// A ClientHello offering Encrypted Client Hello: the SNI seen is the outer, public one.
    EncryptedClientHello,
    /// A connection to port 853: DNS over TLS, names invisible.
    DnsOverTls,
    /// TLS to a well-known public DNS-over-HTTPS resolver: names invisible.
    DnsOverHttps,
}

impl BlindSpot {
    pub fn name(self) -> &'static str {
        match self {
            BlindSpot::EncryptedClientHello => "tls_ech",
            BlindSpot::DnsOverTls => "dns_over_tls",
            BlindSpot::DnsOverHttps => "dns_over_https",
        }
    }
}

/// Which way the packet that carried an observation went, so that whoever matches it knows
/// which end is the client (the host a sighting is about) without guessing from ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Towards {
    /// From the client to the server: connection attempts, queries, ClientHellos, requests.
    /// The client is the packet's source.
    Server,
    /// From the server back to the client: DNS answers (over UDP and TCP). The client is the
    /// packet's destination.
    Client,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation<'a> {
    Seen {
        via: Via,
        value: Value<'a>,
        towards: Towards,
    },
    Blind {
        spot: BlindSpot,
        value: Value<'a>,
    },
    /// Context that names no destination but helps triage (`tls_alpn`, `http_user_agent`):
    /// printed by `observe`, never matched.
    Attribute {
        name: &'static str,
        value: &'a str,
    },
}

/// Counters of extraction.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExtractStats {
    pub dns_queries: u64,
    pub dns_malformed: u64,
    pub dns_answers: u64,
    pub tls_hellos: u64,
    pub tls_malformed: u64,
    pub http_requests: u64,
    pub http_malformed: u64,
    /// QUIC Initials that did not parse or decrypt (a server's Initial, a foreign version
    /// mislabelled, damage).
    pub quic_malformed: u64,
    pub blind_ech: u64,
    pub blind_dot: u64,
    pub blind_doh: u64,
    /// What the bounded state dropped: client streams abandoned (gap, too long, evicted,
    /// expired), fragmented datagrams abandoned (evicted, expired, too long, inconsistent),
    /// QUIC Initials that did not decrypt.
    pub streams_dropped: u64,
    pub datagrams_dropped: u64,
    pub quic_undecryptable: u64,
}

/// Public DNS-over-HTTPS resolvers by server name (what browsers and OSes use by default).
const DOH_RESOLVERS: [&str; 10] = [
    "dns.google",
    "dns.google.com",
    "cloudflare-dns.com",
    "mozilla.cloudflare-dns.com",
    "one.one.one.one",
    "dns.quad9.net",
    "doh.opendns.com",
    "dns.nextdns.io",
    "doh.cleanbrowsing.org",
    "dns.adguard-dns.com",
];

const DNS_PORT: u16 = 53;
const DOT_PORT: u16 = 853;

#[derive(Default)]
pub struct Extractor {
    streams: StreamTable,
    quic: QuicTable,
    defrag: Defragmenter,
    pdns: PassiveDns,
    stats: ExtractStats,
}

/// Smallest UDP payload of a client's first QUIC Initial (RFC 9000 §14.1 pads to 1200).
const QUIC_MIN_INITIAL: usize = 1200;

impl Extractor {
    /// The DNS name `ip` was last resolved from, as seen in answers.
    pub fn resolved_name(&self, ip: IpAddr) -> Option<&str> {
        self.pdns.name_of(ip)
    }

    /// The counters, with what the bounded tables dropped.
    pub fn stats(&self) -> ExtractStats {
        let (s, d) = (&self.streams.stats, &self.defrag.stats);
        ExtractStats {
            streams_dropped: s.gaps + s.oversized + s.evicted + s.expired,
            datagrams_dropped: d.evicted + d.expired + d.oversized + d.inconsistent,
            quic_undecryptable: self.quic.stats.undecryptable,
            ..self.stats
        }
    }

    /// Adds an IP fragment; the whole datagram once this fragment completes it. Callers
    /// extract from the whole, never from fragments ([`Extractor::extract`] ignores them).
    pub fn defragment(&mut self, fragment: &Decoded<'_>, now_ms: i64) -> Option<Whole> {
        self.defrag.add(fragment, now_ms)
    }

    /// Calls `each` for every observable of `packet`.
    pub fn extract(&mut self, packet: &Decoded<'_>, now_ms: i64, mut each: impl FnMut(Observation<'_>)) {
        let t = &packet.transport;
        // Destinations: connection attempts, UDP, ICMP. Later TCP segments of the same
        // connection add nothing the SYN did not say.
        if t.is_tcp_syn() || matches!(t, Transport::Udp { .. } | Transport::Icmp) {
            let port = t.dst_port();
            if port != 0 {
                each(Observation::Seen {
                    via: Via::IpDst,
                    value: Value::IpPort(packet.dst, port),
                    towards: Towards::Server,
                });
            }
            each(Observation::Seen {
                via: Via::IpDst,
                value: Value::Ip(packet.dst),
                towards: Towards::Server,
            });
            if t.is_tcp_syn() && port == DOT_PORT {
                self.stats.blind_dot += 1;
                each(Observation::Blind {
                    spot: BlindSpot::DnsOverTls,
                    value: Value::IpPort(packet.dst, port),
                });
            }
        }
        match *t {
            Transport::Udp { dst_port: DNS_PORT, payload, .. } => self.dns_message(payload, &mut each),
            Transport::Udp { src_port: DNS_PORT, payload, .. } => self.dns_answers(payload, &mut each),
            Transport::Udp { src_port, dst_port, payload }
                if payload.first().is_some_and(|b| b & 0xc0 == 0xc0) =>
            {
                let key = FlowKey { src: packet.src, dst: packet.dst, src_port, dst_port };
                self.quic_datagram(key, payload, payload.len() >= QUIC_MIN_INITIAL, &mut each);
            }
            Transport::Tcp { src_port, dst_port, seq, payload, .. } if !payload.is_empty() => {
                let key = FlowKey { src: packet.src, dst: packet.dst, src_port, dst_port };
                self.tcp_payload(key, seq, payload, now_ms, &mut each);
            }
            _ => {}
        }
    }

    /// A long-header UDP datagram: a QUIC Initial of a client we follow, or the first of one.
    fn quic_datagram(
        &mut self,
        key: FlowKey,
        payload: &[u8],
        could_start: bool,
        each: &mut impl FnMut(Observation<'_>),
    ) {
        if !could_start && !self.quic.follows(&key) {
            return;
        }
        let Extractor { quic, stats, .. } = self;
        let result = quic.offer(key, payload, |handshake| match tls::parse_handshake(handshake, true) {
            Ok(hello) => {
                stats.tls_hellos += 1;
                hello_observations(&hello, Via::QuicSni, stats, key.dst, key.dst_port, each);
            }
            Err(_) => stats.tls_malformed += 1,
        });
        // Long-header datagrams of unknown versions or other packet types are not ours.
        if let Err(QuicError::Malformed(_) | QuicError::Decrypt) = result {
            stats.quic_malformed += 1;
        }
    }

    /// Addresses and aliases in a response: a client told that a listed name lives at an
    /// address, or that a name is an alias of a listed one, is a sighting before it connects.
    fn dns_answers(&mut self, msg: &[u8], each: &mut impl FnMut(Observation<'_>)) {
        let Extractor { stats, pdns, .. } = self;
        let result = dns::for_each_answer(msg, |question, answer| {
            stats.dns_answers += 1;
            let value = match answer {
                dns::Answer::Address(ip) => {
                    pdns.record(ip, question);
                    Value::Ip(ip)
                }
                dns::Answer::Alias(name) => Value::Name(name),
            };
            each(Observation::Seen { via: Via::DnsAnswer, value, towards: Towards::Client });
        });
        if matches!(result, Err(e) if e != dns::DnsError::NotResponse) {
            stats.dns_malformed += 1;
        }
    }

    fn dns_message(&mut self, msg: &[u8], each: &mut impl FnMut(Observation<'_>)) {
        let stats = &mut self.stats;
        let result = dns::for_each_query_name(msg, |name| {
            stats.dns_queries += 1;
            each(Observation::Seen {
                via: Via::DnsQuery,
                value: Value::Name(name),
                towards: Towards::Server,
            });
        });
        if matches!(result, Err(e) if e != dns::DnsError::NotQuery) {
            stats.dns_malformed += 1;
        }
    }

    fn tcp_payload(
        &mut self,
        key: FlowKey,
        seq: u32,
        payload: &[u8],
        now_ms: i64,
        each: &mut impl FnMut(Observation<'_>),
    ) {
        // Cheap first look: most segments are bulk data of a flow we are not following.
        let first = payload[0];
        // DNS over TCP both ways: queries to port 53, and answers from it (which feed the
        // passive-DNS cache like answers over UDP).
        let (dns_query, dns_answer) = (key.dst_port == DNS_PORT, key.src_port == DNS_PORT);
        let dns = dns_query || dns_answer;
        let candidate =
            dns || first == 22 || http::looks_like_request(payload) || h2c::looks_like_preface(payload);
        if !candidate && self.streams.is_empty() {
            return;
        }
        let classify = |bytes: &[u8]| -> Unit {
            if dns {
                return match bytes {
                    [hi, lo, rest @ ..] => {
                        if rest.len() >= usize::from(u16::from_be_bytes([*hi, *lo])) {
                            Unit::Complete
                        } else {
                            Unit::Incomplete
                        }
                    }
                    _ => Unit::Incomplete,
                };
            }
            if h2c::looks_like_preface(bytes) {
                return match h2c::progress(bytes) {
                    Ok(h2c::Progress::Complete { .. }) => Unit::Complete,
                    Ok(h2c::Progress::Incomplete) => Unit::Incomplete,
                    Err(_) => Unit::NotOurs,
                };
            }
            match bytes.first() {
                Some(22) => match tls::client_hello_progress(bytes) {
                    Ok(Progress::Complete { .. }) => Unit::Complete,
                    Ok(Progress::Incomplete { .. }) => Unit::Incomplete,
                    Err(_) => Unit::NotOurs,
                },
                // The request is parsed once, when its headers have ended. Most requests end
                // their segment with the blank line, which settles it without a search.
                Some(_) if !http::looks_like_request(bytes) => Unit::NotOurs,
                Some(_) if bytes.ends_with(b"\r\n\r\n") => Unit::Complete,
                Some(_) if memchr::memmem::find(bytes, b"\r\n\r\n").is_some() => Unit::Complete,
                Some(_) => Unit::Incomplete,
                None => Unit::Incomplete,
            }
        };
        let Some(message) = self.streams.offer(key, seq, payload, now_ms, classify) else { return };
        if dns {
            // Several messages may follow each other on one connection: read every whole
            // message present (a partial one at the end is dropped). A message that does not
            // fit the stream bound (`stream::MAX_BYTES`, e.g. a zone transfer) is not read.
            let mut rest = &message[..];
            while let [hi, lo, body @ ..] = rest {
                let len = usize::from(u16::from_be_bytes([*hi, *lo]));
                let Some(msg) = body.get(..len) else { break };
                if dns_query {
                    self.dns_message(msg, each);
                } else {
                    self.dns_answers(msg, each);
                }
                rest = &body[len..];
            }
        } else if message[0] == 22 {
            self.client_hello(&message, key, each);
        } else if h2c::looks_like_preface(&message) {
            self.h2c_request(&message, each);
        } else {
            self.http_request(&message, each);
        }
    }

    fn client_hello(&mut self, record: &[u8], key: FlowKey, each: &mut impl FnMut(Observation<'_>)) {
        let message = tls::handshake_of(record);
        let hello = match message.as_deref().map(|m| tls::parse_handshake(m, false)) {
            Ok(Ok(hello)) => hello,
            _ => {
                self.stats.tls_malformed += 1;
                return;
            }
        };
        self.stats.tls_hellos += 1;
        hello_observations(&hello, Via::TlsSni, &mut self.stats, key.dst, key.dst_port, each);
    }

    fn http_request(&mut self, bytes: &[u8], each: &mut impl FnMut(Observation<'_>)) {
        let request = match http::parse_request(bytes) {
            Ok(HttpProgress::Complete(r)) => r,
            _ => {
                self.stats.http_malformed += 1;
                return;
            }
        };
        self.stats.http_requests += 1;
        // Absolute-form targets (proxies) carry the host; otherwise the Host header does.
        // (Only a target that does not start with `/` is absolute: `/r?u=http://x/` is a path.)
        let absolute = request.target.split_once("://").filter(|_| !request.target.starts_with('/'));
        let (authority, path) = match absolute {
            Some((_, rest)) => rest.find('/').map_or((rest, "/"), |i| rest.split_at(i)),
            None => (request.host.unwrap_or_default(), request.target),
        };
        request_observations(authority, path, request.user_agent, each);
    }

    /// The first request of an HTTP/2 cleartext connection, reported like an HTTP/1 one.
    fn h2c_request(&mut self, bytes: &[u8], each: &mut impl FnMut(Observation<'_>)) {
        let Ok(request) = h2c::first_request(bytes) else {
            self.stats.http_malformed += 1;
            return;
        };
        self.stats.http_requests += 1;
        let path = request.path.as_deref().unwrap_or("/");
        request_observations(
            request.authority.as_deref().unwrap_or_default(),
            path,
            request.user_agent.as_deref(),
            each,
        );
    }
}

/// A request's host, canonical URL and user agent, from its authority (`host[:port]`, may be
/// empty) and path.
fn request_observations(
    authority: &str,
    path: &str,
    user_agent: Option<&str>,
    each: &mut impl FnMut(Observation<'_>),
) {
    use std::fmt::Write as _;
    let path = if path.starts_with('/') { path } else { "/" };
    // The URL is built in one buffer: host, port unless 80, canonical path.
    let mut url = String::with_capacity(authority.len() + path.len() + 8);
    let mut host_buf = [0u8; 253];
    // No usable host (HTTP/1.0 without Host): the path alone, which host-less URL indicators
    // (`/gate.php`) still match.
    if let Some((host, port)) = host_and_port(authority, &mut host_buf) {
        // The canonical URL form of the indicator model: IPv6 literals in brackets. Only a
        // host starting with a digit or holding a colon can be an address literal; names
        // skip the address parser.
        let literal = (host.starts_with(|c: char| c.is_ascii_digit()) || host.contains(':'))
            .then(|| host.parse::<IpAddr>().ok())
            .flatten();
        match literal {
            Some(IpAddr::V6(v6)) => _ = write!(url, "[{v6}]"),
            Some(IpAddr::V4(v4)) => _ = write!(url, "{v4}"),
            None => {
                each(Observation::Seen {
                    via: Via::HttpHost,
                    value: Value::Name(host),
                    towards: Towards::Server,
                });
                url.push_str(host);
            }
        }
        if let Some(p) = port.filter(|&p| p != 80) {
            _ = write!(url, ":{p}");
        }
    }
    zdn_indicators::normalise::push_canonical_path(&mut url, path);
    each(Observation::Seen { via: Via::HttpUrl, value: Value::Text(&url), towards: Towards::Server });
    if let Some(agent) = user_agent {
        each(Observation::Attribute { name: "http_user_agent", value: agent });
    }
}

/// The observations of a parsed ClientHello (TLS or QUIC).
pub(crate) fn hello_observations(
    hello: &tls::ClientHello<'_>,
    sni_via: Via,
    stats: &mut ExtractStats,
    dst: IpAddr,
    dst_port: u16,
    each: &mut impl FnMut(Observation<'_>),
) {
    if let Some(name) = &hello.sni {
        let name = name.as_str();
        each(Observation::Seen { via: sni_via, value: Value::Name(name), towards: Towards::Server });
        if DOH_RESOLVERS.contains(&name) {
            stats.blind_doh += 1;
            each(Observation::Blind { spot: BlindSpot::DnsOverHttps, value: Value::Name(name) });
        }
    }
    if hello.ech {
        stats.blind_ech += 1;
        each(Observation::Blind {
            spot: BlindSpot::EncryptedClientHello,
            value: Value::IpPort(dst, dst_port),
        });
    }
    each(Observation::Seen {
        via: Via::Ja3,
        value: Value::Text(tls::ja3_str(&hello.ja3)),
        towards: Towards::Server,
    });
    each(Observation::Seen {
        via: Via::Ja4,
        value: Value::Text(hello.ja4.as_str()),
        towards: Towards::Server,
    });
    if let Some(alpn) = hello.alpn.and_then(|a| std::str::from_utf8(a).ok()) {
        each(Observation::Attribute { name: "tls_alpn", value: alpn });
    }
}

/// Host (lower-case, no trailing dot, brackets of IPv6 literals removed) and port of an
/// authority `host[:port]`, or `None` if it is not a plausible host.
fn host_and_port<'b>(authority: &str, buf: &'b mut [u8; 253]) -> Option<(&'b str, Option<u16>)> {
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        (h, after.strip_prefix(':').and_then(|p| p.parse().ok()))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p.parse().ok()?)),
            None => (authority, None),
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > buf.len() {
        return None;
    }
    for (dst, c) in buf.iter_mut().zip(host.bytes()) {
        if !(c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b':')) {
            return None;
        }
        *dst = c.to_ascii_lowercase();
    }
    std::str::from_utf8(&buf[..host.len()]).ok().map(|h| (h, port))
}

#[cfg(test)]
mod tests;
