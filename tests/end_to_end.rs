//! pcap → agent → collector → `zdn`: the foundation's promise, over real mTLS on loopback.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use zdn_integration_tests::{CERT, Network, site};
use zdn_transport::Role;

/// indicator → sorted participants, from `zdn correlations --format json`.
fn correlations(v: &Value) -> BTreeMap<String, Value> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|c| (c["indicator"].as_str().unwrap().to_owned(), c["participants"].clone()))
        .collect()
}

#[tokio::test]
async fn pcaps_become_correlations_with_the_right_participants() {
    let net = Network::start().await.unwrap();
    net.run_demo_agents().await.unwrap();
    let analyst = net.issue(CERT, Role::Analyst, "analyst");

    let found = correlations(&net.zdn_json(&analyst, &["correlations"]).await.unwrap());
    let expected = BTreeMap::from([
        ("203.0.113.66".to_owned(), json!(["umc-noord", "ggz-oost"])),
        ("updates.evil-cdn.example".to_owned(), json!(["umc-noord", "ziekenhuis-zuid"])),
    ]);
    assert_eq!(found, expected, "198.51.100.23:8443 was seen at one institution only");

    let all = net.zdn_json(&analyst, &["correlations"]).await.unwrap();
    let domain = all.as_array().unwrap().iter().find(|c| c["kind"] == "domain").unwrap();
    assert_eq!(domain["sightings"], 3, "two queries at umc-noord (aggregated) + one at ziekenhuis-zuid");
    // The demo's packet clock starts on an hour (two before now): 00:01:00 to 00:30:30 into it.
    let at = |field: &str| zdn_timestamps::parse_time_or_age(domain[field].as_str().unwrap(), 0).unwrap();
    assert!(domain["first_seen"].as_str().unwrap().ends_with(":01:00.000Z"), "{domain}");
    assert_eq!(at("last_seen") - at("first_seen"), 29 * 60_000 + 30_000);

    let sightings = net.zdn_json(&analyst, &["sightings"]).await.unwrap();
    let mut rows: Vec<(String, String, String)> = sightings
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["participant"].as_str().unwrap().into(),
                s["indicator"].as_str().unwrap().into(),
                s["via"].as_str().unwrap().into(),
            )
        })
        .collect();
    rows.sort();
    // umc-noord's host repeats both contacts within the window: the first hit is a sighting
    // sent at once, the repeats a second one at the window's end.
    assert_eq!(
        rows,
        [
            ("ggz-oost".into(), "203.0.113.66".into(), "ip_dst".into()),
            ("umc-noord".into(), "203.0.113.66".into(), "ip_dst".into()),
            ("umc-noord".into(), "203.0.113.66".into(), "ip_dst".into()),
            ("umc-noord".into(), "updates.evil-cdn.example".into(), "dns_query".into()),
            ("umc-noord".into(), "updates.evil-cdn.example".into(), "dns_query".into()),
            ("ziekenhuis-zuid".into(), "198.51.100.23:8443".into(), "ip_dst".into()),
            ("ziekenhuis-zuid".into(), "updates.evil-cdn.example".into(), "dns_query".into()),
        ]
    );
    for s in sightings.as_array().unwrap() {
        let src = s["src"].as_str().unwrap();
        assert!(src.starts_with("h-") && !src.contains("10."), "internal address leaked: {src}");
    }

    let table = net.zdn(Some(&analyst), &["correlations"]).await.unwrap();
    assert!(table.starts_with("INDICATOR") && table.contains("umc-noord,ziekenhuis-zuid"), "{table}");
    net.collector.stop().await.unwrap();
}

#[tokio::test]
async fn retried_batches_are_stored_once() {
    let net = Network::start().await.unwrap();
    let bundle = net.issue("umc-noord", Role::Agent, "gw-1");
    let sightings = net.sightings_of(&site("umc-noord")).unwrap();
    let first = net.send(&bundle, &sightings).await.unwrap();
    let again = net.send(&bundle, &sightings).await.unwrap();
    assert_eq!((first.stored, first.duplicates), (sightings.len() as u64, 0));
    assert_eq!((again.stored, again.duplicates), (0, sightings.len() as u64));
    let analyst = net.issue(CERT, Role::Analyst, "analyst");
    let stored = net.zdn_json(&analyst, &["sightings"]).await.unwrap();
    assert_eq!(stored.as_array().unwrap().len(), sightings.len());
}

