//! # zdn-indicators
//!
//! The indicator model that agent and collector share, the loaders that turn a CERT's lists
//! into it, and the matcher the agent runs on every packet.
//!
//! | module | job |
//! | --- | --- |
//! | [`model`] | [`Indicator`], its [`Kind`], and the [`Via`] through which traffic matched it |
//! | [`normalise`] | one canonical text form per indicator value: refanging, case, IDN, ports |
//! | [`report`] | [`Loaded`] and [`LoadReport`]: what a load produced, every rejected entry with its place |
//! | [`formats`] | format detection and one loader per format: plain/trails, CSV, Zeek Intel, MISP feeds and events, STIX 2.1 |
//! | [`allowlist`] | MISP warninglists, applied when a set is built: withdraw what an entry names, flag what it covers (per-list [`Policy`]) |
//! | [`sources`] | configured paths and allowlists into one [`IndicatorSet`] with its reports |
//! | [`signing`] | Ed25519-signed sets: publish, verify against a pinned key, install only newer plausible sets |
//! | [`set`] | [`IndicatorSet`], the immutable matcher: exact IPs, CIDRs, IP:port, domains, URLs, JA3/JA4 |
//!
//! Why normalise on load: the agent then compares canonical forms only, so the per-packet path
//! never refangs, lower-cases indicator values or parses URLs of the list again.

// `unsafe` is denied; mapping a compiled set into memory (`sources.rs`) allows it locally.
#![deny(unsafe_code)]

pub mod allowlist;
pub mod formats;
pub mod model;
pub mod normalise;
pub mod report;
pub mod set;
pub mod signing;
pub mod sources;

pub use allowlist::{Allowlist, Policies, Policy};
pub use formats::{load, parse_plain};
pub use model::{Indicator, Kind, Via};
pub use normalise::{MAX_VALUE_LEN, Normalised, RejectReason, normalise};
pub use report::{LoadError, LoadReport, Loaded, Rejected};
pub use set::IndicatorSet;
pub use sources::{Allowlists, BuiltSet, Screened, build_set};
