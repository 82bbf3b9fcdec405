//! HPACK header blocks, decoded by ours and by `loona-hpack`: no panic, and every block both
//! accept decodes to the same fields (we refuse some size updates it takes; see the module).
#![no_main]
use libfuzzer_sys::fuzz_target;
use zdn_agent::hpack::{self, HpackError};

fuzz_target!(|block: &[u8]| {
    let mut ours = Vec::new();
    let ours = hpack::decode_block(block, |n, v| ours.push((n.to_vec(), v.to_vec()))).map(|()| ours);
    let theirs = loona_hpack::Decoder::new().decode(block);
    match (ours, theirs) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(_), Err(_)) | (Err(HpackError::SizeUpdate), Ok(_)) => {}
        (a, b) => panic!("ours {a:?}, loona-hpack {b:?}"),
    }
});
