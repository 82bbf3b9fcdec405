//! `zdn indicators import`: an admin adds a real MISP feed directory and a CSV to the running
//! collector; rejected entries come back with their place and reason, allowlisted values are
//! held back, a new set is published at once and reaches an agent, an implausible shrink is
//! refused, and analysts may not import.

use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use zdn_agent::sync::{Synced, sync};
use zdn_indicators::signing::{Publisher, parse_public_key};
use zdn_integration_tests::{CERT, Network};
use zdn_transport::{Bundle, Role};

const FEED: &str = "../../shared/data/intel-samples/misp-feed";

fn pinned(net: &Network) -> zdn_indicators::signing::VerifyingKey {
    parse_public_key(&Publisher::load(&net.pki.join("publish.key")).unwrap().public_hex()).unwrap()
}

async fn published(net: &Network, agent: &Path, installed: &Path) -> Vec<String> {
    let channel =
        zdn_transport::client::connect(&net.url, Some(&Bundle::load(agent).unwrap())).await.unwrap();
    match sync(channel, &pinned(net), installed, true, Duration::from_secs(10)).await.unwrap() {
        Synced::Installed { set, .. } => set.iter().map(|m| m.value().into_owned()).collect(),
        Synced::Current => Vec::new(),
    }
}

#[tokio::test]
async fn an_admin_imports_a_misp_feed_and_a_csv_into_the_published_set() {
    let feed = Path::new(env!("CARGO_MANIFEST_DIR")).join(FEED);
    assert!(feed.is_dir(), "the shared MISP feed sample is missing at {}", feed.display());
    let scratch = tempfile::tempdir().unwrap();
    let allowlist = scratch.path().join("warninglist.json");
    std::fs::write(&allowlist, r#"{"name": "test resolvers", "type": "cidr", "list": ["9.9.9.9/32"]}"#)
        .unwrap();
    let cloud = scratch.path().join("cloud.json");
    std::fs::write(&cloud, r#"{"name": "a cloud", "type": "cidr", "list": ["20.192.0.0/10"]}"#).unwrap();
    let allow = vec![allowlist.clone(), cloud];
    let net = Network::start_configured("sqlite", false, |c| c.allowlists = allow).await.unwrap();
    let admin = net.issue(CERT, Role::Admin, "root");
    let agent = net.issue("umc-noord", Role::Agent, "gw-1");
    let installed = net.dir.path().join("installed.zdn");

    let imported = net.zdn_json(&admin, &["indicators", "import", feed.to_str().unwrap()]).await.unwrap();
    let accepted = imported[0]["accepted"].as_u64().unwrap();
    assert!(accepted > 10, "{imported}");
    assert_eq!(imported[0]["import"], "misp-feed");
    let values = published(&net, &agent, &installed).await;
    let truth: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/intel-samples/truth.json"),
        )
        .unwrap(),
    )
    .unwrap();
    // Names and addresses are published as the feed has them (URLs in canonical form).
    let plain = truth["misp"]["live"].as_array().unwrap().iter().filter(|l| l["kind"] != "url");
    for live in plain {
        let value = live["value"].as_str().unwrap();
        assert!(values.iter().any(|v| v == value), "{value} is published");
    }

    // A CSV with one bad line and one allowlisted value.
    let csv = scratch.path().join("Partner Feed.csv");
    std::fs::write(
        &csv,
        "value,type,event\nbad.partner.example,domain,op-x\n9.9.9.9,ip-dst,op-x\nnot a value!,domain,op-x\n20.198.21.60,ip-dst,op-x\n",
    )
    .unwrap();
    let report = net.zdn_json(&admin, &["indicators", "import", csv.to_str().unwrap()]).await.unwrap();
    assert_eq!(report[0]["import"], "partner-feed");
    assert_eq!(
        (report[0]["accepted"].as_u64(), report[0]["rejected"].as_u64()),
        (Some(3), Some(1)),
        "{report}"
    );
    assert_eq!(report[0]["held_back"], 1, "9.9.9.9 is on the allowlist");
    let values = published(&net, &agent, &installed).await;
    assert!(values.iter().any(|v| v == "bad.partner.example"));
    assert!(!values.iter().any(|v| v == "9.9.9.9"), "held back");
    // An address inside a warninglisted cloud range is published, flagged for analysts.
    let flagged =
        zdn_indicators::signing::verify(&std::fs::read(&installed).unwrap(), &pinned(&net)).unwrap().0;
    let c2 = flagged.match_ip("20.198.21.60".parse().unwrap()).expect("published");
    assert_eq!(c2.meta().tags, ["warninglist:cloud"]);

    // Replacing the feed with a much smaller one is refused unless forced.
    let tiny = scratch.path().join("misp-feed.txt");
    std::fs::write(&tiny, "one.example\n").unwrap();
    let refused =
        net.zdn(Some(&admin), &["indicators", "import", tiny.to_str().unwrap(), "--name", "misp-feed"]).await;
    assert!(format!("{:#}", refused.unwrap_err()).contains("shrink"));
    let forced = net
        .zdn_json(&admin, &["indicators", "import", tiny.to_str().unwrap(), "--name", "misp-feed", "--force"])
        .await
        .unwrap();
    assert_eq!(forced[0]["accepted"], 1);

    // A file that is no indicator source is refused with the reason; analysts may not import.
    let junk = scratch.path().join("junk.json");
    std::fs::write(&junk, "{ not json").unwrap();
    let err = net.zdn(Some(&admin), &["indicators", "import", junk.to_str().unwrap()]).await.unwrap_err();
    assert!(format!("{err:#}").contains("junk.json"), "{err:#}");
    let analyst = net.issue(CERT, Role::Analyst, "ann");
    let err = net.zdn(Some(&analyst), &["indicators", "import", csv.to_str().unwrap()]).await.unwrap_err();
    assert_eq!(err.downcast_ref::<tonic::Status>().unwrap().code(), tonic::Code::PermissionDenied);
}

