//! # zdn-indicators
//!
//! The indicator model that agent and collector share, the loaders that turn a CERT's lists
//! into it, and the matcher the agent runs on every packet.
//!
//! | module | job |
//! | --- | --- |
//! | [`model`] | [`Indicator`], its [`Kind`], and the [`Via`] through which traffic matched it |
//! | [`normalise`] | one canonical text form per indicator value: refanging, case, IDN, ports |
//! | [`plain`] | the plain-text list format (one value a line, `#` comments), with a load report |
//! | [`set`] | [`IndicatorSet`], the immutable matcher: exact IPs, CIDRs, IP:port, domains |
//!
//! Why normalise on load: the agent then compares canonical forms only, so the per-packet path
//! never refangs, lower-cases indicator values or parses URLs of the list again.

pub mod model;
pub mod normalise;
pub mod plain;
pub mod set;

pub use model::{Indicator, Kind, Via};
pub use normalise::{Normalised, RejectReason, normalise};
pub use plain::{LoadError, LoadReport, Loaded, Rejected, load_plain, parse_plain};
pub use set::IndicatorSet;
