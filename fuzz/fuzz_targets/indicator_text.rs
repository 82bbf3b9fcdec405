//! Normalisation and the text loaders (plain, CSV, Zeek Intel) on arbitrary text.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(n) = zdn_indicators::normalise(text) {
        // A canonical value is its own canonical form.
        assert_eq!(zdn_indicators::normalise(&n.value).map(|m| m.value), Ok(n.value));
    }
    let _ = zdn_indicators::parse_plain("fuzz", text);
    let _ = zdn_indicators::formats::csv::parse("fuzz", text);
    let _ = zdn_indicators::formats::zeek::parse("fuzz", text);
});
