//! TLS ClientHellos from arbitrary stream prefixes and handshake messages.
//! The body is `zdn_dissect::fuzz`, which `cargo test` also runs (bounded) in
//! `dissect/tests/bounded_fuzz.rs`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    zdn_dissect::fuzz::tls(data);
});
