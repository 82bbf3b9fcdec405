//! Two collector instances on one PostgreSQL database answer like one: agents of different
//! participants report to different instances, and either instance shows the same
//! correlations, sightings and fleet.
//!
//! Needs `ZDN_TEST_POSTGRES` (see `zdn_scratch_postgres`); skips loudly without it,
//! fails without it under `ZDN_REQUIRE_POSTGRES=1`.

use serde_json::json;
use zdn_integration_tests::{CERT, Network, site};
use zdn_scratch_postgres::ScratchDatabase;
use zdn_transport::Role;

#[tokio::test]
async fn two_instances_on_one_postgres_give_the_answers_of_one() {
    let Some(db) = ScratchDatabase::create("scale_out") else { return };
    let net = Network::start_on(&db.url(), false).await.unwrap();
    let (second, second_url) = net.another_instance(&db.url()).await.unwrap();

    // A watcher on the second instance; it must hear correlations opened through the first.
    let analyst = net.issue(CERT, Role::Analyst, "analyst");
    let watcher = {
        let (url, id) = (second_url.clone(), analyst.clone());
        tokio::spawn(async move {
            let argv =
                ["zdn", "--collector", &url, "--identity", id.to_str().unwrap(), "watch", "--count", "2"];
            let cli =
                <zdn_client::Cli as clap::Parser>::try_parse_from(argv.iter().chain(&["--format", "json"]))
                    .unwrap();
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
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }

    // Two sites report to the second instance, then umc-noord to the first: its batch opens
    // both correlations, through the first instance.
    let mut delivered = 0;
    for (participant, url) in
        [("ziekenhuis-zuid", &second_url), ("ggz-oost", &second_url), ("umc-noord", &net.url)]
    {
        let bundle = net.issue(participant, Role::Agent, "gw-1");
        let sightings = net.sightings_of(&site(participant)).unwrap();
        let delivery = net.send_to(url, &bundle, &sightings).await.unwrap();
        assert_eq!(delivery.stored, sightings.len() as u64);
        delivered += sightings.len();
    }

    let heard = tokio::time::timeout(std::time::Duration::from_secs(20), watcher).await.unwrap().unwrap();
    // JSON lines: one event per line, each with its indicator.
    let mut heard: Vec<String> = heard
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["indicator"].to_string())
        .collect();
    heard.sort();
    assert_eq!(heard.len(), 2, "both openings reached the other instance's watcher: {heard:?}");
    assert_ne!(heard[0], heard[1], "each once: {heard:?}");
    let id = analyst.as_path();
    let ask = async |url: &str, args: &[&str]| {
        let mut args = args.to_vec();
        args.extend(["--format", "json"]);
        let out = net.zdn_at(url, Some(id), &args).await.unwrap();
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    let first = ask(&net.url, &["correlations"]).await;
    assert_eq!(first, ask(&second_url, &["correlations"]).await);
    let mut opened: Vec<(String, serde_json::Value)> = first
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            // Members are in the order they joined, which here depends on which instance
            // committed first: compare them as sets.
            let mut names: Vec<String> = c["participants"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap().to_owned())
                .collect();
            names.sort();
            (c["indicator"].as_str().unwrap().to_owned(), json!(names))
        })
        .collect();
    opened.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        opened,
        [
            ("203.0.113.66".to_owned(), json!(["ggz-oost", "umc-noord"])),
            ("updates.evil-cdn.example".to_owned(), json!(["umc-noord", "ziekenhuis-zuid"])),
        ]
    );
    let sightings = ask(&net.url, &["sightings"]).await;
    assert_eq!(sightings, ask(&second_url, &["sightings"]).await);
    assert_eq!(sightings.as_array().unwrap().len(), delivered);
    second.stop().await.unwrap();
}
