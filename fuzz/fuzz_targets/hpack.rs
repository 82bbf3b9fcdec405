//! HPACK header blocks, ours against loona-hpack as the oracle.
//! The body is `zdn_dissect::fuzz`, which `cargo test` also runs (bounded) in
//! `dissect/tests/bounded_fuzz.rs`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = zdn_dissect::fuzz::hpack(data, |block| loona_hpack::Decoder::new().decode(block).ok());
});
