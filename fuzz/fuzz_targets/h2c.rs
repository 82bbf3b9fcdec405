//! HTTP/2 cleartext streams: the frame walk and HPACK decoding of the first request.
#![no_main]
use libfuzzer_sys::fuzz_target;
use zdn_agent::h2c;

fuzz_target!(|data: &[u8]| {
    let _ = h2c::progress(data);
    // Behind a real preface, so the fuzzer spends its time on frames and HPACK.
    let stream = [h2c::PREFACE, data].concat();
    if let Ok(h2c::Progress::Complete { .. }) = h2c::progress(&stream) {
        let _ = h2c::first_request(&stream);
    }
});