#[tokio::test]
async fn one_participant_with_two_agents_is_not_a_correlation() {
    let net = Network::start().await.unwrap();
    let sightings = net.sightings_of(&site("umc-noord")).unwrap();
    let mut other = sightings.clone();
    for s in &mut other {
        s.id = format!("{}-b", s.id);
    }
    net.send(&net.issue("umc-noord", Role::Agent, "gw-1"), &sightings).await.unwrap();
    net.send(&net.issue("umc-noord", Role::Agent, "gw-2"), &other).await.unwrap();
    let analyst = net.issue(CERT, Role::Analyst, "analyst");
    assert_eq!(net.zdn_json(&analyst, &["correlations"]).await.unwrap(), json!([]));
    let agents: Vec<Value> =
        net.zdn_json(&analyst, &["sightings"]).await.unwrap().as_array().unwrap().clone();
    assert_eq!(agents.len(), sightings.len() * 2);
    assert!(agents.iter().all(|s| s["participant"] == "umc-noord"));
}

#[tokio::test]
async fn participant_analysts_see_counts_not_names() {
    let net = Network::start().await.unwrap();
    net.run_demo_agents().await.unwrap();
    let soc = net.issue("umc-noord", Role::Analyst, "soc");

    let list = net.zdn_json(&soc, &["correlations"]).await.unwrap();
    for c in list.as_array().unwrap() {
        assert_eq!(c["participants"], json!(2), "a count, not names: {c}");
    }
    let text = list.to_string();
    for other in ["ggz-oost", "ziekenhuis-zuid"] {
        assert!(!text.contains(other), "{other} leaked to umc-noord: {text}");
    }
    let own = net.zdn_json(&soc, &["sightings"]).await.unwrap();
    assert_eq!(own.as_array().unwrap().len(), 4, "two contacts, each a first hit and its repeats");
    assert!(own.as_array().unwrap().iter().all(|s| s["participant"] == "umc-noord"));
    let err = net.zdn(Some(&soc), &["sightings", "--participant", "ggz-oost"]).await.unwrap_err();
    assert_eq!(err.downcast_ref::<tonic::Status>().unwrap().code(), tonic::Code::PermissionDenied);
    let detail = net.zdn_json(&soc, &["indicator", "203.0.113.66"]).await.unwrap();
    let names: Vec<&str> =
        detail.as_array().unwrap().iter().map(|r| r["participant"].as_str().unwrap()).collect();
    assert_eq!(names, ["umc-noord"], "only its own timeline: no row, time or count of another institution");
}

