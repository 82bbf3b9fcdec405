//! Privacy operations over the real API: an admin exports everything held about a
//! participant and erases it — one pseudonymised host, or the whole institution — and the
//! correlations forget it. Analysts may do neither; both are audited.

use serde_json::Value;
use zdn_integration_tests::{CERT, Network};
use zdn_transport::Role;

#[tokio::test]
async fn an_admin_exports_and_erases_a_participant() {
    let net = Network::start().await.unwrap();
    net.run_demo_agents().await.unwrap();
    // A second host at umc-noord (the demo's hits are all one host's), so erasing one host
    // has something to leave.
    let mut second = net.sightings_of(&zdn_integration_tests::site("umc-noord")).unwrap().remove(0);
    (second.id, second.src) = ("second-host-1".into(), "h-second-host".into());
    net.send(&net.issue("umc-noord", Role::Agent, "gw-2"), &[second]).await.unwrap();
    let admin = net.issue(CERT, Role::Admin, "root");
    let analyst = net.issue(CERT, Role::Analyst, "ann");
    let theirs = net.zdn_json(&analyst, &["sightings", "--participant", "umc-noord"]).await.unwrap();
    let theirs = theirs.as_array().unwrap().clone();
    assert!(theirs.len() >= 3);
    let hosts: std::collections::BTreeSet<&str> = theirs.iter().map(|s| s["src"].as_str().unwrap()).collect();
    assert_eq!(hosts.len(), 2, "{hosts:?}");

    let record: Value = serde_json::from_str(
        &net.zdn(Some(&admin), &["admin", "export", "--participant", "umc-noord"]).await.unwrap(),
    )
    .unwrap();
    assert_eq!(record["participant"], "umc-noord");
    assert_eq!(record["sightings"].as_array().unwrap().len(), theirs.len());
    assert!(record["sightings"].as_array().unwrap().iter().all(|s| s["participant"] == "umc-noord"));
    assert_eq!(record["aggregates"].as_array().unwrap().len(), 2, "two indicators seen");
    let text = record.to_string();
    assert!(!text.contains("ggz-oost") && !text.contains("ziekenhuis-zuid"), "nothing about others: {text}");

    // Analysts may not; erasing needs confirmation.
    assert!(net.zdn(Some(&analyst), &["admin", "export", "--participant", "umc-noord"]).await.is_err());
    let unconfirmed =
        net.zdn(Some(&admin), &["admin", "erase", "--participant", "umc-noord"]).await.unwrap_err();
    assert!(format!("{unconfirmed:#}").contains("--yes"));

    // One host first.
    let host = theirs[0]["src"].as_str().unwrap().to_owned();
    let of_host = theirs.iter().filter(|s| s["src"] == host.as_str()).count();
    let erased = net
        .zdn_json(&admin, &["admin", "erase", "--participant", "umc-noord", "--host", &host, "--yes"])
        .await
        .unwrap();
    assert_eq!(erased[0]["sightings"], of_host);
    let left = net.zdn_json(&analyst, &["sightings", "--participant", "umc-noord"]).await.unwrap();
    assert_eq!(left.as_array().unwrap().len(), theirs.len() - of_host);
    assert!(of_host > 0 && !left.as_array().unwrap().is_empty(), "the other host's sightings stay");
    assert!(left.as_array().unwrap().iter().all(|s| s["src"] != host.as_str()));

    // Then the whole institution: both correlations it was part of fall below two participants.
    let erased =
        net.zdn_json(&admin, &["admin", "erase", "--participant", "umc-noord", "--yes"]).await.unwrap();
    // Aggregates: its two timelines and its two incident memberships.
    assert_eq!(
        (erased[0]["aggregates"].as_u64(), erased[0]["correlations_removed"].as_u64()),
        (Some(4), Some(2))
    );
    assert!(
        net.zdn_json(&analyst, &["sightings", "--participant", "umc-noord"])
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(net.zdn_json(&analyst, &["correlations"]).await.unwrap().as_array().unwrap().is_empty());
    let detail = net.zdn_json(&analyst, &["indicator", "203.0.113.66"]).await.unwrap();
    assert!(detail.as_array().unwrap().iter().all(|t| t["participant"] != "umc-noord"));
    let others = net.zdn_json(&analyst, &["sightings", "--participant", "ggz-oost"]).await.unwrap();
    assert!(!others.as_array().unwrap().is_empty(), "other institutions keep their data");

    let log = net.zdn_json(&admin, &["audit"]).await.unwrap();
    let actions: Vec<&str> = log.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions.iter().filter(|a| **a == "erase_participant").count(), 2);
    assert!(actions.contains(&"export_participant"));
}

/// Erasure leaves no readable copy in the store's files: after an erasure and a clean stop,
/// the bytes of the SQLite database and its WAL hold none of the erased sightings' ids.
#[tokio::test]
async fn an_erased_participant_leaves_no_readable_copy_in_the_files() {
    use zdn_integration_tests::{deliver, site};
    let net = Network::start().await.unwrap();
    let template = net.sightings_of(&site("umc-noord")).unwrap().remove(0);
    // Thousands of rows, so whole pages are freed, not only cells in pages that stay.
    let ids: Vec<String> = (0..3_000).map(|i| format!("erase-me-{i:05}")).collect();
    let many: Vec<_> = ids
        .iter()
        .map(|id| {
            let mut s = template.clone();
            s.id = id.clone();
            s
        })
        .collect();
    let bundle = zdn_transport::Bundle::load(&net.issue("umc-noord", Role::Agent, "gw-1")).unwrap();
    assert_eq!(deliver(&net.url, Some(bundle), &many, 500).await.unwrap().stored, 3_000);
    let admin = net.issue(CERT, Role::Admin, "root");
    let files = ["zdn.sqlite", "zdn.sqlite-wal"].map(|f| net.dir.path().join("data").join(f));
    // How many distinct ids the files' bytes hold (one pass: every id is "erase-me-" and 5 digits).
    let holding = |files: &[std::path::PathBuf]| {
        let mut found = std::collections::HashSet::new();
        for bytes in files.iter().map(|f| std::fs::read(f).unwrap_or_default()) {
            found.extend(bytes.windows(14).filter(|w| w.starts_with(b"erase-me-")).map(<[u8]>::to_vec));
        }
        found.len()
    };
    assert!(holding(&files) > 2_900, "the ids are in the files before");
    net.zdn_json(&admin, &["admin", "erase", "--participant", "umc-noord", "--yes"]).await.unwrap();
    let Network { dir, collector, .. } = net;
    collector.stop().await.unwrap();
    assert_eq!(holding(&files), 0, "erased sightings readable in {}", dir.path().display());
}
