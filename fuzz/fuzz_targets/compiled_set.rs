//! Compiled sets from arbitrary bytes: damaged files must be errors, and whatever decodes must
//! answer lookups without panicking.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((set, _)) = zdn_indicators::set::compiled::decode(data) {
        for m in set.iter().take(64) {
            let _ = (m.value(), m.id(), m.meta());
        }
        let _ = set.match_domain("a.b.example.com");
        let _ = set.match_ip("10.1.2.3".parse().unwrap());
    }
});