/// An import larger than a gRPC message streams in pieces (a directory of two files, one of
/// 6.6 MB where the message limit is 4 MiB); one larger than `max_import_bytes` is refused with
/// the setting's name, and leaves nothing behind.
#[tokio::test]
async fn an_import_of_any_size_streams_and_the_size_limit_names_its_setting() {
    let scratch = tempfile::tempdir().unwrap();
    let net = Network::start_configured("sqlite", false, |c| c.max_import_bytes = 8_000_000).await.unwrap();
    let admin = net.issue(CERT, Role::Admin, "root");
    let feed = scratch.path().join("big-feed");
    std::fs::create_dir(&feed).unwrap();
    let names: String = (0..300_000).map(|i| format!("host{i:06}.big.example\n")).collect();
    assert!(names.len() > 4 * 1024 * 1024);
    std::fs::write(feed.join("a.txt"), &names).unwrap();
    std::fs::write(feed.join("b.txt"), "small.example\n").unwrap();
    let report = net.zdn_json(&admin, &["indicators", "import", feed.to_str().unwrap()]).await.unwrap();
    assert_eq!(report[0]["accepted"], 300_001, "{report}");
    let installed = scratch.path().join("installed.zdn");
    let agent = net.issue("umc-noord", Role::Agent, "gw-1");
    let values = published(&net, &agent, &installed).await;
    assert!(
        values.iter().any(|v| v == "host299999.big.example") && values.iter().any(|v| v == "small.example")
    );

    std::fs::write(feed.join("c.txt"), &names).unwrap();
    let err = net.zdn(Some(&admin), &["indicators", "import", feed.to_str().unwrap()]).await.unwrap_err();
    let status = err.downcast_ref::<tonic::Status>().expect("a refusal");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert!(status.message().contains("max_import_bytes (8000000 bytes)"), "{}", status.message());
    let imports: Vec<_> = std::fs::read_dir(net.dir.path().join("data/imports"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(imports, ["big-feed"], "no staging directory is left");
}

/// A stream that breaks the import's rules is refused with the rule, and leaves nothing
/// behind: no message at all (so no name), no file, a later message naming another import, a file's pieces coming
/// back after another file, a path leaving the import.
#[tokio::test]
async fn a_malformed_import_stream_is_refused_with_the_rule_it_broke() {
    use zdn_proto::v1::{ImportFile, ImportIndicatorsRequest, analyst_service_client::AnalystServiceClient};
    let net = Network::start_configured("sqlite", false, |_| {}).await.unwrap();
    let admin = net.issue(CERT, Role::Admin, "root");
    let channel =
        zdn_transport::client::connect(&net.url, Some(&Bundle::load(&admin).unwrap())).await.unwrap();
    let mut client = AnalystServiceClient::new(channel);
    let piece =
        |path: &str, content: &str| ImportFile { path: path.into(), content: content.as_bytes().to_vec() };
    let message = |name: &str, files: Vec<ImportFile>| ImportIndicatorsRequest {
        name: name.into(),
        files,
        force: false,
    };
    let cases = [
        (vec![], "an import's name is 1-64"),
        (vec![message("feed", vec![])], "an import holds 1-"),
        (
            vec![message("feed", vec![piece("feed/a.txt", "a.example\n")]), message("other", vec![])],
            "every message of an import names the same import",
        ),
        (
            vec![message(
                "feed",
                vec![
                    piece("feed/a.txt", "a.example\n"),
                    piece("feed/b.txt", "b.example\n"),
                    piece("feed/a.txt", "c.example\n"),
                ],
            )],
            "a file's pieces come one after another",
        ),
        (vec![message("feed", vec![piece("../escape.txt", "a.example\n")])], "must be relative"),
        (
            vec![message(
                "feed",
                vec![piece("feed/a.txt", "a.example\n"), piece("other/b.txt", "b.example\n")],
            )],
            "all paths share their first part",
        ),
    ];
    for (messages, rule) in cases {
        let err = client.import_indicators(futures::stream::iter(messages)).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{rule}: {err:?}");
        assert!(err.message().contains(rule), "{rule}: {}", err.message());
    }
    let left: Vec<_> = std::fs::read_dir(net.dir.path().join("data/imports"))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "nothing staged is left behind: {left:?}");
}
