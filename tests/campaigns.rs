//! Campaign-level correlation through the real API: the indicator source names the family
//! (a trail file's name), the collector correlates institutions that saw *any* indicator of it,
//! and a host that hit several of its indicators is listed as likely compromised — to a
//! participant's analyst only its own.

use serde_json::Value;
use zdn_integration_tests::{CERT, Network, site};
use zdn_sample_traffic::DEMO_INDICATORS;
use zdn_transport::Role;

/// The IP:port of the demo, in a family of its own (the rest are `evilcorp`'s).
const OTHER: &str = "198.51.100.23:8443";

#[tokio::test]
async fn a_family_correlates_and_its_repeat_hosts_are_flagged() {
    let trails = tempfile::tempdir().unwrap();
    let evilcorp: String =
        DEMO_INDICATORS.lines().filter(|l| !l.starts_with(OTHER)).map(|l| format!("{l}\n")).collect();
    std::fs::write(trails.path().join("evilcorp.txt"), evilcorp).unwrap();
    std::fs::write(trails.path().join("otherfam.txt"), format!("{OTHER}\n")).unwrap();
    let dir = trails.path().to_owned();
    let net = Network::start_configured("sqlite", false, |c| c.indicators = vec![dir]).await.unwrap();
    net.run_demo_agents().await.unwrap();
    // ggz-oost sees the other family's indicator too: a correlation outside evilcorp.
    let mut other = net.sightings_of(&site("ziekenhuis-zuid")).unwrap();
    other.retain(|s| s.indicator == OTHER);
    other[0].id = "ggz-oost-other".into();
    net.send(&net.issue("ggz-oost", Role::Agent, "gw-1"), &other[..1]).await.unwrap();
    let analyst = net.issue(CERT, Role::Analyst, "ann");

    let campaigns = net.zdn_json(&analyst, &["correlations", "--campaigns"]).await.unwrap();
    let names: Vec<(&str, u64)> = campaigns
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["indicator"].as_str().unwrap(), c["participant_count"].as_u64().unwrap()))
        .collect();
    assert!(campaigns.as_array().unwrap().iter().all(|c| c["scope"] == "campaign"));
    // Every demo site saw some indicator of evilcorp; two saw the other family's.
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [("evilcorp", 3), ("otherfam", 2)], "{campaigns}");

    // The family filter keeps the family's incidents and drops the other's.
    let of_family = net.zdn_json(&analyst, &["correlations", "--campaign", "evilcorp"]).await.unwrap();
    let all = net.zdn_json(&analyst, &["correlations"]).await.unwrap();
    let (of_family, all) = (of_family.as_array().unwrap(), all.as_array().unwrap());
    assert_eq!((of_family.len(), all.len()), (2, 3), "{all:?}");
    assert!(of_family.iter().all(|c| c["campaign"] == "evilcorp"));
    let dropped: Vec<_> = all.iter().filter(|c| !of_family.contains(c)).collect();
    assert_eq!((dropped.len(), dropped[0]["indicator"].as_str()), (1, Some(OTHER)));

    let hosts = net.zdn_json(&analyst, &["hosts"]).await.unwrap();
    let hosts = hosts.as_array().unwrap();
    assert!(!hosts.is_empty());
    for h in hosts {
        assert!(h["indicators"].as_array().unwrap().len() >= 2, "{h}");
        assert_eq!(h["campaign"], "evilcorp");
    }
    // A participant's analyst: campaign counts without names, and only its own hosts.
    let participant = hosts[0]["participant"].as_str().unwrap().to_owned();
    let theirs = net.issue(&participant, Role::Analyst, "soc");
    let seen: Value = net.zdn_json(&theirs, &["correlations", "--campaigns"]).await.unwrap();
    let evilcorp = seen.as_array().unwrap().iter().find(|c| c["participants"] == 3);
    assert!(evilcorp.is_some_and(|c| c["indicator"] == "evilcorp"), "{seen}");
    let own = net.zdn_json(&theirs, &["hosts"]).await.unwrap();
    assert!(own.as_array().unwrap().iter().all(|h| h["participant"] == participant.as_str()));
    let other = if participant == "ggz-oost" { "umc-noord" } else { "ggz-oost" };
    assert!(net.zdn(Some(&theirs), &["hosts", "--participant", other]).await.is_err());
}
