//! `zdn export misp --post`: the export sent to MISP's `/sightings/add` with the API key,
//! retried when MISP is unavailable, refusals reported by value and the run failing when any
//! sighting was not added; a wrong key stops at once.
//!
//! MISP itself (PHP, MySQL, Redis, workers) cannot run here, so a stand-in answers as MISP's
//! `SightingsController::add` does: the success message for a known attribute, 403 with
//! `"saved": false` and `errors` for an unknown one, 401 for a wrong key; and 503 for its first
//! request, as a MISP behind a restarting web server would.

use serde_json::Value;
use std::time::{Duration, Instant};
use zdn_integration_tests::{CERT, Network};
use zdn_transport::Role;

const KEY: &str = "misp-api-key-0123456789abcdef0123456789";

const STAND_IN: &str = r#"
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
key, known, log = sys.argv[1], set(json.loads(sys.argv[2])), open(sys.argv[3], "a")
seen = {"n": 0}
class MISP(BaseHTTPRequestHandler):
    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        seen["n"] += 1
        if self.path != "/sightings/add":
            return self.answer(404, {"message": "not found"})
        if self.headers.get("Authorization") != key:
            return self.answer(401, {"message": "Authentication failed."})
        if seen["n"] == 1:
            return self.answer(503, {"message": "restarting"})
        log.write(json.dumps(body) + "\n"); log.flush()
        if body.get("value") in known or body.get("uuid") in known:
            return self.answer(200, {"name": "1 sighting successfully added.", "message": "1 sighting successfully added.", "url": "/sightings/add"})
        return self.answer(403, {"saved": False, "name": "Could not add Sighting", "message": "Could not add Sighting", "url": "/sightings/add", "errors": "No valid attributes found."})
    def log_message(self, *args):
        pass
server = HTTPServer(("127.0.0.1", int(sys.argv[4])), MISP)
server.serve_forever()
"#;

#[tokio::test]
async fn misp_sightings_are_posted_with_the_key_retried_and_refusals_reported() {
    let net = Network::start().await.unwrap();
    net.run_demo_agents().await.unwrap();
    let analyst = net.issue(CERT, Role::Analyst, "ann");
    let export: Value =
        serde_json::from_str(&net.zdn(Some(&analyst), &["export", "misp"]).await.unwrap()).unwrap();
    let entries = export.as_array().unwrap();
    let mut values: Vec<String> = entries.iter().map(|e| e["value"].as_str().unwrap().to_owned()).collect();
    values.sort();
    values.dedup();
    let unknown = values.pop().unwrap();
    let refused = entries.iter().filter(|e| e["value"] == unknown.as_str()).count();

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = net.dir.path().join("misp.jsonl");
    let _misp = tokio::process::Command::new("python3")
        .args(["-c", STAND_IN, KEY, &serde_json::to_string(&values).unwrap()])
        .arg(&log)
        .arg(port.to_string())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "the MISP stand-in did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = format!("http://127.0.0.1:{port}");
    let key_file = net.dir.path().join("misp.key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let key = key_file.display().to_string();

    let post = ["export", "misp", "--post", &url, "--misp-key-file", &key, "--format", "json"];
    let error = net.zdn(Some(&analyst), &post).await.unwrap_err().to_string();
    assert!(
        error.contains(&format!(
            "{refused} of {} sightings not added to MISP ({refused} refused, 0 failed)",
            entries.len()
        )),
        "{error}"
    );
    let received: Vec<Value> =
        std::fs::read_to_string(&log).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(received.len(), entries.len(), "every sighting once, the one answered 503 again");
    let mut sent: Vec<String> = received.iter().map(|r| r.to_string()).collect();
    let mut exported: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
    sent.sort();
    exported.sort();
    assert_eq!(sent, exported, "the bodies are the export's entries");

    // A wrong key stops the run at its first answer.
    std::fs::write(&key_file, "not-the-key").unwrap();
    let error = net.zdn(Some(&analyst), &post).await.unwrap_err().to_string();
    assert!(error.contains("API key was refused") && error.contains("Authentication failed"), "{error}");
    // Only MISP sightings can be posted.
    let stix = ["export", "stix", "--post", &url, "--misp-key-file", &key];
    let error = net.zdn(Some(&analyst), &stix).await.unwrap_err().to_string();
    assert!(error.contains("zdn export misp --post"), "{error}");
}
