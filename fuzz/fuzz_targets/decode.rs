//! Link, IP and transport decoding, then inspection, of arbitrary frames.
#![no_main]
use libfuzzer_sys::fuzz_target;
use zdn_agent::decode::{LinkType, decode};
use zdn_agent::inspect::{HomeNet, Inspector};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, frame)) = data.split_first() else { return };
    let links = [
        LinkType::Ethernet,
        LinkType::LinuxSll,
        LinkType::LinuxSll2,
        LinkType::RawIp,
        LinkType::Loopback,
        LinkType::Ppp,
        LinkType::CiscoHdlc,
    ];
    let link = links[usize::from(selector) % links.len()];
    if let Ok(packet) = decode(link, frame) {
        let set = zdn_indicators::IndicatorSet::new(
            zdn_indicators::parse_plain("f", "example.com\n10.0.0.0/8\n").indicators,
        );
        Inspector::default().inspect(&set, &HomeNet::default(), &packet, 0, |_| {});
    }
});
