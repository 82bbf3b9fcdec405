//! IP fragment reassembly from arbitrary fragment sequences: bounded, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use zdn_agent::decode::{Decoded, Transport};
use zdn_agent::defrag::Defragmenter;

fuzz_target!(|data: &[u8]| {
    let mut defrag = Defragmenter::default();
    // Each fragment: id (1 byte), offset (2 bytes, in bytes), more (1 bit), then its payload up
    // to the next 0xfd.
    for (i, piece) in data.split(|&b| b == 0xfd).enumerate() {
        let [id, off_hi, off_lo, flags, payload @ ..] = piece else { continue };
        let packet = Decoded {
            src: "10.0.0.1".parse().unwrap(),
            dst: "192.0.2.1".parse().unwrap(),
            transport: Transport::Fragment {
                proto: 17,
                id: u32::from(*id),
                offset: u16::from_be_bytes([*off_hi, *off_lo]) & !7,
                more: flags & 1 == 1,
                payload,
            },
        };
        if let Some(whole) = defrag.add(&packet, i as i64) {
            assert!(whole.payload.len() <= 65_535);
            let _ = whole.decoded();
        }
    }
});
