//! Identity comes from the certificate, and only from a certificate of our CA.

use std::sync::atomic::Ordering;
use unauthenticated::no_client_cert_channel;
use zdn_agent::delivery::DeliveryError;
use zdn_agent::heartbeat::HeartbeatError;
use zdn_integration_tests::{CERT, Network, site};
use zdn_proto::v1;
use zdn_transport::Role;

fn code(err: &DeliveryError) -> Option<tonic::Code> {
    err.cause.status().map(tonic::Status::code)
}

#[tokio::test]
async fn an_agent_with_a_certificate_from_another_ca_is_refused() {
    let net = Network::start().await.unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    zdn_collector::pki::init(elsewhere.path(), &[]).unwrap();
    let rogue = zdn_collector::pki::issue(
        elsewhere.path(),
        &zdn_collector::pki::Request::new("umc-noord", Role::Agent, None),
    )
    .unwrap();
    // The rogue bundle trusts its own CA, so give it ours to get past server verification: the
    // collector must still refuse the client certificate.
    std::fs::copy(net.pki.join("ca/ca.pem"), rogue.join("ca.pem")).unwrap();
    let sightings = net.sightings_of(&site("umc-noord")).unwrap();
    assert!(net.send(&rogue, &sightings).await.is_err(), "rogue agent was accepted");
    assert!(net.collector.stats.refused.load(Ordering::Relaxed) >= 1);
    let analyst = net.issue(CERT, Role::Analyst, "analyst");
    assert_eq!(net.zdn_json(&analyst, &["sightings"]).await.unwrap(), serde_json::json!([]));
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let net = Network::start().await.unwrap();
    let channel = no_client_cert_channel(&net).await;
    let result = match channel {
        Ok(ch) => v1::analyst_service_client::AnalystServiceClient::new(ch)
            .list_correlations(v1::ListCorrelationsRequest::default())
            .await
            .map(|_| ()),
        Err(e) => Err(tonic::Status::unavailable(e.to_string())),
    };
    assert!(result.is_err(), "unauthenticated analyst got an answer");
    // The zdn CLI does not even try without credentials.
    let err = net.zdn(None, &["correlations"]).await.unwrap_err();
    assert!(err.to_string().contains("--identity"), "{err}");
}

#[tokio::test]
async fn roles_are_enforced_per_service() {
    let net = Network::start().await.unwrap();
    let agent = net.issue("umc-noord", Role::Agent, "gw-1");
    let err = net.zdn(Some(&agent), &["correlations"]).await.unwrap_err();
    assert_eq!(err.downcast_ref::<tonic::Status>().unwrap().code(), tonic::Code::PermissionDenied);
    let analyst = net.issue("umc-noord", Role::Analyst, "soc");
    let sightings = net.sightings_of(&site("umc-noord")).unwrap();
    let err = net.send(&analyst, &sightings).await.unwrap_err();
    let err = err.downcast::<DeliveryError>().unwrap();
    assert_eq!(code(&err), Some(tonic::Code::PermissionDenied), "{err}");
}

#[tokio::test]
async fn the_participant_is_the_certificates_not_the_messages() {
    // A sighting has no participant field to forge; whatever an agent sends is filed under the
    // participant of its certificate.
    let net = Network::start().await.unwrap();
    let sightings = net.sightings_of(&site("ggz-oost")).unwrap();
    net.send(&net.issue("umc-noord", Role::Agent, "gw-1"), &sightings).await.unwrap();
    let analyst = net.issue(CERT, Role::Analyst, "analyst");
    let stored = net.zdn_json(&analyst, &["sightings"]).await.unwrap();
    let participants: Vec<&str> =
        stored.as_array().unwrap().iter().map(|s| s["participant"].as_str().unwrap()).collect();
    assert_eq!(participants, ["umc-noord"]);
}

#[tokio::test]
async fn malformed_and_oversized_input_is_rejected_and_counted() {
    let net = Network::start().await.unwrap();
    let agent = net.issue("umc-noord", Role::Agent, "gw-1");
    let mut sightings = net.sightings_of(&site("umc-noord")).unwrap();
    sightings[0].count = 0;
    let delivery = net.send(&agent, &sightings).await.unwrap();
    assert_eq!((delivery.stored, delivery.rejected), (sightings.len() as u64 - 1, 1));

    let many: Vec<_> = (0..1001)
        .map(|i| {
            let mut s = sightings[1].clone();
            s.id = format!("bulk-{i}");
            s
        })
        .collect();
    let bundle = zdn_transport::Bundle::load(&agent).unwrap();
    let err = zdn_integration_tests::deliver(&net.url, Some(bundle), &many, 1001).await.unwrap_err();
    let err = err.downcast::<DeliveryError>().unwrap();
    assert_eq!(code(&err), Some(tonic::Code::InvalidArgument), "{err}");
}

