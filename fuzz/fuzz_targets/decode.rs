//! Link, IP and transport decoding, defragmentation and extraction of arbitrary frames.
//! The body is `zdn_dissect::fuzz`, which `cargo test` also runs (bounded) in
//! `dissect/tests/bounded_fuzz.rs`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut extractor = zdn_dissect::extract::Extractor::default();
    zdn_dissect::fuzz::frame(&mut extractor, data, 0);
});
