//! Normalisation and the text loaders (plain, CSV, Zeek Intel) on arbitrary text.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(n) = zdn_indicators::normalise(text) {
        // A canonical value is its own canonical form, of the same kind. A URL's value has no
        // scheme and means `http://` + value: read bare, `192.0.2.1/8` would be a network.
        let again = match n.kind {
            zdn_indicators::Kind::Url if !n.value.starts_with('/') => format!("http://{}", n.value),
            _ => n.value.clone(),
        };
        let again = zdn_indicators::normalise(&again).map(|m| (m.kind, m.value));
        assert_eq!(again, Ok((n.kind, n.value)));
    }
    let _ = zdn_indicators::parse_plain("fuzz", text);
    let _ = zdn_indicators::formats::csv::parse("fuzz", text);
    let _ = zdn_indicators::formats::zeek::parse("fuzz", text);
});
