//! # zdn-agent
//!
//! The sensor that runs at each participant: it takes frames off the wire or out of capture
//! files, finds what names a destination (the parsers are `zdn-dissect`), matches it against
//! the CERT's indicators and reports sightings. `docs/ARCHITECTURE.md` has the whole picture.
//!
//! Every frame takes one path ([`packet_path`]), whether it comes from live capture, `replay`
//! or `observe`:
//!
//! ```text
//! capture/live ──Frame──▶ PacketPath (decode, defragment, extract, match) ──Hit──▶ sighting::Aggregator ──Sighting──▶
//!                          zdn-dissect           IndicatorSet, home_net              window, pseudonym
//! ```
//!
//! The long-running sensor (`zdn-agent run`, [`service`]) adds a spool, delivery with
//! acknowledgements, heartbeats and a subscription to the collector's signed set:
//!
//! ```text
//! capture/live ─▶ pipeline (packet path, aggregate, limits, alert log) ─▶ spool ─▶ delivery ─▶ collector
//!                    ▲ ArcSwap<IndicatorSet> ◀── liveset ◀── sync::follow ◀────────────────────── collector
//! ```
//! `replay --collector` and the demo deliver through the same [`delivery`] code, from a
//! temporary spool.
//!
//! | module | job |
//! | --- | --- |
//! | [`capture`] | frames out of pcap and pcapng files, borrowed, with their link type and time |
//! | [`captures_read`] | the capture files `run` has read, so a restart does not report them twice |
//! | [`live`] | frames from network interfaces: a TPACKET_V3 ring (`zdn-packet-ring`) or pnet's socket, workers in a fanout group, the kernel's drops per worker |
//! | [`packet_path`] | the one path of a frame: decode, defragment, extract, match by direction; its counters |
//! | [`sighting`] | aggregation of hits into [`sighting::Sighting`]s; the JSON-lines contract |
//! | [`history`] | the destination history's tap on the packet path, and retro-hunts of newly published indicators |
//! | [`pseudonym`] | keyed pseudonyms for internal hosts (HMAC-SHA256, local secret) |
//! | [`observe`] | every observable of capture files, for `zdn-agent observe` |
//! | [`replay`] | capture files through the packet path and aggregation, for `zdn-agent replay` |
//! | [`config`] | `agent.toml`: every key, its default, its checks |
//! | [`pipeline`] | one capture worker's path from frame to spool, on the live set |
//! | [`ratelimit`] | per-indicator and overall limits on what is sent (governor) |
//! | [`alerts`] | the local JSON-lines alert log with ECS names (real internal addresses) |
//! | [`spool`] | the durable queue of unacknowledged sightings (SQLite, bounded) |
//! | [`delivery`] | the one `Report` client: a spool drained, rows deleted on acknowledgement |
//! | [`heartbeat`] | heartbeats and the host statistics they carry |
//! | [`sync`] | the collector's signed set: one fetch, or a subscription that installs each version |
//! | [`liveset`] | the set matched: installed collector set + local lists − local allowlists |
//! | [`counters`] | the running tallies the heartbeat and metrics report |
//! | [`metrics`] | Prometheus `/metrics` over HTTP, when enabled |
//! | [`enrol`] | `zdn-agent enrol`: the issued bundle checked and installed as the identity |
//! | [`service`] | `zdn-agent run`: workers, tasks, reload and graceful stop |
//!
//! Hot-path invariants (per packet): no allocation unless an indicator matched, no locks, work
//! bounded by constants (VLAN tags, IPv6 extension headers, DNS questions and pointers).
//!
//! `unsafe` is denied; the five functions that need it (mapping a capture file; opening the
//! socket fallback's AF_PACKET socket, enlarging its buffer and reading its drop count; a group
//! lookup at enrolment) each allow it locally and say why. The ring's own `unsafe` lives in
//! `zdn-packet-ring`.

#![deny(unsafe_code)]

pub mod alerts;
pub mod capture;
pub mod captures_read;
pub mod config;
pub mod counters;
pub mod delivery;
pub mod enrol;
pub mod heartbeat;
pub mod history;
pub mod live;
pub mod liveset;
pub mod metrics;
pub mod observe;
pub mod packet_path;
pub mod pipeline;
pub mod pseudonym;
pub mod ratelimit;
pub mod replay;
pub mod service;
pub mod sighting;
pub mod spool;
pub mod sync;
