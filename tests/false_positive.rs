//! The false-positive loop: a CERT analyst marks an indicator, the collector withdraws it from
//! the published set at once, agents that sync no longer carry it, its correlation is closed
//! as a false positive (watchers are told), and later sightings never reopen it.

use serde_json::Value;
use std::time::Duration;
use zdn_agent::sync::{Synced, sync};
use zdn_indicators::Kind;
use zdn_indicators::signing::{Publisher, parse_public_key};
use zdn_integration_tests::{CERT, Network, site};
use zdn_sample_traffic::DEMO_INDICATORS;
use zdn_transport::{Bundle, Role};

const FP: &str = "updates.evil-cdn.example";

async fn synced(net: &Network, agent: &std::path::Path, installed: &std::path::Path) -> (u64, Vec<String>) {
    let pinned = Publisher::load(&net.pki.join("publish.key")).unwrap().public_hex();
    let channel =
        zdn_transport::client::connect(&net.url, Some(&Bundle::load(agent).unwrap())).await.unwrap();
    let pinned = parse_public_key(&pinned).unwrap();
    match sync(channel, &pinned, installed, false, Duration::from_secs(10)).await.unwrap() {
        Synced::Installed { version, set } => {
            let mut values: Vec<String> = set.iter().map(|m| m.value().into_owned()).collect();
            values.sort();
            (version, values)
        }
        Synced::Current => panic!("expected a new version"),
    }
}

fn by_indicator(rows: &Value, indicator: &str) -> Value {
    rows.as_array().unwrap().iter().find(|c| c["indicator"] == indicator).cloned().unwrap_or(Value::Null)
}

#[tokio::test]
async fn a_false_positive_is_withdrawn_closed_and_stays_closed() {
    let list = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(list.path(), DEMO_INDICATORS).unwrap();
    let net = Network::start_configured("sqlite", false, |c| c.indicators = vec![list.path().to_owned()])
        .await
        .unwrap();
    let agent = net.issue("umc-noord", Role::Agent, "gw-1");
    let installed = net.dir.path().join("installed.zdn");
    let (v1, before) = synced(&net, &agent, &installed).await;
    assert!(before.iter().any(|v| v == FP), "{before:?}");

    net.run_demo_agents().await.unwrap();
    let analyst = net.issue(CERT, Role::Analyst, "ann");
    let open = net.zdn_json(&analyst, &["correlations"]).await.unwrap();
    assert_eq!(by_indicator(&open, FP)["status"], "open");

    // A participant analyst may not withdraw indicators for everyone; the attempt is audited.
    let umc = net.issue("umc-noord", Role::Analyst, "uma");
    let refused = net.zdn(Some(&umc), &["indicators", "false-positive", FP, "--reason", "ours"]).await;
    assert!(format!("{:#}", refused.unwrap_err()).contains("only CERT analysts"));

    // A watcher hears the closing.
    let watcher = {
        let (url, analyst) = (net.url.clone(), analyst.clone());
        tokio::spawn(async move {
            let argv = [
                "zdn",
                "--collector",
                &url,
                "--identity",
                analyst.to_str().unwrap(),
                "watch",
                "--count",
                "1",
                "--format",
                "json",
            ];
            let cli = <zdn_client::Cli as clap::Parser>::try_parse_from(argv).unwrap();
            let mut out = Vec::new();
            zdn_client::run(cli, &mut out).await.unwrap();
            String::from_utf8(out).unwrap()
        })
    };
    let admin = net.issue(CERT, Role::Admin, "root");
    for _ in 0..200 {
        let log = net.zdn_json(&admin, &["audit"]).await.unwrap();
        if log.as_array().unwrap().iter().any(|e| e["action"] == "watch_correlations") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    let marked = net
        .zdn_json(&analyst, &["indicators", "false-positive", FP, "--reason", "CDN shared by a vendor"])
        .await
        .unwrap();
    assert_eq!(marked[0]["correlations_closed"], 1);
    let v2 = marked[0]["published_version"].as_u64().unwrap();
    assert!(v2 > v1);
    let printed = tokio::time::timeout(Duration::from_secs(10), watcher).await.unwrap().unwrap();
    // JSON lines: one event per line.
    let heard: Vec<Value> = printed.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(
        (heard[0]["change"].as_str(), heard[0]["indicator"].as_str()),
        (Some("closed_false_positive"), Some(FP))
    );

    let after = net.zdn_json(&analyst, &["correlations"]).await.unwrap();
    assert_eq!(by_indicator(&after, FP)["status"], "false_positive");
    assert_eq!(by_indicator(&after, "203.0.113.66")["status"], "open", "other correlations stay open");

    // The agent's next sync installs the set without it.
    let (version, values) = synced(&net, &agent, &installed).await;
    assert_eq!(version, v2);
    assert!(!values.iter().any(|v| v == FP), "{values:?}");
    assert_eq!(values.len(), before.len() - 1);

    // An agent still on the old set reports it from a third institution: stored, but the
    // correlation neither reopens nor escalates.
    let late = net.issue("ggz-oost", Role::Agent, "gw-2");
    let mut sightings: Vec<_> =
        net.sightings_of(&site("umc-noord")).unwrap().into_iter().filter(|s| s.indicator == FP).collect();
    for s in &mut sightings {
        s.id = format!("late-{}", s.id);
    }
    assert!(!sightings.is_empty() && sightings[0].kind == Kind::Domain);
    assert_eq!(net.send(&late, &sightings).await.unwrap().stored, sightings.len() as u64);
    let still = by_indicator(&net.zdn_json(&analyst, &["correlations"]).await.unwrap(), FP);
    assert_eq!(
        (still["status"].as_str(), still["participant_count"].as_u64()),
        (Some("false_positive"), Some(2))
    );

    let log = net.zdn_json(&admin, &["audit"]).await.unwrap();
    let marks: Vec<(&str, &str)> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().ends_with("mark_false_positive"))
        .map(|e| (e["name"].as_str().unwrap(), e["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        marks,
        [("ann", "mark_false_positive"), ("uma", "refused:mark_false_positive")],
        "the mark and the refused attempt"
    );
}
