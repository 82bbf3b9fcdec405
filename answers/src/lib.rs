//! # zdn-answers
//!
//! What the collector answers analysts, as rows: the `zdn` CLI prints them, the HTTP API
//! returns them, the console shows them and the CSV export writes them, so every channel shows
//! the same fields under the same names.
//!
//! | module | job |
//! | --- | --- |
//! | [`rows`] | each wire answer (`zdn.v1`) as ordered JSON objects |
//! | [`output`] | rows out: an aligned table for people, JSON and CSV for programs |
//!
//! It sits below the collector and the client, and links neither.

#![forbid(unsafe_code)]

pub mod output;
pub mod rows;

pub use rows::Row;
