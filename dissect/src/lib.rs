//! # zdn-dissect
//!
//! Every parser of untrusted traffic, in one room: what arrives off the wire is read here and
//! nowhere else. From a captured frame to the observables it carries — the destinations,
//! DNS names and answers, TLS and QUIC server names, JA3/JA4, HTTP host and URL — and the
//! blind spots where a destination is hidden.
//!
//! ```text
//! frame ─▶ decode ─▶ Decoded ─▶ defrag (fragments) ─▶ extract ─▶ Observation { via, value, towards }
//!                                                      ├─ stream (TCP prefixes) ─▶ tls, http, h2c ─▶ hpack, dns
//!                                                      ├─ quic (Initials) ─▶ tls
//!                                                      └─ dns (UDP) ─▶ pdns
//! ```
//!
//! | module | job |
//! | --- | --- |
//! | [`decode`] | link, network and transport headers; bounds-checked, allocation-free |
//! | [`defrag`] | IPv4/IPv6 fragments reassembled, bounded, overlaps counted |
//! | [`dns`] | DNS question names and answers from a message, allocation-free |
//! | [`tls`] | TLS ClientHello: SNI, ALPN, ECH, JA3, JA4 — allocation-free |
//! | [`quic`] | QUIC Initial decryption (v1, v2, draft-29) and CRYPTO frames → ClientHello |
//! | [`http`] | HTTP/1.x request line, Host, User-Agent (httparse) |
//! | [`h2c`] | HTTP/2 in cleartext: the first request's authority and path |
//! | [`hpack`] | HPACK header blocks, with a table-driven Huffman decoder |
//! | [`stream`] | bounded reassembly of client stream prefixes (ClientHellos, HTTP headers, DNS/TCP) |
//! | [`pdns`] | passive DNS: the name an address was resolved from, bounded |
//! | [`extract`] | the observables of a packet and its blind spots, each with its direction |
//! | [`fifo`] | the insertion-ordered map behind every bounded table |
//! | [`fuzz`] | the entry points the fuzz targets and the bounded fuzz passes in `cargo test` share |
//!
//! Invariants, for every input: no panic (each parser is fuzzed: `fuzz/`), work bounded by
//! constants (VLAN tags, IPv6 extension headers, DNS questions and pointers, stream and
//! fragment tables), no allocation in the common case. The crate knows nothing of indicators,
//! direction policy (`home_net`), tokio, SQLite or gRPC: it reads bytes and says what they
//! name. It has no `unsafe` code.

#![forbid(unsafe_code)]

pub mod decode;
pub mod defrag;
pub mod dns;
pub mod extract;
pub mod fifo;
pub mod fuzz;
pub mod h2c;
pub mod hpack;
pub mod http;
pub mod pdns;
pub mod quic;
pub mod stream;
pub mod tls;
