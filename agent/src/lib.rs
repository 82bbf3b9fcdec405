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
//! | module | job |
//! | --- | --- |
//! | [`capture`] | frames out of pcap and pcapng files, borrowed, with their link type and time |
//! | [`decode`] | link, network and transport headers; bounds-checked, allocation-free |
//! | [`dns`] | DNS question names from a message, allocation-free |
//! | [`inspect`] | observables of a packet, direction by `home_net`, matched against the set |
//! | [`sighting`] | aggregation of hits into [`sighting::Sighting`]s; the JSON-lines contract |
//! | [`pseudonym`] | keyed pseudonyms for internal hosts (HMAC-SHA256, local secret) |
//! | [`replay`] | the path above over capture files |
//! | [`uplink`] | the `Report` stream and heartbeats to the collector |
//! | [`sync`] | fetch the collector's signed indicator set and install it as the last good set |
//! | [`sample`] | deterministic demo traffic of three institutions (for `zdn demo` and tests) |
//!
//! Hot-path invariants (per packet): no allocation unless an indicator matched, no locks, work
//! bounded by constants (VLAN tags, IPv6 extension headers, DNS questions and pointers).

pub mod capture;
pub mod decode;
pub mod dns;
pub mod inspect;
pub mod pseudonym;
pub mod replay;
pub mod sample;
pub mod sighting;
pub mod sync;
pub mod uplink;
