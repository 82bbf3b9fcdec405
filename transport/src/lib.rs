//! # zdn-transport
//!
//! Everything about how ZDN parts reach each other: TLS 1.3 with mutual authentication, and
//! the identity a certificate carries.
//!
//! | module | job |
//! | --- | --- |
//! | [`identity`] | [`Identity`] and [`Role`]: who a certificate says its holder is (SAN URI `zdn://participant/<id>/<role>`) |
//! | [`bundle`] | [`Bundle`]: a credential directory (`cert.pem`, `key.pem`, `ca.pem`) as `pki issue` writes it |
//! | [`revocation`] | revocation lists, each checked to be a CRL issued and signed by our CA (a wrong file fails closed) |
//! | [`server`] | the collector's listener: TLS handshakes off the accept loop, peer identity attached to every request |
//! | [`client`] | a tonic [`Channel`](tonic::transport::Channel) to the collector over mTLS |
//! | [`outbound`] | TLS towards services outside ZDN (webhooks, TAXII, MISP): system roots plus an operator's CA |
//!
//! Why our own rustls setup instead of tonic's `tls` feature: we need TLS 1.3 only, revocation
//! lists (rustls' `WebPkiClientVerifier` takes CRLs), and the identity parsed once per
//! connection rather than per request; tonic's wrapper exposes none of these.

#![forbid(unsafe_code)]

pub mod bundle;
pub mod client;
pub mod identity;
pub mod outbound;
pub mod revocation;
pub mod server;

pub use bundle::{Bundle, BundleError};
pub use identity::{Identity, IdentityError, Role};

use std::sync::Arc;

/// The one crypto provider every ZDN TLS endpoint uses (ring: pure Rust build, no cmake).
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// ALPN for gRPC over HTTP/2.
pub(crate) const ALPN_H2: &[u8] = b"h2";
