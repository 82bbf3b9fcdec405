//! TCP segments of one client through reassembly and extraction (TLS, HTTP, DNS/TCP).
//! The body is `zdn_dissect::fuzz`, which `cargo test` also runs (bounded) in
//! `dissect/tests/bounded_fuzz.rs`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    zdn_dissect::fuzz::tcp_stream(data);
});
