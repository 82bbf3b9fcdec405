//! STIX bundles, MISP events and warninglists from arbitrary JSON; a warninglist that loads is
//! then applied to a few indicators of every kind (its lookup structures built from the input).
#![no_main]
use libfuzzer_sys::fuzz_target;

const PROBES: &str = "evil.example\nsub.evil.example\n192.0.2.1\n192.0.2.0/24\n192.0.2.1:443\n\
2001:db8::1\n[2001:db8::1]:443\nevil.example/x\n192.0.2.1/x\n";

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let _ = zdn_indicators::formats::stix::parse("fuzz", &doc, 0);
    let _ = zdn_indicators::formats::misp::parse_export("fuzz", &doc);
    let mut allow = zdn_indicators::Allowlist::default();
    if allow.add_warninglist("fuzz", &doc).is_ok() {
        let mut sources = vec![zdn_indicators::parse_plain("probes", PROBES).indicators];
        let _ = allow.apply(&mut sources);
    }
});
