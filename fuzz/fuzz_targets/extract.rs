//! The extractors over TCP segments of one flow: stream reassembly, HTTP, TLS, DNS over TCP.
#![no_main]
use libfuzzer_sys::fuzz_target;
use zdn_agent::decode::{Decoded, Transport};
use zdn_agent::extract::Extractor;

fuzz_target!(|data: &[u8]| {
    let mut extractor = Extractor::default();
    // Segments separated by 0xfe; the byte before each picks the port (TLS, HTTP, DNS).
    let mut seq = 1u32;
    for segment in data.split(|&b| b == 0xfe) {
        let Some((&selector, payload)) = segment.split_first() else { continue };
        let dst_port = [443, 80, 53][usize::from(selector) % 3];
        let packet = Decoded {
            src: "10.0.0.1".parse().unwrap(),
            dst: "192.0.2.1".parse().unwrap(),
            transport: Transport::Tcp { src_port: 40000, dst_port, seq, flags: 0x18, payload },
        };
        extractor.extract(&packet, 0, |_| {});
        seq = seq.wrapping_add(payload.len() as u32);
    }
});
