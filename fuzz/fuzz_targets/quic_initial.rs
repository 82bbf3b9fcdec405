//! QUIC datagrams: long headers, Initial decryption attempts, CRYPTO reassembly state.
#![no_main]
use libfuzzer_sys::fuzz_target;
use zdn_agent::quic::QuicTable;
use zdn_agent::stream::FlowKey;

fuzz_target!(|data: &[u8]| {
    let key = FlowKey {
        src: "10.0.0.1".parse().unwrap(),
        dst: "192.0.2.1".parse().unwrap(),
        src_port: 50000,
        dst_port: 443,
    };
    let mut table = QuicTable::default();
    // The input split into datagrams of one client: state carries across them.
    for datagram in data.split(|&b| b == 0xff) {
        let _ = table.offer(key, datagram, |hello| assert!(hello.len() <= zdn_agent::quic::MAX_CRYPTO));
    }
});
