//! TAXII 2.1, both ways. (On the console port, TAXII clients prove who they are per request:
//! `crate::console::client_credentials`.)
//!
//! | module | job |
//! | --- | --- |
//! | [`source`] | a TAXII collection as an indicator source: poll with `added_after`, follow `next`, keep a STIX bundle on disk |
//! | [`poll`] | each source on its interval; the indicators published again when a bundle changed |
//! | [`api`] | the read-only API root `/taxii2/zdn/`: the published indicators and the caller's view of the sightings |

pub mod api;
pub mod poll;
pub mod source;