#[tokio::test]
async fn fleet_shows_heartbeats_and_watch_streams_openings() {
    let net = Network::start().await.unwrap();
    let analyst = net.issue(CERT, Role::Analyst, "analyst");
    let mut events = net.watch(&analyst).await.unwrap();
    net.run_demo_agents().await.unwrap();
    let mut opened = Vec::new();
    for _ in 0..2 {
        let event = tokio::time::timeout(std::time::Duration::from_secs(10), events.message())
            .await
            .unwrap()
            .unwrap();
        let event = event.unwrap();
        assert_eq!(event.change, zdn_proto::v1::correlation_event::Change::Opened as i32);
        opened.push(event.correlation.unwrap().indicator);
    }
    opened.sort();
    assert_eq!(opened, ["203.0.113.66", "updates.evil-cdn.example"]);

    // `zdn watch` prints what arrives after it subscribed: new correlations are made until it
    // has printed one (bounded).
    let cli_watch = {
        let (url, analyst) = (net.url.clone(), analyst.clone());
        tokio::spawn(async move {
            let id = analyst.to_str().unwrap().to_owned();
            let argv =
                ["zdn", "--collector", &url, "--identity", &id, "--format", "json", "watch", "--count", "1"];
            let cli = <zdn_client::Cli as clap::Parser>::try_parse_from(argv).unwrap();
            let mut out = Vec::new();
            zdn_client::run(cli, &mut out).await.unwrap();
            String::from_utf8(out).unwrap()
        })
    };
    let (a, b) = (net.issue("umc-noord", Role::Agent, "gw-w"), net.issue("ggz-oost", Role::Agent, "gw-w"));
    let template = net.sightings_of(&site("ggz-oost")).unwrap();
    for round in 0..50 {
        if cli_watch.is_finished() {
            break;
        }
        let mut s = template.clone();
        s[0].indicator = format!("watch-{round}.example");
        s[0].id = format!("watch-a-{round}");
        net.send(&a, &s).await.unwrap();
        s[0].id = format!("watch-b-{round}");
        net.send(&b, &s).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let printed = tokio::time::timeout(std::time::Duration::from_secs(10), cli_watch).await.unwrap().unwrap();
    let event: serde_json::Value = serde_json::from_str(printed.trim_end()).expect("one JSON line");
    assert!(
        event["change"] == "opened" && event["indicator"].as_str().unwrap().starts_with("watch-"),
        "{printed}"
    );

    let bundle = net.issue("ggz-oost", Role::Agent, "gw-9");
    let channel =
        zdn_transport::client::connect(&net.url, Some(&zdn_transport::Bundle::load(&bundle).unwrap()))
            .await
            .unwrap();
    let beat = zdn_proto::v1::HeartbeatRequest {
        agent_version: "9.9.9".into(),
        packets_seen: 42,
        ..Default::default()
    };
    zdn_agent::heartbeat::send(channel, beat).await.unwrap();
    let fleet = net.zdn_json(&analyst, &["fleet"]).await.unwrap();
    let gw9 = fleet.as_array().unwrap().iter().find(|a| a["agent"] == "gw-9").expect("gw-9 in fleet");
    assert_eq!(
        (gw9["participant"].as_str(), gw9["packets"].as_u64(), gw9["status"].as_str()),
        (Some("ggz-oost"), Some(42), Some("ok"))
    );
}

#[tokio::test]
async fn insecure_dev_mode_serves_plain_http2() {
    let net = Network::start_with(true).await.unwrap();
    let sightings = net.sightings_of(&site("ggz-oost")).unwrap();
    let delivery = zdn_integration_tests::deliver(&net.url, None, &sightings, 10).await.unwrap();
    assert_eq!(delivery.stored, 1);
    let out = net.zdn(None, &["sightings", "--format", "json"]).await.unwrap();
    assert!(out.contains("\"participant\": \"insecure-dev\""), "{out}");
}

#[tokio::test]
async fn every_analyst_query_is_audited_and_only_admins_read_the_log() {
    let net = Network::start().await.unwrap();
    net.run_demo_agents().await.unwrap();
    let soc = net.issue("umc-noord", Role::Analyst, "soc");
    let admin = net.issue(CERT, Role::Admin, "root");
    net.zdn_json(&soc, &["sightings", "--indicator", "203.0.113.66"]).await.unwrap();
    net.zdn_json(&soc, &["correlations"]).await.unwrap();

    // An analyst may not read the log — the attempt is refused before anything is read, and
    // recorded.
    let err = net.zdn(Some(&soc), &["audit"]).await.unwrap_err();
    assert_eq!(err.downcast_ref::<tonic::Status>().unwrap().code(), tonic::Code::PermissionDenied);

    let log = net.zdn_json(&admin, &["audit"]).await.unwrap();
    let entries: Vec<(String, String, String)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().into(),
                format!("{}/{}", e["participant"].as_str().unwrap(), e["name"].as_str().unwrap()),
                e["detail"].as_str().unwrap().into(),
            )
        })
        .collect();
    // Newest first: the admin's own read, the analyst's refused attempt, its two queries.
    assert_eq!(entries[0].0, "list_audit");
    assert_eq!(entries[0].1, "z-cert/root");
    assert_eq!((entries[1].0.as_str(), entries[1].1.as_str()), ("refused:list_audit", "umc-noord/soc"));
    assert_eq!((entries[2].0.as_str(), entries[2].1.as_str()), ("list_correlations", "umc-noord/soc"));
    assert_eq!((entries[3].0.as_str(), entries[3].1.as_str()), ("list_sightings", "umc-noord/soc"));
    assert!(entries[3].2.contains("203.0.113.66"), "the query's arguments are kept: {}", entries[3].2);
    assert_eq!(entries.len(), 4, "{entries:?}");
}