/// A TLS client that trusts the collector but presents no certificate.
mod unauthenticated {
    use super::Network;
    use std::sync::Arc;
    use tonic::transport::{Channel, Endpoint, Uri};

    pub async fn no_client_cert_channel(net: &Network) -> Result<Channel, tonic::transport::Error> {
        let bundle = zdn_transport::Bundle::load(&net.pki.join("collector")).unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(zdn_transport::crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(bundle.roots().unwrap())
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let addr = net.collector.addr;
        Endpoint::from_shared(net.url.clone())
            .unwrap()
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let connector = connector.clone();
                async move {
                    let tcp = tokio::net::TcpStream::connect(addr).await?;
                    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
                    let tls = connector.connect(name, tcp).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
                }
            }))
            .await
    }
}

#[tokio::test]
async fn oversized_heartbeats_are_refused() {
    let net = Network::start().await.unwrap();
    let agent = net.issue("umc-noord", Role::Agent, "gw-1");
    let channel =
        zdn_transport::client::connect(&net.url, Some(&zdn_transport::Bundle::load(&agent).unwrap()))
            .await
            .unwrap();
    let blind_spots = (0..33).map(|i| (format!("kind-{i}"), 1)).collect();
    let beat = v1::HeartbeatRequest { agent_version: "1".into(), blind_spots, ..Default::default() };
    let HeartbeatError(status) = zdn_agent::heartbeat::send(channel.clone(), beat).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status}");
    let long = v1::HeartbeatRequest { agent_version: "x".repeat(65), ..Default::default() };
    assert!(zdn_agent::heartbeat::send(channel, long).await.is_err());
}

/// An agent over its ingest rate is refused with the time to wait; sending again what was
/// not acknowledged (as the agent's spool does, after its backoff) stores everything once, so
/// the refusal delayed sightings without losing any.
#[tokio::test]
async fn an_agent_over_its_ingest_rate_is_told_to_wait_and_loses_nothing() {
    const BATCH: usize = 2; // what `Network::send` uses
    let net = Network::start_configured("sqlite", false, |c| {
        c.max_batch_sightings = BATCH;
        c.ingest.per_agent_sightings_per_second = 1;
        c.ingest.per_agent_burst = 2;
    })
    .await
    .unwrap();
    let agent = net.issue("umc-noord", Role::Agent, "gw-1");
    let sightings = net.sightings_of(&site("umc-noord")).unwrap();
    assert!(sightings.len() > 2, "more than one burst");
    let mut sent = 0;
    let mut refusals = 0;
    for _ in 0..30 {
        match net.send(&agent, &sightings[sent..]).await {
            Ok(_) => {
                sent = sightings.len();
                break;
            }
            Err(e) => {
                let Some(DeliveryError { delivered, cause }) = e.downcast_ref::<DeliveryError>() else {
                    panic!("unexpected error: {e:#}")
                };
                let status = cause.status().unwrap_or_else(|| panic!("not the collector's answer: {cause}"));
                assert_eq!(status.code(), tonic::Code::ResourceExhausted);
                assert!(status.message().contains("retry in"), "{}", status.message());
                sent += delivered.batches as usize * BATCH;
                refusals += 1;
                tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
            }
        }
    }
    assert_eq!(sent, sightings.len(), "all delivered within 30 tries");
    assert!(refusals > 0, "the rate limit did bind");
    // Another agent is not affected by gw-1's limit.
    let other = net.issue("ggz-oost", Role::Agent, "gw-1");
    let theirs = net.sightings_of(&site("ggz-oost")).unwrap();
    assert_eq!(net.send(&other, &theirs).await.unwrap().stored, theirs.len() as u64);
    let analyst = net.issue(CERT, Role::Analyst, "analyst");
    let rows = net.zdn_json(&analyst, &["sightings", "--participant", "umc-noord"]).await.unwrap();
    assert_eq!(rows.as_array().unwrap().len(), sightings.len(), "every sighting stored exactly once");
}

