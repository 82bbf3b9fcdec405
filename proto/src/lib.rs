//! The `zdn.v1` gRPC contract, generated from `proto/zdn/v1/*.proto` at build time.
//!
//! - [`v1`]: messages, service clients and servers (tonic/prost).
//! - [`DESCRIPTOR_SET`]: the encoded file descriptors, for gRPC server reflection.
//! - `convert`: conversions between the wire enums and the shared indicator model
//!   ([`zdn_indicators::Kind`], [`zdn_indicators::Via`]), so neither side hand-maps them.
//! - [`hunt`]: what an analyst's retro-hunt request's signature covers; signing and checking it.
//! - [`limits`]: the size limits of a sighting, and how the agent fits what it reports into them.
//! - [`RETRY_AFTER`]: the one piece of the contract that lives in metadata, not in messages.

#![forbid(unsafe_code)]

mod convert;
pub mod hunt;
pub mod limits;

pub use convert::{UnknownEnum, indicator_from_wire, indicator_to_wire, kind_from_wire, via_from_wire};

/// Generated code for package `zdn.v1`.
pub mod v1 {
    #![allow(clippy::doc_lazy_continuation, clippy::large_enum_variant)]
    tonic::include_proto!("zdn.v1");
}

/// Encoded `FileDescriptorSet` of every `zdn.v1` file, for `tonic-reflection`.
pub const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/zdn_v1_descriptor.bin"));

/// The metadata key of a refusal (`RESOURCE_EXHAUSTED`, a batch over the agent's ingest rate)
/// that says when to try again, in milliseconds. The collector writes it, the agent obeys it.
pub const RETRY_AFTER: &str = "retry-after-ms";
