//! TAXII 2.1 both ways, against OASIS's reference implementations: a collection on
//! `medallion` (the reference server) polled as an indicator source, paged and then asked only
//! for what was added since; and the collector's own API root read with `taxii2-client` (the
//! reference client) as a token holder on the console port and with a certificate on the gRPC
//! port, under each caller's view. CI installs both (`pip install medallion taxii2-client`)
//! and sets `ZDN_REQUIRE_TAXII=1`, which makes their absence a failure.

use serde_json::{Value, json};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use zdn_collector::taxii::source::{Source, SourceConfig};
use zdn_integration_tests::console_client::{curl, issue_token};
use zdn_integration_tests::{CERT, Network, validate_stix};
use zdn_transport::Role;

const COLLECTION: &str = "365fed99-08fa-fdcd-a1b3-fb247eb41d01";

fn tools_available() -> bool {
    let found = std::process::Command::new("python3")
        .args(["-c", "import medallion, taxii2client"])
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        let needs = "medallion and taxii2-client (pip install medallion taxii2-client)";
        zdn_loud_skip::skip("TAXII 2.1 interoperability", needs, "ZDN_REQUIRE_TAXII");
    }
    found
}

/// medallion on a free loopback port with one empty, writable collection and the user
/// `zdn`/`secret`, at most `page` objects per page.
async fn medallion(dir: &Path, page: u32) -> (tokio::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let data = json!({
        "/discovery": {"title": "medallion", "default": format!("{base}/api1/"), "api_roots": [format!("{base}/api1/")]},
        "api1": {
            "information": {"title": "api1", "versions": ["application/taxii+json;version=2.1"], "max_content_length": 100_000_000},
            "status": [],
            "collections": [{
                "id": COLLECTION, "title": "partner indicators", "can_read": true, "can_write": true,
                "media_types": ["application/stix+json;version=2.1"], "objects": [], "manifest": [],
            }],
        },
    });
    std::fs::write(dir.join("data.json"), data.to_string()).unwrap();
    let config = json!({
        "backend": {"module": "medallion.backends.memory_backend", "module_class": "MemoryBackend", "filename": dir.join("data.json")},
        "users": {"zdn": "secret"},
        "taxii": {"max_page_size": page},
    });
    std::fs::write(dir.join("medallion.json"), config.to_string()).unwrap();
    let child = tokio::process::Command::new("medallion")
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .arg(dir.join("medallion.json"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("medallion.log")).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("medallion runs");
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        let log = std::fs::read_to_string(dir.join("medallion.log")).unwrap_or_default();
        assert!(started.elapsed() < Duration::from_secs(30), "medallion did not start:\n{log}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (child, format!("{base}/api1/collections/{COLLECTION}/"))
}

fn indicator(i: usize) -> Value {
    json!({
        "type": "indicator", "spec_version": "2.1", "id": format!("indicator--00000000-0000-4000-8000-{i:012}"),
        "created": "2026-11-01T00:00:00.000Z", "modified": "2026-11-01T00:00:00.000Z",
        "pattern": format!("[domain-name:value = 'c2-{i}.partner.example']"), "pattern_type": "stix",
        "valid_from": "2026-11-01T00:00:00.000Z",
    })
}

/// Adds `objects` to medallion's collection (it dates them as added now).
async fn add(collection: &str, objects: Vec<Value>) {
    let envelope = json!({ "objects": objects }).to_string();
    let out = tokio::process::Command::new("curl")
        .args(["--silent", "--show-error", "--fail", "--max-time", "30", "-u", "zdn:secret"])
        .args(["-H", "Content-Type: application/taxii+json;version=2.1"])
        .args(["-H", "Accept: application/taxii+json;version=2.1", "--data-binary", &envelope])
        .arg(format!("{collection}objects/"))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "adding to medallion: {}", String::from_utf8_lossy(&out.stderr));
    // medallion dates by the second: keep the next batch in a later one.
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

/// Reads the API root at `url` with taxii2-client: every object of each collection, page by
/// page (`per_request` at a time), as JSON `{"collections": {title: [objects]}}`.
async fn read_with_taxii2_client(url: &str, ca: &Path, auth: &[(&str, String)]) -> Value {
    const READ: &str = r#"
import json, sys
from taxii2client.v21 import Server, as_pages
args = json.loads(sys.argv[1])
server = Server(args["url"], verify=args["ca"], user=args.get("user"), password=args.get("password"),
                cert=(args["cert"], args["key"]) if "cert" in args else None)
root = server.default
out = {"api_root": root.title, "versions": root.versions, "collections": {}}
for collection in root.collections:
    assert collection.can_read and not collection.can_write
    objects = []
    for envelope in as_pages(collection.get_objects, per_request=7):
        objects.extend(envelope.get("objects", []))
    out["collections"][collection.title] = objects
print(json.dumps(out))
"#;
    let mut args = json!({ "url": url, "ca": ca });
    for (key, value) in auth {
        args[*key] = value.clone().into();
    }
    // requests lets these override the session's `verify`, which taxii2-client sets.
    let out = tokio::process::Command::new("python3")
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE")
        .args(["-c", READ, &args.to_string()])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "taxii2-client: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ids(objects: &Value, kind: &str) -> Vec<String> {
    let mut ids: Vec<String> = objects
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["type"] == kind)
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_medallion_collection_is_published_and_served_back_to_taxii2_client() {
    if !tools_available() {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let (_medallion, collection) = medallion(scratch.path(), 40).await;
    add(&collection, (1..=100).map(indicator).collect()).await;
    std::fs::write(scratch.path().join("password"), "secret\n").unwrap();
    let source = SourceConfig {
        name: "partner".into(),
        collection: collection.clone(),
        username: "zdn".into(),
        password_file: scratch.path().join("password").display().to_string(),
        token_file: String::new(),
        ca: String::new(),
        poll_minutes: 60,
        page_size: 25,
    };
    let config = source.clone();
    let net =
        Network::start_configured("sqlite", false, move |c| c.taxii.sources = vec![config]).await.unwrap();

    // The first poll runs at the start, reads every page (medallion sends at most 25 of the
    // 100) and publishes them.
    let admin = net.issue(CERT, Role::Admin, "root");
    let (_, token) = issue_token(&net, &admin, CERT, "taxii-reader").await;
    let bearer = format!("Authorization: Bearer {token}");
    let jar = net.dir.path().join("jar");
    let started = Instant::now();
    loop {
        let page = curl(
            &net,
            &jar,
            None,
            "/taxii2/zdn/collections/indicators/objects/?limit=1000",
            &["-H", &bearer],
        )
        .await;
        assert_eq!(page.status, 200, "{}", page.body);
        let envelope: Value = serde_json::from_str(&page.body).unwrap();
        if envelope["objects"].as_array().is_some_and(|o| o.len() == 100) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the first poll did not publish: {envelope}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Later additions and a revocation: the next poll asks only for what was added since.
    let mut revoked = indicator(1);
    revoked["modified"] = "2026-11-02T00:00:00.000Z".into();
    revoked["revoked"] = true.into();
    add(&collection, (101..=105).map(indicator).chain([revoked]).collect()).await;
    let poller = Source::new(&source, &net.dir.path().join("data")).unwrap();
    let polled = poller.poll().await.unwrap();
    assert_eq!((polled.pages, polled.received, polled.changed), (1, 6, true), "{polled:?}");
    let again = poller.poll().await.unwrap();
    assert_eq!((again.received, again.changed), (0, false), "nothing new: {again:?}");
    net.collector.republish_indicators().await.unwrap();

    // Sightings from three institutions, then our API root read back by the reference client.
    net.run_demo_agents().await.unwrap();
    let ca = net.pki.join("collector").join("ca.pem");
    let console = net.collector.console.unwrap();
    let console_url = format!("https://localhost:{}/taxii2/", console.port());
    let read =
        read_with_taxii2_client(&console_url, &ca, &[("user", "feed".into()), ("password", token)]).await;
    assert_eq!(read["api_root"], "ZDN");
    let published = &read["collections"]["indicators"];
    let expected: Vec<String> = (2..=105).map(|i| indicator(i)["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids(published, "indicator"), expected, "the source's ids, without the revoked one");
    let file = net.dir.path().join("served.stix.json");
    let bundle =
        json!({"type": "bundle", "id": "bundle--5a444e00-7a64-4e2d-8000-000000000002", "objects": published});
    std::fs::write(&file, bundle.to_string()).unwrap();
    if let Some((valid, report)) = validate_stix(&file) {
        assert!(valid, "stix2_validator refused the served indicators:\n{report}");
    }
    let seen = &read["collections"]["sightings"];
    let all_sightings = ids(seen, "sighting");
    assert!(!all_sightings.is_empty());
    assert_eq!(ids(seen, "identity").len(), 4, "the CERT and three institutions");

    // A participant analyst's certificate on the gRPC port: its own institution only.
    let umc = net.issue("umc-noord", Role::Analyst, "uma");
    let grpc_url = format!("https://localhost:{}/taxii2/", net.collector.addr.port());
    let cert = [
        ("cert", umc.join("cert.pem").display().to_string()),
        ("key", umc.join("key.pem").display().to_string()),
    ];
    let theirs = read_with_taxii2_client(&grpc_url, &ca, &cert).await;
    let own = &theirs["collections"]["sightings"];
    let own_sightings = ids(own, "sighting");
    assert!(!own_sightings.is_empty() && own_sightings.len() < all_sightings.len());
    let where_sighted: Vec<&Value> = own
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["type"] == "sighting")
        .map(|o| &o["where_sighted_refs"])
        .collect();
    assert!(where_sighted.windows(2).all(|w| w[0] == w[1]), "one institution: {where_sighted:?}");
    assert_eq!(ids(&theirs["collections"]["indicators"], "indicator"), expected);
}

#[tokio::test]
async fn taxii_requests_without_credentials_an_agent_or_the_wrong_media_type_are_refused() {
    let net = Network::start().await.unwrap();
    let jar = net.dir.path().join("jar");
    let path = "/taxii2/zdn/collections/";
    let none = curl(&net, &jar, None, path, &[]).await;
    assert_eq!(none.status, 401, "{}", none.body);
    assert!(none.headers.contains("www-authenticate: basic"), "{}", none.headers);
    assert!(none.headers.contains("content-type: application/taxii+json;version=2.1"), "{}", none.headers);
    let wrong = curl(&net, &jar, None, path, &["-H", "Authorization: Bearer zdnc_0000"]).await;
    assert_eq!(wrong.status, 401, "an unknown token: {}", wrong.body);
    let agent = net.issue("umc-noord", Role::Agent, "gw-1");
    let refused = curl(&net, &jar, Some(&agent), path, &[]).await;
    assert_eq!(refused.status, 401, "an agent's certificate reads nothing: {}", refused.body);

    let admin = net.issue(CERT, Role::Admin, "root");
    let (_, token) = issue_token(&net, &admin, CERT, "reader").await;
    let bearer = format!("Authorization: Bearer {token}");
    let ok = curl(&net, &jar, None, path, &["-H", &bearer]).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let collections: Value = serde_json::from_str(&ok.body).unwrap();
    let titles: Vec<&str> =
        collections["collections"].as_array().unwrap().iter().map(|c| c["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["indicators", "sightings"]);
    let html = curl(&net, &jar, None, path, &["-H", &bearer, "-H", "Accept: text/html"]).await;
    assert_eq!(html.status, 406, "{}", html.body);
    let old =
        curl(&net, &jar, None, path, &["-H", &bearer, "-H", "Accept: application/taxii+json;version=2.0"])
            .await;
    assert_eq!(old.status, 406, "{}", old.body);
    let missing = curl(&net, &jar, None, "/taxii2/zdn/collections/nope/objects/", &["-H", &bearer]).await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    let error: Value = serde_json::from_str(&missing.body).unwrap();
    assert_eq!(error["http_status"], "404");
    let audit = net.zdn_json(&admin, &["audit"]).await.unwrap();
    assert!(audit.to_string().contains("taxii"), "TAXII reads are audited: {audit}");
}