#[tokio::test]
async fn a_participants_admin_certificate_is_refused_for_every_call() {
    use zdn_collector::pki::{self, PkiError, Request};
    let net = Network::start().await.unwrap();
    net.send(&net.issue("ggz-oost", Role::Agent, "gw-1"), &net.sightings_of(&site("ggz-oost")).unwrap())
        .await
        .unwrap();
    // `pki issue` refuses to make one...
    let refused = pki::issue(&net.pki, &Request::new("umc-noord", Role::Admin, Some("root")));
    assert!(matches!(refused, Err(PkiError::AdminOutsideCert { .. })), "{refused:?}");
    // ...so make one as a CA told the wrong CERT participant would (or one from before the rule).
    let wrong =
        Request { cert_participant: "umc-noord", ..Request::new("umc-noord", Role::Admin, Some("root")) };
    let rogue = pki::issue(&net.pki, &wrong).unwrap();
    let calls: [&[&str]; 7] = [
        &["sightings", "--participant", "ggz-oost"],
        &["correlations"],
        &["admin", "export", "--participant", "ggz-oost"],
        &["admin", "erase", "--participant", "ggz-oost", "--yes"],
        &["admin", "token", "issue", "--participant", CERT, "--role", "admin", "--name", "x"],
        &["audit"],
        &["fleet"],
    ];
    for args in calls {
        let err = net.zdn(Some(&rogue), args).await.unwrap_err();
        let status = err.downcast_ref::<tonic::Status>().unwrap_or_else(|| panic!("{args:?}: {err}"));
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{args:?}: {status}");
        assert!(status.message().contains("role of the CERT's participant (z-cert) only"), "{status}");
    }
    let analyst = net.issue(CERT, Role::Analyst, "analyst");
    let kept = net.zdn_json(&analyst, &["sightings", "--participant", "ggz-oost"]).await.unwrap();
    assert!(!kept.as_array().unwrap().is_empty(), "the refused erase erased nothing");
    // The CERT's admin cannot mint one either, and every refusal is on record as such.
    let admin = net.issue(CERT, Role::Admin, "root");
    let args = ["admin", "token", "issue", "--participant", "umc-noord", "--role", "admin", "--name", "x"];
    let err = net.zdn(Some(&admin), &args).await.unwrap_err().to_string();
    assert!(err.contains("role of the CERT's participant (z-cert) only"), "{err}");
    let audit = net.zdn_json(&admin, &["audit", "--limit", "100"]).await.unwrap();
    let refusals = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["participant"] == "umc-noord" && e["action"].as_str().unwrap().starts_with("refused:"))
        .count();
    assert_eq!(refusals, calls.len(), "every refused analyst/admin call audited: {audit}");
}

