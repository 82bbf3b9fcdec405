//! The installed programs as an operator uses them: `zdn-collector pki`, `serve` from a config
//! file, `check-config`, and the `zdn` binary against the running process — plus the standard
//! gRPC health service and indicator sync on the same listener.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use zdn_integration_tests::workspace_binary;
use zdn_proto::v1::{self, indicator_service_client::IndicatorServiceClient};
use zdn_transport::Bundle;

fn collector(args: &[&str]) -> std::process::Output {
    Command::new(workspace_binary("zdn-collector", "zdn-collector")).args(args).output().unwrap()
}

fn ok(out: std::process::Output) -> String {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A `zdn-collector serve` process, killed if the test fails before stopping it, its log, and
/// the socket it notifies as systemd's `$NOTIFY_SOCKET`.
struct Served(Child, Arc<Mutex<Vec<String>>>, UnixDatagram);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `zdn-collector serve` as systemd would (`$NOTIFY_SOCKET` set) and returns it with
/// the address it logged. Its log keeps being copied to the test's stderr.
fn serve(config: &Path) -> (Served, String) {
    let socket = config.with_file_name("notify.sock");
    let _ = std::fs::remove_file(&socket);
    let notify = UnixDatagram::bind(&socket).unwrap();
    notify.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let mut child = Command::new(workspace_binary("zdn-collector", "zdn-collector"))
        .args(["--log-format", "json", "serve", "--config", config.to_str().unwrap()])
        .env("NOTIFY_SOCKET", &socket)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let log = Arc::new(Mutex::new(Vec::new()));
    let served = Served(child, log.clone(), notify);
    for line in lines.by_ref() {
        let line = line.unwrap();
        eprintln!("collector: {line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["fields"]["message"] == "collector listening" {
            let addr = v["fields"]["addr"].as_str().unwrap().to_owned();
            std::thread::spawn(move || {
                for l in lines.map_while(Result::ok) {
                    eprintln!("collector: {l}");
                    log.lock().unwrap().push(l);
                }
            });
            return (served, addr);
        }
    }
    panic!("collector exited without listening");
}

/// The services the collector's reflection lists, asked in each protocol version.
async fn reflected_services(
    channel: tonic::transport::Channel,
) -> std::collections::HashMap<&'static str, Vec<String>> {
    use tonic_reflection::pb::{v1, v1alpha};
    let ask_v1 = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let answer = client.server_reflection_info(tokio_stream::iter([ask_v1])).await.unwrap().into_inner();
    let v1_names = match first(answer).await.and_then(|r| r.message_response) {
        Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("v1 reflection: {other:?}"),
    };
    let ask_alpha = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(channel);
    let answer = client.server_reflection_info(tokio_stream::iter([ask_alpha])).await.unwrap().into_inner();
    let alpha_names = match first(answer).await.and_then(|r| r.message_response) {
        Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("v1alpha reflection: {other:?}"),
    };
    std::collections::HashMap::from([("v1", v1_names), ("v1alpha", alpha_names)])
}

/// The first message of a response stream.
async fn first<T>(mut stream: tonic::Streaming<T>) -> Option<T> {
    stream.message().await.unwrap()
}

