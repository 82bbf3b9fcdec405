//! Exports: a STIX 2.1 bundle that OASIS's validator accepts, MISP sightings that PyMISP's
//! model reads and that carry false positives as type 1, CSV — each under the caller's view.

use serde_json::Value;
use std::process::Command;
use zdn_integration_tests::{CERT, Network, validate_stix};
use zdn_transport::Role;

/// Reads every entry of a MISP export with PyMISP's own `MISPSighting` model, as
/// `PyMISP.add_sighting` would send it: each must carry the attribute's `uuid` or a `value`,
/// and come back out unchanged. `None` when PyMISP is not installed here (CI installs it and
/// sets `ZDN_REQUIRE_PYMISP=1`).
fn check_with_pymisp(path: &std::path::Path) -> Option<(bool, String)> {
    const CHECK: &str = r#"
import json, sys
from pymisp import MISPSighting
for entry in json.load(open(sys.argv[1])):
    sighting = MISPSighting()
    sighting.from_dict(**entry)
    back = sighting.to_dict()
    assert ("uuid" in back) != ("value" in back), f"uuid or value, not both: {back}"
    assert back["type"] in ("0", "1") and back["timestamp"].isdigit(), back
    assert {k: str(v) for k, v in back.items()} == {k: str(v) for k, v in entry.items()}, (entry, back)
print("ok")
"#;
    let out = Command::new("python3").args(["-c", CHECK]).arg(path).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if text.contains("No module named 'pymisp'") {
        zdn_loud_skip::skip("MISP sightings check", "PyMISP (pip install pymisp)", "ZDN_REQUIRE_PYMISP");
        return None;
    }
    Some((out.status.success(), text))
}

#[tokio::test]
async fn exports_validate_and_follow_the_callers_view() {
    let net = Network::start().await.unwrap();
    net.run_demo_agents().await.unwrap();
    let analyst = net.issue(CERT, Role::Analyst, "ann");
    let stored = net.zdn_json(&analyst, &["sightings"]).await.unwrap().as_array().unwrap().len();

    let stix = net.zdn(Some(&analyst), &["export", "stix"]).await.unwrap();
    let bundle: Value = serde_json::from_str(&stix).unwrap();
    let objects = bundle["objects"].as_array().unwrap();
    let count = |t: &str| objects.iter().filter(|o| o["type"] == t).count();
    assert_eq!(count("sighting"), stored);
    assert_eq!(count("identity"), 4, "the CERT and three institutions");
    assert!(objects.iter().any(|o| o["pattern"] == "[domain-name:value = 'updates.evil-cdn.example']"));
    let file = net.dir.path().join("export.stix.json");
    std::fs::write(&file, &stix).unwrap();
    if let Some((valid, report)) = validate_stix(&file) {
        assert!(valid, "stix2_validator refused the export:\n{report}");
    }
    // Exporting again gives the same objects (stable ids), so importers de-duplicate.
    let again: Value =
        serde_json::from_str(&net.zdn(Some(&analyst), &["export", "stix"]).await.unwrap()).unwrap();
    assert_eq!(again["objects"], bundle["objects"]);

    // A participant analyst exports only its own institution, in every format.
    let umc = net.issue("umc-noord", Role::Analyst, "uma");
    let theirs: Value =
        serde_json::from_str(&net.zdn(Some(&umc), &["export", "stix"]).await.unwrap()).unwrap();
    let text = theirs.to_string();
    assert!(!text.contains("ggz-oost") && !text.contains("ziekenhuis-zuid"), "{text}");
    let own = net.zdn_json(&analyst, &["sightings", "--participant", "umc-noord"]).await.unwrap();
    let own = own.as_array().unwrap().len();
    assert!(own > 0 && own < stored, "umc-noord holds some of the sightings, not all: {own} of {stored}");
    let theirs_sightings = theirs["objects"].as_array().unwrap().iter().filter(|o| o["type"] == "sighting");
    assert_eq!(theirs_sightings.count(), own, "its own sightings, all of them");
    let csv = net.zdn(Some(&umc), &["export", "csv"]).await.unwrap();
    assert_eq!(csv.lines().count(), 1 + own, "{csv}");
    assert!(csv.lines().skip(1).all(|l| l.starts_with("umc-noord,")), "{csv}");

    // MISP: seen is type 0; after a false-positive mark that indicator's sightings are type 1.
    let fp = "updates.evil-cdn.example";
    net.zdn(Some(&analyst), &["indicators", "false-positive", fp, "--reason", "test"]).await.unwrap();
    let misp: Value =
        serde_json::from_str(&net.zdn(Some(&analyst), &["export", "misp"]).await.unwrap()).unwrap();
    let misp = misp.as_array().unwrap();
    assert_eq!(misp.len(), stored);
    for entry in misp {
        let expected = if entry["value"] == fp { "1" } else { "0" };
        assert_eq!(entry["type"], expected, "{entry}");
        assert_eq!(entry["source"], "ZDN", "the institution is not named to the MISP community");
    }
    let named: Value = serde_json::from_str(
        &net.zdn(Some(&analyst), &["export", "misp", "--name-institutions"]).await.unwrap(),
    )
    .unwrap();
    let sources: std::collections::BTreeSet<&str> =
        named.as_array().unwrap().iter().map(|e| e["source"].as_str().unwrap()).collect();
    assert_eq!(
        sources.into_iter().collect::<Vec<_>>(),
        ["ZDN/ggz-oost", "ZDN/umc-noord", "ZDN/ziekenhuis-zuid"]
    );
    let file = net.dir.path().join("export.misp.json");
    std::fs::write(&file, serde_json::to_string(misp).unwrap()).unwrap();
    if let Some((valid, report)) = check_with_pymisp(&file) {
        assert!(valid, "PyMISP's MISPSighting refused the export:\n{report}");
    }
    let one = net.zdn(Some(&analyst), &["export", "csv", "--indicator", "203.0.113.66"]).await.unwrap();
    let expected = net.zdn_json(&analyst, &["sightings", "--indicator", "203.0.113.66"]).await.unwrap();
    assert_eq!(one.lines().count(), 1 + expected.as_array().unwrap().len(), "{one}");
    assert!(one.lines().skip(1).all(|l| l.contains(",203.0.113.66,")), "{one}");
}

#[tokio::test]
async fn csv_exports_neutralise_cells_a_spreadsheet_would_run() {
    use zdn_integration_tests::site;
    let net = Network::start().await.unwrap();
    let mut sightings = net.sightings_of(&site("umc-noord")).unwrap();
    // The observed value comes from traffic: a DNS name an attacker chose.
    let hostile = "=HYPERLINK(\"http://x\"),1.evil.example";
    sightings[0].observed = hostile.into();
    net.send(&net.issue("umc-noord", Role::Agent, "gw-1"), &sightings[..1]).await.unwrap();
    let analyst = net.issue(CERT, Role::Analyst, "analyst");
    let csv = net.zdn(Some(&analyst), &["export", "csv"]).await.unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let column = reader.headers().unwrap().iter().position(|h| h == "observed").unwrap();
    let cells: Vec<String> = reader.records().map(|r| r.unwrap()[column].to_owned()).collect();
    assert_eq!(cells, [format!("'{hostile}")], "{csv}");
}