#[tokio::test]
async fn a_revocation_list_that_is_not_a_crl_of_our_ca_stops_the_start() {
    use zdn_collector::pki::{self, Request, revoke};
    let foreign = tempfile::tempdir().unwrap();
    pki::init(foreign.path(), &[]).unwrap();
    pki::issue(foreign.path(), &Request::new("x", Role::Agent, None)).unwrap();
    let holder = revoke::Which::Holder { participant: "x", name: "agent" };
    let (foreign_crl, _) = revoke::revoke(foreign.path(), &holder).unwrap();
    let foreign_crl = foreign_crl.display().to_string();
    for (list, reason) in [
        ("pki/ca/ca.pem", "holds no X509 CRL"),
        ("pki/collector/key.pem", "holds no X509 CRL"),
        ("pki/ca/missing.pem", "No such file"),
        // Another deployment's CA has the same name: the signature tells them apart.
        (foreign_crl.as_str(), "signature does not verify with the CA's key"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        pki::init(&dir.path().join("pki"), &[]).unwrap();
        let lists = vec![dir.path().join(list)];
        // check-config says why, as the start does.
        let config = dir.path().join("collector.toml");
        let toml = format!(
            "identity = {:?}\ndata_dir = {:?}\nrevocation_lists = [{:?}]\n",
            dir.path().join("pki/collector"),
            dir.path().join("data"),
            lists[0]
        );
        std::fs::write(&config, toml).unwrap();
        let checked = std::process::Command::new(zdn_integration_tests::workspace_binary(
            "zdn-collector",
            "zdn-collector",
        ))
        .args(["check-config", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
        let stderr = String::from_utf8_lossy(&checked.stderr);
        assert!(!checked.status.success() && stderr.contains(reason), "check-config with {list}: {stderr}");
        let err = Network::start_in(dir, "sqlite", |c| c.revocation_lists = lists).await.err().unwrap();
        assert!(format!("{err:#}").contains(reason), "{list}: {err:#}");
    }
}

#[tokio::test]
async fn revoked_certificates_are_refused_and_sighup_puts_new_revocations_in_force() {
    use zdn_collector::pki::{self, Request, revoke};
    let dir = tempfile::tempdir().unwrap();
    let pki_dir = dir.path().join("pki");
    pki::init(&pki_dir, &[]).unwrap();
    let issue = |name| pki::issue(&pki_dir, &Request::new("umc-noord", Role::Agent, Some(name))).unwrap();
    let (gw1, gw2) = (issue("gw-1"), issue("gw-2"));
    let holder = |name| revoke::Which::Holder { participant: "umc-noord", name };
    let (crl, revoked) = revoke::revoke(&pki_dir, &holder("gw-2")).unwrap();
    assert_eq!(revoked.len(), 1);
    let net = Network::start_in(dir, "sqlite", |c| c.revocation_lists = vec![crl.clone()]).await.unwrap();
    let sightings = net.sightings_of(&site("umc-noord")).unwrap();
    net.send(&gw1, &sightings).await.unwrap();
    assert!(net.send(&gw2, &sightings).await.is_err(), "a revoked agent was accepted");

    // Revoking gw-1 rewrites the list; new connections refuse it once the collector reloads.
    revoke::revoke(&net.pki, &holder("gw-1")).unwrap();
    assert!(matches!(revoke::revoke(&net.pki, &holder("gw-1")), Err(pki::PkiError::NothingToRevoke(_))));
    net.send(&gw1, &sightings).await.expect("in force only after the reload");
    assert_eq!(net.collector.reload_revocation_lists().await.unwrap(), 2);
    assert!(net.send(&gw1, &sightings).await.is_err(), "revoked on reload, still accepted");
    // A broken list on reload is refused, and the revocations in force stay.
    std::fs::write(&crl, "not a list").unwrap();
    let err = net.collector.reload_revocation_lists().await.unwrap_err();
    assert!(format!("{err:#}").contains("not a CRL"), "{err:#}");
    assert!(net.send(&gw1, &sightings).await.is_err() && net.send(&gw2, &sightings).await.is_err());
    let listed = pki::register::read(&net.pki).unwrap();
    assert_eq!(listed.iter().filter(|i| i.revoked.is_some()).count(), 2, "{listed:?}");
}

/// A Report stream whose message is not a protobuf `SightingBatch` ends with an error status,
/// not OK. Sent with curl (an independent HTTP/2 client): one gRPC frame of garbage.
#[tokio::test]
async fn an_undecodable_report_stream_ends_with_an_error_status() {
    let net = Network::start().await.unwrap();
    let agent = net.issue("umc-noord", Role::Agent, "gw-1");
    let garbage = [0xffu8, 0xff, 0xff, 0xff, 0xff];
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(garbage.len() as u32).to_be_bytes());
    frame.extend_from_slice(&garbage);
    let body = net.dir.path().join("frame.bin");
    std::fs::write(&body, &frame).unwrap();
    let url = format!("{}/zdn.v1.SightingService/Report", net.url.replace("127.0.0.1", "localhost"));
    let out = tokio::process::Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--http2-prior-knowledge",
            "--max-time",
            "20",
            "--dump-header",
            "-",
        ])
        .args(["--output", "/dev/null", "--cacert"])
        .arg(net.pki.join("collector/ca.pem"))
        .arg("--cert")
        .arg(agent.join("cert.pem"))
        .arg("--key")
        .arg(agent.join("key.pem"))
        .args(["-H", "content-type: application/grpc", "-H", "te: trailers", "--data-binary"])
        .arg(format!("@{}", body.display()))
        .arg(url)
        .output()
        .await
        .expect("curl is installed");
    let headers = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    let status = headers
        .lines()
        .find_map(|l| l.strip_prefix("grpc-status:"))
        .unwrap_or_else(|| panic!("no grpc-status: {headers}\n{}", String::from_utf8_lossy(&out.stderr)));
    assert_ne!(status.trim(), "0", "an undecodable stream ended OK:\n{headers}");
}

/// A call refused by participant scope (a participant analyst asking for another
/// institution, or for a CERT-only change) is on record as refused, not as the plain call.
#[tokio::test]
async fn refusals_by_participant_scope_are_audited_as_refused() {
    let net = Network::start().await.unwrap();
    let soc = net.issue("umc-noord", Role::Analyst, "soc");
    let calls: [&[&str]; 4] = [
        &["sightings", "--participant", "ggz-oost"],
        &["hosts", "--participant", "ggz-oost"],
        &["export", "csv", "--participant", "ggz-oost"],
        &["indicators", "false-positive", "evil.example", "--reason", "x"],
    ];
    for args in calls {
        let err = net.zdn(Some(&soc), args).await.unwrap_err();
        let status = err.downcast_ref::<tonic::Status>().unwrap_or_else(|| panic!("{args:?}: {err}"));
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{args:?}: {status}");
    }
    net.zdn(Some(&soc), &["sightings"]).await.unwrap();
    let admin = net.issue(CERT, Role::Admin, "root");
    let audit = net.zdn_json(&admin, &["audit", "--limit", "100"]).await.unwrap();
    let mut actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["participant"] == "umc-noord")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    actions.sort_unstable();
    assert_eq!(
        actions,
        [
            "list_sightings",
            "refused:export_sightings",
            "refused:list_sightings",
            "refused:list_suspect_hosts",
            "refused:mark_false_positive"
        ],
        "{audit}"
    );
}
