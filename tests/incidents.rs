//! Incidents end to end, over real mTLS on loopback: an institution that sees an open
//! incident's indicator after the first two left the window joins it — an `escalated` event on
//! `WatchCorrelations`, three institutions on the board, in the CLI and in the exports — and a
//! participant analyst who walks every answer (gRPC through `zdn`, HTTP/JSON, the console's
//! pages, the exports) finds no name, time or count of another institution.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use zdn_agent::sighting::Sighting;
use zdn_indicators::{Kind, Via};
use zdn_integration_tests::console_client::{curl, signed_in};
use zdn_integration_tests::{CERT, Network};
use zdn_proto::v1;
use zdn_transport::Role;

const INDICATOR: &str = "late.evil.example";
const HOUR: i64 = 3_600_000;
/// ziekenhuis-zuid's sighting count: a number no other answer holds, to search for.
const ZUID_COUNT: u64 = 7777;

fn sighting(id: &str, at: i64, count: u64) -> Sighting {
    Sighting {
        id: id.into(),
        indicator: INDICATOR.into(),
        indicator_id: String::new(),
        kind: Kind::Domain,
        via: Via::DnsQuery,
        observed: INDICATOR.into(),
        first_seen_unix_ms: at,
        last_seen_unix_ms: at,
        count,
        src: format!("h-{id}"),
        dst_ip: String::new(),
        dst_port: 53,
        proto: "udp".into(),
        resolved_name: String::new(),
        retro: false,
        host: IpAddr::V4(Ipv4Addr::LOCALHOST),
    }
}

/// umc-noord and ziekenhuis-zuid two days ago (an incident), ggz-oost an hour ago: outside
/// the window of both. Returns zuid's packet time.
async fn three_institutions(net: &Network) -> i64 {
    let now = zdn_timestamps::now_ms();
    let zuid_at = now - 49 * HOUR + 17_123;
    let send = async |participant: &str, s: Sighting| {
        net.send(&net.issue(participant, Role::Agent, "gw"), &[s]).await.unwrap();
    };
    send("umc-noord", sighting("noord-1", now - 50 * HOUR, 1)).await;
    send("ziekenhuis-zuid", sighting("zuid-1", zuid_at, ZUID_COUNT)).await;
    send("ggz-oost", sighting("oost-1", now - HOUR, 2)).await;
    zuid_at
}

#[tokio::test]
async fn a_latecomer_after_the_window_joins_the_incident_everywhere() {
    let net = Network::start().await.unwrap();
    let analyst = net.issue(CERT, Role::Analyst, "analyst");
    let mut events = net.watch(&analyst).await.unwrap();
    three_institutions(&net).await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let event =
            tokio::time::timeout(Duration::from_secs(10), events.message()).await.unwrap().unwrap().unwrap();
        seen.push((event.change, event.joined, event.correlation.unwrap().participant_count));
    }
    use v1::correlation_event::Change;
    assert_eq!(
        seen,
        [
            (Change::Opened as i32, vec!["umc-noord".to_owned(), "ziekenhuis-zuid".to_owned()], 2),
            (Change::Escalated as i32, vec!["ggz-oost".to_owned()], 3)
        ]
    );
    // The CLI, the board and the exports tell the same story.
    let listed = net.zdn_json(&analyst, &["correlations"]).await.unwrap();
    assert_eq!(listed[0]["participants"], serde_json::json!(["umc-noord", "ziekenhuis-zuid", "ggz-oost"]));
    assert_eq!((listed[0]["wave"].as_u64(), listed[0]["status"].as_str()), (Some(1), Some("open")));
    let admin = net.issue(CERT, Role::Admin, "root");
    let jars = tempfile::tempdir().unwrap();
    let jar = signed_in(&net, &admin, jars.path(), CERT, "Ann").await;
    let board = curl(&net, &jar, None, "/", &[]).await.body;
    let row = board.split("data-key=\"late.evil.example#1\"").nth(1).expect("the incident on the board");
    let row = row.split("</tr>").next().unwrap();
    assert!(row.contains("umc-noord, ziekenhuis-zuid, ggz-oost"), "{row}");
    // A campaign page asked for what does not exist, or without a name, says so.
    let unknown = curl(&net, &jar, None, "/campaign?name=no-such-campaign", &[]).await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert!(unknown.body.contains("no incident of the campaign"), "{}", unknown.body);
    assert_eq!(curl(&net, &jar, None, "/campaign", &[]).await.status, 400);
    let csv = net.zdn(Some(&analyst), &["export", "csv", "--indicator", INDICATOR]).await.unwrap();
    for p in ["umc-noord", "ziekenhuis-zuid", "ggz-oost"] {
        assert!(csv.contains(p), "{p} missing from the CSV export: {csv}");
    }
    let stix: serde_json::Value = serde_json::from_str(
        &net.zdn(Some(&analyst), &["export", "stix", "--indicator", INDICATOR]).await.unwrap(),
    )
    .unwrap();
    let sightings = stix["objects"].as_array().unwrap().iter().filter(|o| o["type"] == "sighting").count();
    assert_eq!(sightings, 3, "one STIX sighting per institution's sighting");
}

#[tokio::test]
async fn a_participant_analyst_finds_no_trace_of_other_institutions() {
    let net = Network::start().await.unwrap();
    let zuid_at = three_institutions(&net).await;
    let me = net.issue("ggz-oost", Role::Analyst, "soc");
    // What must not appear anywhere: the others' names, zuid's packet time and count.
    let secrets = [
        "umc-noord".to_owned(),
        "ziekenhuis-zuid".to_owned(),
        zdn_timestamps::format_unix_ms(zuid_at),
        ZUID_COUNT.to_string(),
        (ZUID_COUNT + 3).to_string(), // the total over the three
    ];
    let check = |what: &str, text: &str| {
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "{what} shows {secret:?} to ggz-oost:\n{text}");
        }
    };
    for args in [
        &["correlations"][..],
        &["correlations", "--campaigns"],
        &["indicator", INDICATOR],
        &["sightings"],
        &["top"],
        &["hosts"],
        &["fleet"],
        &["export", "csv"],
        &["export", "stix"],
        &["export", "misp"],
    ] {
        // `--format json` asks for JSON answers; the CSV export is a document of its own kind.
        let format: &[&str] = if args == ["export", "csv"] { &[] } else { &["--format", "json"] };
        let text = net.zdn(Some(&me), &[format, args].concat()).await.unwrap();
        check(&format!("zdn {}", args.join(" ")), &text);
    }
    let detail = net.zdn_json(&me, &["correlations"]).await.unwrap();
    assert_eq!(detail[0]["participants"], 3, "how many joined is what it may know");

    let admin = net.issue(CERT, Role::Admin, "root");
    let jars = tempfile::tempdir().unwrap();
    let jar = signed_in(&net, &admin, jars.path(), "ggz-oost", "Olga").await;
    for path in [
        "/",
        "/indicator?value=late.evil.example",
        "/sightings",
        "/fleet",
        "/exports",
        "/api/v1/correlations",
        "/api/v1/correlations?campaigns=true",
        "/api/v1/indicator?value=late.evil.example",
        "/api/v1/sightings",
        "/api/v1/top",
        "/api/v1/hosts",
        "/api/v1/fleet",
        "/api/v1/export?format=csv",
        "/api/v1/export?format=stix",
        "/api/v1/export?format=misp",
    ] {
        let answer = curl(&net, &jar, None, path, &[]).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        check(path, &answer.body);
    }
}
