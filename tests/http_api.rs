//! The analyst API over HTTP/JSON, asked with curl (a real, independent HTTPS client) on the
//! collector's port: same mutual TLS, same roles, same answers as `zdn --format json`, every
//! call audited, errors as JSON, correlations streamed as server-sent events.

use serde_json::{Value, json};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use zdn_integration_tests::{CERT, Network};
use zdn_transport::Role;

/// curl's stdout and the HTTP status, or curl's exit code when no answer came.
struct Answer {
    status: u16,
    body: Value,
}

fn curl_args(identity: Option<&Path>, ca: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> =
        ["--silent", "--show-error", "--max-time", "20", "--cacert"].map(String::from).to_vec();
    args.push(ca.display().to_string());
    if let Some(dir) = identity {
        args.extend(["--cert".into(), dir.join("cert.pem").display().to_string()]);
        args.extend(["--key".into(), dir.join("key.pem").display().to_string()]);
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

async fn get(
    net: &Network,
    identity: Option<&Path>,
    path_and_query: &str,
    extra: &[&str],
) -> Result<Answer, i32> {
    let url = format!("{}{path_and_query}", net.url.replace("127.0.0.1", "localhost"));
    let mut args = curl_args(identity, &net.pki.join("collector").join("ca.pem"), extra);
    args.extend(["--write-out".into(), "\n%{http_code}".into(), url]);
    let out = tokio::process::Command::new("curl")
        .args(&args)
        .output()
        .await
        .expect("curl must be installed (.ci/run installs it)");
    if !out.status.success() {
        return Err(out.status.code().unwrap_or(-1));
    }
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    Ok(Answer { status: status.parse().unwrap(), body: serde_json::from_str(body).unwrap_or(Value::Null) })
}

#[tokio::test]
async fn the_json_api_answers_like_zdn_with_the_same_roles_and_audit() {
    let net = Network::start().await.unwrap();
    net.run_demo_agents().await.unwrap();
    let analyst = net.issue(CERT, Role::Analyst, "ann");
    let umc = net.issue("umc-noord", Role::Analyst, "uma");
    let agent = net.issue("umc-noord", Role::Agent, "gw-9");
    let admin = net.issue(CERT, Role::Admin, "root");

    // Same rows as the CLI, over HTTP/2 and HTTP/1.1 alike.
    let cli = net.zdn_json(&analyst, &["correlations"]).await.unwrap();
    for version in ["--http2", "--http1.1"] {
        let answer = get(&net, Some(&analyst), "/api/v1/correlations", &[version]).await.unwrap();
        assert_eq!(answer.status, 200, "{version}");
        assert_eq!(answer.body["correlations"], cli, "{version}");
    }
    let detail =
        get(&net, Some(&analyst), "/api/v1/indicator?value=updates.evil-cdn.example", &[]).await.unwrap();
    assert_eq!(detail.body["correlation"]["participants"], json!(["umc-noord", "ziekenhuis-zuid"]));
    assert_eq!(detail.body["participants"].as_array().unwrap().len(), 2);

    // Paging: two pages of the sightings, then none.
    let first = get(&net, Some(&analyst), "/api/v1/sightings?limit=4", &[]).await.unwrap().body;
    let token = first["next_page_token"].as_str().expect("a second page").to_owned();
    let second = get(&net, Some(&analyst), &format!("/api/v1/sightings?limit=4&page_token={token}"), &[])
        .await
        .unwrap()
        .body;
    let all = net.zdn_json(&analyst, &["sightings"]).await.unwrap();
    let paged: Vec<Value> =
        [&first, &second].iter().flat_map(|p| p["sightings"].as_array().unwrap().clone()).collect();
    assert_eq!(Value::Array(paged), all);

    // A participant analyst: counts, not names, and only its own sightings.
    let theirs = get(&net, Some(&umc), "/api/v1/correlations", &[]).await.unwrap().body;
    let text = theirs.to_string();
    assert!(!text.contains("ziekenhuis-zuid") && !text.contains("ggz-oost"), "{text}");
    assert_eq!(theirs["correlations"][0]["participants"], json!(2));
    let other = get(&net, Some(&umc), "/api/v1/sightings?participant=ggz-oost", &[]).await.unwrap();
    assert_eq!(other.status, 403);
    assert!(other.body["error"].as_str().unwrap().contains("only their own"));

    // Agents may not ask; a caller without a certificate does not get past the handshake.
    assert_eq!(get(&net, Some(&agent), "/api/v1/fleet", &[]).await.unwrap().status, 403);
    assert!(get(&net, None, "/api/v1/fleet", &[]).await.is_err(), "no client certificate, no answer");

    // Bad input is a 400 with a reason; an unknown indicator a 404.
    for bad in
        ["/api/v1/correlations?kind=bogus", "/api/v1/correlations?limt=5", "/api/v1/sightings?since=soon"]
    {
        let answer = get(&net, Some(&analyst), bad, &[]).await.unwrap();
        assert_eq!(answer.status, 400, "{bad}");
        assert!(!answer.body["error"].as_str().unwrap().is_empty(), "{bad}");
    }
    assert_eq!(
        get(&net, Some(&analyst), "/api/v1/indicator?value=nothing.example", &[]).await.unwrap().status,
        404
    );

    // Every answered HTTP call is in the audit log, which only admins read.
    assert_eq!(get(&net, Some(&analyst), "/api/v1/audit", &[]).await.unwrap().status, 403);
    let log = get(&net, Some(&admin), "/api/v1/audit?limit=1000", &[]).await.unwrap().body;
    let by_ann = log["entries"].as_array().unwrap().iter().filter(|e| e["name"] == "ann").count();
    assert!(by_ann >= 7, "ann's calls are audited: {by_ann}");
    assert!(
        log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "uma" && e["action"] == "refused:list_sightings")
    );

    // The ranking: the two correlated indicators (two institutions each) lead.
    let top = get(&net, Some(&umc), "/api/v1/top?limit=2", &[]).await.unwrap().body;
    let top = top["indicators"].as_array().unwrap();
    assert_eq!(top.len(), 2);
    assert!(top.iter().all(|t| t["participants"] == 2), "{top:?}");
    let cli_top = net.zdn_json(&umc, &["top", "--limit", "2"]).await.unwrap();
    assert_eq!(&Value::Array(top.clone()), &cli_top);

    // Exports download under the same view.
    let bundle = get(&net, Some(&analyst), "/api/v1/export?format=stix", &[]).await.unwrap();
    assert_eq!((bundle.status, bundle.body["type"].as_str()), (200, Some("bundle")));
    let own = get(&net, Some(&umc), "/api/v1/export?format=misp", &[]).await.unwrap().body;
    let all = get(&net, Some(&analyst), "/api/v1/export?format=misp", &[]).await.unwrap().body;
    let (own, all) = (own.as_array().unwrap(), all.as_array().unwrap());
    assert!(
        !own.is_empty() && own.len() < all.len(),
        "its own part of the {} entries: {}",
        all.len(),
        own.len()
    );
    // MISP sightings do not name the institution: the view shows in how many there are.
    assert!(all.iter().all(|e| e["source"] == "ZDN"), "{all:?}");
    let by_umc = net.zdn_json(&analyst, &["sightings", "--participant", "umc-noord"]).await.unwrap();
    assert_eq!(own.len(), by_umc.as_array().unwrap().len(), "all of its own");
    assert_eq!(get(&net, Some(&analyst), "/api/v1/export?format=pdf", &[]).await.unwrap().status, 400);

    let openapi = get(&net, Some(&analyst), "/api/v1/openapi.json", &[]).await.unwrap().body;
    assert_eq!(openapi["openapi"], "3.1.0");
}

#[tokio::test]
async fn correlations_stream_as_server_sent_events() {
    let net = Network::start().await.unwrap();
    let analyst = net.issue(CERT, Role::Analyst, "ann");
    let url = format!("{}/api/v1/correlations/watch", net.url.replace("127.0.0.1", "localhost"));
    let mut args = curl_args(Some(&analyst), &net.pki.join("collector").join("ca.pem"), &["--no-buffer"]);
    args.push(url);
    let mut curl = tokio::process::Command::new("curl")
        .args(&args)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("curl must be installed");
    let mut lines = BufReader::new(curl.stdout.take().unwrap()).lines();
    // The subscription exists once the audit entry does; then the agents report.
    tokio::time::timeout(Duration::from_secs(20), async {
        let admin = net.issue(CERT, Role::Admin, "root");
        loop {
            let log = net.zdn_json(&admin, &["audit"]).await.unwrap();
            if log.as_array().unwrap().iter().any(|e| e["action"] == "watch_correlations") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the watch call reaches the collector");
    net.run_demo_agents().await.unwrap();
    let mut opened = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        let mut event = String::new();
        while opened.len() < 2 {
            let line = lines.next_line().await.unwrap().expect("stream stays open");
            if let Some(name) = line.strip_prefix("event: ") {
                event = name.to_owned();
            } else if let Some(data) = line.strip_prefix("data: ") {
                assert_eq!(event, "opened");
                let row: Value = serde_json::from_str(data).unwrap();
                opened.push(row["indicator"].as_str().unwrap().to_owned());
            }
        }
    })
    .await
    .expect("two correlations open within 20 s");
    opened.sort();
    assert_eq!(opened, ["203.0.113.66", "updates.evil-cdn.example"]);
}

#[tokio::test]
async fn hunts_start_and_report_coverage_over_http_for_the_certs_analysts_only() {
    let net = Network::start().await.unwrap();
    let analyst = net.issue(CERT, Role::Analyst, "ann");
    let umc = net.issue("umc-noord", Role::Analyst, "uma");
    let post = ["-X", "POST"];
    let started =
        get(&net, Some(&analyst), "/api/v1/hunt?indicator=c2.evil.example&days=7", &post).await.unwrap();
    assert_eq!(started.status, 200, "{}", started.body);
    assert_eq!(
        (started.body["indicator"].as_str(), started.body["kind"].as_str()),
        (Some("c2.evil.example"), Some("domain"))
    );
    assert_eq!(started.body["agents_asked"], 0, "no agent heartbeats here");
    let id = started.body["id"].as_str().unwrap();
    let status = get(&net, Some(&analyst), &format!("/api/v1/hunt?id={id}"), &[]).await.unwrap();
    assert_eq!((status.status, status.body["id"].as_str()), (200, Some(id)));
    assert_eq!(status.body["answers"], serde_json::json!([]));
    let refused = get(&net, Some(&umc), "/api/v1/hunt?indicator=c2.evil.example", &post).await.unwrap();
    assert_eq!(refused.status, 403, "participants' analysts do not hunt: {}", refused.body);
    let bad = get(&net, Some(&analyst), "/api/v1/hunt?indicator=not%20an%20indicator", &post).await.unwrap();
    assert_eq!(bad.status, 400, "{}", bad.body);
    let long =
        get(&net, Some(&analyst), "/api/v1/hunt?indicator=c2.evil.example&days=400", &post).await.unwrap();
    assert_eq!(long.status, 400, "{}", long.body);
    let unknown = get(&net, Some(&analyst), "/api/v1/hunt?id=hunt-nope", &[]).await.unwrap();
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    let audit = net.zdn_json(&net.issue(CERT, Role::Admin, "root"), &["audit"]).await.unwrap().to_string();
    assert!(audit.contains("start_hunt") && audit.contains("refused:start_hunt"), "{audit}");
}

#[tokio::test]
async fn a_heartbeat_over_its_limits_is_refused_by_what_is_too_long() {
    let net = Network::start().await.unwrap();
    let bundle = zdn_transport::Bundle::load(&net.issue("umc-noord", Role::Agent, "gw-1")).unwrap();
    let channel = zdn_transport::client::connect(&net.url, Some(&bundle)).await.unwrap();
    let mut client = zdn_proto::v1::fleet_service_client::FleetServiceClient::new(channel);
    let answers = vec![zdn_proto::v1::HuntAnswer::default(); 65];
    let beat = zdn_proto::v1::HeartbeatRequest { hunt_answers: answers, ..Default::default() };
    let refused = client.heartbeat(beat).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().contains("64 hunt answers"), "{}", refused.message());
    let long = zdn_proto::v1::HeartbeatRequest { agent_version: "v".repeat(65), ..Default::default() };
    assert!(client.heartbeat(long).await.unwrap_err().message().contains("agent_version 64 bytes"));
    let fine = zdn_proto::v1::HeartbeatRequest { agent_version: "1.0".into(), ..Default::default() };
    client.heartbeat(fine).await.unwrap();
}
