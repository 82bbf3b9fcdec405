//! pcap and pcapng files with arbitrary content.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = zdn_agent::capture::read_bytes("fuzz", data, |_| {});
});