#[tokio::test]
async fn operator_workflow_with_the_real_binaries() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let pki_s = pki.to_str().unwrap();
    let initialised = ok(collector(&["pki", "init", "--dir", pki_s, "--san", "collector.example"]));
    let refused = collector(&["pki", "init", "--dir", pki_s]);
    assert!(
        !refused.status.success()
            && String::from_utf8_lossy(&refused.stderr).contains("refusing to overwrite")
    );
    let agent = ok(collector(&[
        "pki",
        "issue",
        "--dir",
        pki_s,
        "--participant",
        "umc-noord",
        "--role",
        "agent",
        "--name",
        "gw-1",
    ]));
    let analyst =
        ok(collector(&["pki", "issue", "--dir", pki_s, "--participant", "z-cert", "--role", "analyst"]));
    let bad = collector(&["pki", "issue", "--dir", pki_s, "--participant", "UMC Noord", "--role", "agent"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("bad participant id"));

    let iocs = dir.path().join("iocs.txt");
    std::fs::write(&iocs, "evil.example\n203.0.113.66\n").unwrap();
    let config = dir.path().join("collector.toml");
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nidentity = {:?}\nindicators = [{:?}]\npublish_key = {:?}\n\
             [console]\nlisten = \"127.0.0.1:0\"\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n",
            dir.path().join("data"),
            pki.join("collector"),
            iocs,
            pki.join("publish.key")
        ),
    )
    .unwrap();
    let checked = ok(collector(&["check-config", "--config", config.to_str().unwrap()]));
    // The key to pin on agents, as `pki init` printed it.
    let key = ok(collector(&["pki", "show-publish-key", "--config", config.to_str().unwrap()]));
    assert!(key.trim().len() == 64 && initialised.contains(key.trim()), "{key} not in: {initialised}");
    assert!(checked.contains("2 indicators") && checked.contains("configuration OK"), "{checked}");
    std::fs::write(dir.path().join("typo.toml"), "listen = 7443\n").unwrap();
    let typo = collector(&["check-config", "--config", dir.path().join("typo.toml").to_str().unwrap()]);
    assert!(!typo.status.success() && String::from_utf8_lossy(&typo.stderr).contains("typo.toml"));

    let (child, addr) = serve(&config);
    let url = format!("https://{addr}");
    // systemd hears how the start goes, and that it is ready once it listens (Type=notify).
    let notified: Vec<String> = (0..2)
        .map(|_| {
            let mut datagram = [0u8; 512];
            let n = child.2.recv(&mut datagram).expect("a notification within 30 s");
            String::from_utf8_lossy(&datagram[..n]).into_owned()
        })
        .collect();
    assert_eq!(notified[0], "STATUS=loading indicator sources and warninglists\n");
    assert!(
        notified[1].starts_with(&format!("READY=1\nSTATUS=serving on {addr}, indicator set version ")),
        "{notified:?}"
    );

    // Reflection answers in both versions, so old and new gRPC tools can list the services.
    let analyst_channel =
        zdn_transport::client::connect(&url, Some(&Bundle::load(Path::new(analyst.trim())).unwrap()))
            .await
            .unwrap();
    let services = reflected_services(analyst_channel).await;
    for version in ["v1", "v1alpha"] {
        assert!(services[version].iter().any(|s| s == "zdn.v1.AnalystService"), "{version}: {services:?}");
    }

    // The health check a container runs: the port answers, and /metrics (which reads the store).
    let probed = ok(collector(&["probe", "--config", config.to_str().unwrap(), "--listen", &addr]));
    assert!(probed.contains("answered 200"), "{probed}");

    let zdn = Command::new(workspace_binary("zdn-client", "zdn"))
        .args(["--collector", &url, "--identity", analyst.trim(), "fleet", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(ok(zdn).trim(), "[]");

    let channel = zdn_transport::client::connect(&url, Some(&Bundle::load(Path::new(agent.trim())).unwrap()))
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let request = tonic_health::pb::HealthCheckRequest { service: "zdn.v1.SightingService".into() };
    let status = health.check(request).await.unwrap().into_inner().status;
    assert_eq!(status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);

    // The published set arrives signed by the key `pki init` printed; the agent installs it.
    let public = initialised.split("(pin it on agents): ").nth(1).unwrap().trim();
    let pinned = zdn_indicators::signing::parse_public_key(public).unwrap();
    let installed = dir.path().join("installed.zdn");
    let wait = std::time::Duration::from_secs(10);
    match zdn_agent::sync::sync(channel.clone(), &pinned, &installed, false, wait).await.unwrap() {
        zdn_agent::sync::Synced::Installed { version, set } => {
            let mut values: Vec<String> = set.iter().map(|m| m.value().into_owned()).collect();
            values.sort();
            assert_eq!(values, ["203.0.113.66", "evil.example"]);
            assert!(version > 0);
        }
        zdn_agent::sync::Synced::Current => panic!("nothing was published"),
    }
    // Asked again with that version, the collector has nothing newer.
    let again = zdn_agent::sync::sync(
        channel.clone(),
        &pinned,
        &installed,
        false,
        std::time::Duration::from_millis(500),
    );
    assert!(matches!(again.await.unwrap(), zdn_agent::sync::Synced::Current));
    // A key the collector did not sign with is refused, and nothing is installed under it.
    let rogue = zdn_indicators::signing::Publisher::load_or_create(&dir.path().join("rogue.key")).unwrap();
    let other = zdn_indicators::signing::parse_public_key(&rogue.public_hex()).unwrap();
    let elsewhere = dir.path().join("other.zdn");
    let refused = zdn_agent::sync::sync(channel.clone(), &other, &elsewhere, false, wait).await;
    assert!(matches!(refused, Err(zdn_agent::sync::SyncError::Signed(_))), "accepted under the wrong key");
    assert!(!elsewhere.exists());

    let mut sync = IndicatorServiceClient::new(channel)
        .sync(v1::SyncRequest { current_version: 0, full: false })
        .await
        .unwrap()
        .into_inner();
    let first = sync.message().await.unwrap().unwrap();
    assert_eq!(first.signed_set_offset, 0);
    assert!(first.signed_set_size > 0 && !first.key_id.is_empty());

    // SIGTERM: a graceful stop with exit status 0, which ends the open Sync stream rather than
    // waiting for the agent to hang up (the client stays alive and polled meanwhile).
    let pid = child.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let ended = tokio::time::timeout(std::time::Duration::from_secs(30), sync.message()).await.unwrap();
    assert!(matches!(ended, Ok(None) | Err(_)), "sync stream still open: {ended:?}");
    let mut served = child;
    let status = tokio::task::spawn_blocking(move || (served.0.wait().unwrap(), served)).await.unwrap();
    let down = collector(&["probe", "--config", config.to_str().unwrap(), "--listen", &addr]);
    let said = String::from_utf8_lossy(&down.stderr);
    assert!(
        !down.status.success() && said.contains(&format!("listen {addr}")),
        "a stopped collector: {said}"
    );
    assert!(status.0.success(), "collector exited with {}", status.0);
    let log = status.1.1.lock().unwrap().join("\n");
    assert!(!log.contains("calls still running"), "graceful stop had to cut calls off:\n{log}");
}
