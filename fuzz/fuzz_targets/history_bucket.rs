//! Destination-history buckets from arbitrary bytes (a torn or damaged file on disk): a bad
//! file is an error, and whatever passes the checks reads every entry without panicking.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(sealed) = zdn_destination_history::bucket::Sealed::read(data) {
        for (position, _) in sealed.keys().take(256) {
            let _ = sealed.entry(position);
        }
    }
});
