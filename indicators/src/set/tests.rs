use super::*;
use crate::formats::parse_plain;
use crate::model::Meta;

fn set(text: &str) -> IndicatorSet {
    IndicatorSet::new(parse_plain("test", text).indicators)
}

#[test]
fn matches_every_kind_and_nothing_else() {
    let s = set(
        "evil.example\n203.0.113.9\n10.0.0.0/8\n10.1.0.0/16\n198.51.100.1:8443\n[2001:db8::2]:443\n2001:db8::1\nevil.example/x.exe\nE7D705A3286E19EA42F587B344EE6865\n",
    );
    assert_eq!(s.len(), 9);
    assert_eq!(s.match_domain("evil.example").unwrap().value(), "evil.example");
    assert_eq!(s.match_domain("a.b.evil.example").unwrap().value(), "evil.example");
    assert!(s.match_domain("notevil.example").is_none());
    assert!(s.match_domain("example").is_none());
    assert_eq!(s.match_ip("203.0.113.9".parse().unwrap()).unwrap().value(), "203.0.113.9");
    assert_eq!(s.match_ip("::ffff:203.0.113.9".parse().unwrap()).unwrap().value(), "203.0.113.9");
    assert_eq!(s.match_ip("10.1.2.3".parse().unwrap()).unwrap().value(), "10.1.0.0/16");
    assert_eq!(s.match_ip("10.2.2.3".parse().unwrap()).unwrap().value(), "10.0.0.0/8");
    assert!(s.match_ip("203.0.113.10".parse().unwrap()).is_none());
    let v6 = s.match_ip("2001:db8::1".parse().unwrap()).unwrap();
    assert_eq!((v6.kind(), v6.value().as_ref()), (Kind::Ipv6, "2001:db8::1"));
    assert_eq!(s.match_ip_port("198.51.100.1".parse().unwrap(), 8443).unwrap().value(), "198.51.100.1:8443");
    assert!(s.match_ip_port("198.51.100.1".parse().unwrap(), 443).is_none());
    assert_eq!(s.match_ip_port("2001:db8::2".parse().unwrap(), 443).unwrap().value(), "[2001:db8::2]:443");
    assert!(s.match_text(Kind::Url, "evil.example/x.exe").is_some());
    assert!(s.match_text(Kind::Url, "evil.example/y.exe").is_none());
    assert!(s.match_text(Kind::Ja3, "e7d705a3286e19ea42f587b344ee6865").is_some());
    assert!(s.match_text(Kind::Domain, "evil.example").is_none());
}

#[test]
fn every_indicator_round_trips_with_its_metadata() {
    let mut inds =
        parse_plain("feed", "evil.example\n203.0.113.9\n198.51.100.1:8443\n10.0.0.0/8\n").indicators;
    inds[0].id = Some("misp-uuid".into());
    let mut meta = Meta::clone(&inds[0].meta);
    meta.event = "fam".into();
    meta.tags = vec!["a".into()];
    inds[0].meta = std::sync::Arc::new(meta);
    let s = IndicatorSet::new(inds.clone());
    let back: Vec<Indicator> = s.iter().map(|m| m.to_indicator()).collect();
    assert_eq!(back, inds);
    assert_eq!(s.metas.len(), 2, "three indicators share one metadata record");
}

#[test]
fn duplicates_keep_the_first_and_exact_only_domains_do_not_cover_subdomains() {
    let mut inds = parse_plain("a", "evil.example\n").indicators;
    inds.extend(parse_plain("b", "evil.example\nother.example\n").indicators);
    inds[2].exact_only = true;
    let s = IndicatorSet::new(inds);
    assert_eq!(s.len(), 2);
    assert_eq!(s.match_domain("www.evil.example").unwrap().meta().source, "a");
    assert!(s.match_domain("other.example").is_some());
    assert!(s.match_domain("www.other.example").is_none());
}
