//! # zdn-collector
//!
//! The CERT's side of the ZDN sensor network: it authenticates agents by certificate, stores
//! their sightings, correlates them across institutions and answers analysts.
//!
//! ```text
//! agents ──mTLS/gRPC──▶ server (TLS listener, Peer identity)
//!                         ├─ service::sighting  Report ──▶ store.ingest ──▶ correlation ──▶ events
//!                         ├─ service::fleet     Heartbeat ─▶ store (agents)
//!                         ├─ service::indicator Sync ◀──── service::publishing (sources, warninglists, imports)
//!                         └─ service::analyst   queries, WatchCorrelations ◀── events
//! analysts (`zdn`) ──mTLS/gRPC──┘
//! browsers ──HTTPS (own port)──▶ console ──▶ service::analyst (in-process, session identity)
//! ```
//!
//! | module | job |
//! | --- | --- |
//! | [`config`] | `collector.toml`, defaults and checks |
//! | [`pki`] | a small CA: `pki init`, `issue`, `revoke` (its CRL), `list` (rcgen) |
//! | [`server`] | start/stop: store, listener, services, health, reflection; SIGHUP reloads |
//! | [`readiness`] | `Type=notify`: start-up status and `READY=1` to systemd |
//! | [`tls`] | the collector's credentials and revocation lists, checked and reloadable |
//! | [`access`] | roles: who may call what, and the redacted view of participant analysts |
//! | [`service`] | one file per gRPC service |
//! | [`retention`] | how long each data class is kept; the purge job |
//! | [`store`] | SQLite or PostgreSQL: sightings, per-indicator aggregates, incidents, agents, audit |
//! | [`correlation`] | the incident semantics: waves, joins, closing, clock bounds (pure) |
//! | [`sweep`] | closes incidents that went quiet, every minute |
//! | [`alerts`] | correlation events to a signed webhook and syslog |
//! | [`export`] | sightings as STIX 2.1, MISP sightings, CSV (the rows of `zdn-answers`) |
//! | [`http`] | the analyst API as HTTP/JSON (+ OpenAPI, server-sent events) on the gRPC port |
//! | [`console`] | the analysts' web console: sessions, pages, the live board |
//! | [`shutdown`] | the graceful stop every long-lived task waits on |

#![forbid(unsafe_code)]

pub mod access;
pub mod alerts;
pub mod config;
pub mod console;
pub mod correlation;
pub mod export;
pub mod http;
pub mod metrics;
pub mod pki;
pub mod probe;
pub mod readiness;
pub mod retention;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod store;
pub mod sweep;
pub mod taxii;
pub mod tls;
