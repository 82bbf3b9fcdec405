//! DNS question names from arbitrary messages.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = zdn_agent::dns::for_each_query_name(data, |name| assert!(name.len() <= zdn_agent::dns::MAX_NAME));
});
