//! STIX bundles, MISP events and warninglists from arbitrary JSON.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let _ = zdn_indicators::formats::stix::parse("fuzz", &doc, 0);
    let _ = zdn_indicators::formats::misp::parse_export("fuzz", &doc);
    let _ = zdn_indicators::Allowlist::default().add_warninglist("fuzz", &doc);
});
