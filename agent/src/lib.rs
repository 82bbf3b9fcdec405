//! # zdn-agent
//!
//! The sensor that runs at each participant: it decodes traffic, extracts what names a
//! destination, matches it against the CERT's indicators and reports sightings.
//!
//! Data flow, one packet at a time (`docs/ARCHITECTURE.md` has the whole picture):
//!
//! ```text
//! capture ──Frame──▶ decode ──Decoded──▶ inspect ──Hit──▶ sighting::Aggregator ──Sighting──▶ uplink
//! (pcap/pcapng)      (link, IP, L4)      (IndicatorSet)   (window, pseudonym)                (gRPC, mTLS)
//! ```
//!
//! The long-running sensor (`zdn-agent run`, [`service`]) adds a spool, delivery with
//! acknowledgements, heartbeats and a subscription to the collector's signed set:
//!
//! ```text
//! capture/live ─▶ pipeline (decode, inspect, aggregate, limits, alert log) ─▶ spool ─▶ delivery ─▶ collector
//!                    ▲ ArcSwap<IndicatorSet> ◀── liveset ◀── sync::follow ◀──────────────────────── collector
//! ```
//!
//! | module | job |
//! | --- | --- |
//! | [`capture`] | frames out of pcap and pcapng files, borrowed, with their link type and time |
//! | [`live`] | frames from network interfaces (AF_PACKET via pnet) |
//! | [`inspect`] | direction by `home_net`, observables matched against the set |
//! | [`sighting`] | aggregation of hits into [`sighting::Sighting`]s; the JSON-lines contract |
//! | [`pseudonym`] | keyed pseudonyms for internal hosts (HMAC-SHA256, local secret) |
//! | [`observe`] | every observable of capture files, for `zdn-agent observe` |
//! | [`replay`] | the path above over capture files, for `zdn-agent replay` |
//! | [`config`] | `agent.toml`: every key, its default, its checks |
//! | [`pipeline`] | one capture worker's path from frame to spool, on the live set |
//! | [`ratelimit`] | per-indicator and overall limits on what is sent (governor) |
//! | [`alerts`] | the local JSON-lines alert log with ECS names (real internal addresses) |
//! | [`spool`] | the durable queue of unacknowledged sightings (SQLite, bounded) |
//! | [`delivery`] | the spool drained over the `Report` stream, deleted on acknowledgement |
//! | [`uplink`] | one-shot report of a replay, heartbeats, host statistics |
//! | [`sync`] | the collector's signed set: one fetch, or a subscription that installs each version |
//! | [`liveset`] | the set matched: installed collector set + local lists − local allowlists |
//! | [`counters`] | the running tallies the heartbeat and metrics report |
//! | [`metrics`] | Prometheus `/metrics` over HTTP, when enabled |
//! | [`enrol`] | `zdn-agent enrol`: the issued bundle checked and installed as the identity |
//! | [`service`] | `zdn-agent run`: workers, tasks, reload and graceful stop |
//!
//! Hot-path invariants (per packet): no allocation unless an indicator matched, no locks, work
//! bounded by constants (VLAN tags, IPv6 extension headers, DNS questions and pointers).

pub mod alerts;
pub mod capture;
pub mod config;
pub mod counters;
pub mod delivery;
pub mod enrol;
pub mod inspect;
pub mod live;
pub mod liveset;
pub mod metrics;
pub mod observe;
pub mod pipeline;
pub mod pseudonym;
pub mod ratelimit;
pub mod replay;
pub mod service;
pub mod sighting;
pub mod spool;
pub mod sync;
pub mod uplink;
