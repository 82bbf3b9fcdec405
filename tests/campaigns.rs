//! Campaign-level correlation through the real API: the indicator source names the family
//! (a trail file's name), the collector correlates institutions that saw *any* indicator of it,
//! and a host that hit several of its indicators is listed as likely compromised — to a
//! participant's analyst only its own.

use serde_json::Value;
use zdn_integration_tests::{CERT, Network};
use zdn_sample_traffic::DEMO_INDICATORS;
use zdn_transport::Role;

#[tokio::test]
async fn a_family_correlates_and_its_repeat_hosts_are_flagged() {
    let trails = tempfile::tempdir().unwrap();
    std::fs::write(trails.path().join("evilcorp.txt"), DEMO_INDICATORS).unwrap();
    let dir = trails.path().to_owned();
    let net = Network::start_configured("sqlite", false, |c| c.indicators = vec![dir]).await.unwrap();
    net.run_demo_agents().await.unwrap();
    let analyst = net.issue(CERT, Role::Analyst, "ann");

    let campaigns = net.zdn_json(&analyst, &["correlations", "--campaigns"]).await.unwrap();
    let campaigns = campaigns.as_array().unwrap();
    assert_eq!(campaigns.len(), 1, "{campaigns:?}");
    assert_eq!(
        (campaigns[0]["indicator"].as_str(), campaigns[0]["scope"].as_str()),
        (Some("evilcorp"), Some("campaign"))
    );
    assert_eq!(campaigns[0]["participant_count"], 3, "every demo site saw some indicator of the family");

    let of_family = net.zdn_json(&analyst, &["correlations", "--campaign", "evilcorp"]).await.unwrap();
    let all = net.zdn_json(&analyst, &["correlations"]).await.unwrap();
    assert_eq!(of_family, all, "every indicator of the demo belongs to the family");
    assert!(all.as_array().unwrap().iter().all(|c| c["campaign"] == "evilcorp"));

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
    assert_eq!(seen[0]["participants"], 3);
    let own = net.zdn_json(&theirs, &["hosts"]).await.unwrap();
    assert!(own.as_array().unwrap().iter().all(|h| h["participant"] == participant.as_str()));
    let other = if participant == "ggz-oost" { "umc-noord" } else { "ggz-oost" };
    assert!(net.zdn(Some(&theirs), &["hosts", "--participant", other]).await.is_err());
}
