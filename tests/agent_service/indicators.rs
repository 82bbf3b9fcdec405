//! Indicator sets on a running agent: tampered and new versions from the collector, local
//! lists reloaded on SIGHUP, and the metrics that count it all.

use super::*;

/// An indicator publisher that serves fixed signed sets, one after the other on each stream —
/// here, a genuine version 1 and then a version 2 altered in transit.
struct FixedPublisher {
    sets: Vec<(u64, Vec<u8>)>,
}

#[tonic::async_trait]
impl IndicatorService for FixedPublisher {
    type SyncStream =
        std::pin::Pin<Box<dyn futures::Stream<Item = Result<v1::IndicatorUpdate, tonic::Status>> + Send>>;

    async fn sync(
        &self,
        _: tonic::Request<v1::SyncRequest>,
    ) -> Result<tonic::Response<Self::SyncStream>, tonic::Status> {
        let updates: Vec<Result<v1::IndicatorUpdate, tonic::Status>> = self
            .sets
            .iter()
            .map(|(version, bytes)| {
                Ok(v1::IndicatorUpdate {
                    version: *version,
                    signed_set_chunk: bytes.clone(),
                    signed_set_offset: 0,
                    signed_set_size: bytes.len() as u64,
                    ..Default::default()
                })
            })
            .collect();
        let stream = futures::StreamExt::chain(futures::stream::iter(updates), futures::stream::pending());
        Ok(tonic::Response::new(Box::pin(stream)))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_update_is_refused_and_the_last_good_set_keeps_matching() {
    let site = Site::new();
    let publisher = Publisher::load_or_create(&site.path("publish.key")).unwrap();
    let set = |text: &str| zdn_indicators::IndicatorSet::new(parse_plain("cert", text).indicators);
    let v1 = publisher.sign(&set(&format!("{STORM_TARGET}\n")), 1);
    let mut v2 = publisher.sign(&set("192.0.2.1\n192.0.2.2\n"), 2);
    let last = v2.len() - 1;
    v2[last] ^= 0x01; // one bit changed in transit
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(IndicatorServiceServer::new(FixedPublisher { sets: vec![(1, v1), (2, v2)] }))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let state = site.path("agent-state");
    let config = |url: &str, pcap: &Path| {
        format!(
            "state_dir = \"{}\"\n[capture]\npcap = [\"{}\"]\n[collector]\nurl = \"{url}\"\nreconnect_max_seconds = 1\n\
             [indicators]\npinned_key = \"{}\"\n",
            state.display(),
            pcap.display(),
            publisher.public_hex()
        )
    };
    let empty = site.path("empty.pcap");
    write_storm(&empty, 1, 0, 1).unwrap();
    std::fs::write(site.path("sync.toml"), config(&format!("http://{addr}"), &empty)).unwrap();
    let mut agent = Agent::start(&site.path("sync.toml"), site.path("sync.log"));
    agent.wait_log("installed a new indicator set", LONG);
    agent.wait_log("indicator update refused", LONG);
    agent.wait_log("live indicator set swapped", LONG);
    assert!(agent.stop().success());
    server.abort();
    let installed = std::fs::read(state.join("indicators.zdn")).unwrap();
    let (kept, version) = zdn_indicators::signing::verify(
        &installed,
        &zdn_indicators::signing::parse_public_key(&publisher.public_hex()).unwrap(),
    )
    .unwrap();
    assert_eq!((version, kept.len()), (1, 1), "the tampered version 2 was not installed");

    // Restart with the collector unreachable: the persisted set matches the traffic.
    let pcap = site.path("hits.pcap");
    write_storm(&pcap, 5, 5, 1000).unwrap();
    let dead = format!("http://127.0.0.1:{}", site.port);
    std::fs::write(site.path("offline.toml"), config(&dead, &pcap)).unwrap();
    let mut agent = Agent::start(&site.path("offline.toml"), site.path("offline.log"));
    agent.wait_log("capture files read", LONG);
    assert!(agent.log().contains("\"version\":1"), "started from the persisted version 1");
    assert!(agent.stop().success());
    assert_eq!(spooled_ids(&state).len(), 5, "five hosts matched the persisted set's indicator");
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_the_traffic_and_sighup_reloads_local_lists() {
    let site = Site::new();
    let pcap = site.path("hosts.pcap");
    write_storm(&pcap, 10, 30, 1000).unwrap();
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let extra = format!("[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n");
    let config = site.agent_config("agent.toml", &pcap, &extra);
    let mut agent = Agent::start(&config, site.path("agent.log"));
    agent.wait_log("capture files read", LONG);
    let body = scrape(metrics_port);
    assert_promtool_accepts("metrics_count_the_traffic_and_sighup_reloads_local_lists", &body);
    assert_eq!(metric(&body, "zdn_agent_packets_total"), 30);
    assert_eq!(metric(&body, "zdn_agent_hits_total"), 30);
    assert_eq!(metric(&body, "zdn_agent_sightings_spooled_total"), 20, "10 first hits + 10 repeats");
    assert_eq!(metric(&body, "zdn_agent_indicator_set_indicators"), 1);
    for bounded in ["streams_dropped", "datagrams_dropped", "quic_undecryptable", "packets_dropped_kernel"] {
        assert_eq!(metric(&body, &format!("zdn_agent_{bounded}_total")), 0, "{bounded} is reported");
    }

    std::fs::write(site.path("local.txt"), format!("{STORM_TARGET}\nevil.example\n198.51.100.0/24\n"))
        .unwrap();
    let pid = agent.child.id().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    agent.wait_log("live indicator set swapped", LONG);
    assert_eq!(metric(&scrape(metrics_port), "zdn_agent_indicator_set_indicators"), 3);

    // A broken list on reload: refused, the running set stays.
    std::fs::write(site.path("local.txt"), "{\"type\": \"bundle\"").unwrap();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    agent.wait_log("indicator set not rebuilt", LONG);
    assert_eq!(metric(&scrape(metrics_port), "zdn_agent_indicator_set_indicators"), 3);
    assert!(agent.stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_published_while_running_is_swapped_in_without_a_restart() {
    let site = Site::new();
    let cert_list = site.path("cert.txt");
    std::fs::write(&cert_list, format!("{STORM_TARGET}\n")).unwrap();
    let collector = site.start_collector_publishing(std::slice::from_ref(&cert_list)).await;
    let public = Publisher::load_or_create(&site.path("pki/publish.key")).unwrap().public_hex();
    let empty = site.path("empty.pcap");
    write_storm(&empty, 1, 0, 1).unwrap();
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = site.path("agent.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\n[capture]\npcap = [\"{}\"]\n[collector]\nurl = \"https://localhost:{}\"\n\
             identity = \"{}\"\nreconnect_max_seconds = 1\n[indicators]\npinned_key = \"{public}\"\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n",
            site.path("agent-state").display(),
            empty.display(),
            site.port,
            site.agent_identity.display()
        ),
    )
    .unwrap();
    let mut agent = Agent::start(&config, site.path("agent.log"));
    agent.wait_log("live indicator set swapped", LONG);
    let in_force = |version: u64, indicators: u64| {
        let start = Instant::now();
        loop {
            let body = scrape(metrics_port);
            let now = (
                metric(&body, "zdn_agent_indicator_set_version"),
                metric(&body, "zdn_agent_indicator_set_indicators"),
            );
            if now == (version, indicators) {
                return;
            }
            assert!(start.elapsed() < LONG, "agent runs {now:?}, expected ({version}, {indicators})");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let v1 = collector.indicator_version();
    in_force(v1, 1);

    std::fs::write(&cert_list, format!("{STORM_TARGET}\nevil.example\n198.51.100.7\n")).unwrap();
    let v2 = collector.republish_indicators().await.unwrap();
    assert!(v2 > v1);
    in_force(v2, 3); // pushed on the open subscription, verified, installed, swapped
    let installed = std::fs::read(site.path("agent-state/indicators.zdn")).unwrap();
    let pinned = zdn_indicators::signing::parse_public_key(&public).unwrap();
    assert_eq!(zdn_indicators::signing::verify(&installed, &pinned).unwrap().1, v2);
    // The agent held v1, so v2 came as a delta (two added), not as the whole set.
    assert_eq!(metric(&scrape(metrics_port), "zdn_agent_indicator_deltas_applied_total"), 1);

    // One removed: another delta; the installed file is the set the collector signed.
    std::fs::write(
        &cert_list,
        format!(
            "{STORM_TARGET}
evil.example
"
        ),
    )
    .unwrap();
    let v3 = collector.republish_indicators().await.unwrap();
    in_force(v3, 2);
    assert_eq!(metric(&scrape(metrics_port), "zdn_agent_indicator_deltas_applied_total"), 2);
    let installed = std::fs::read(site.path("agent-state/indicators.zdn")).unwrap();
    let (set, version) = zdn_indicators::signing::verify(&installed, &pinned).unwrap();
    assert_eq!(version, v3);
    assert!(
        set.match_ip("198.51.100.7".parse().unwrap()).is_none() && set.match_domain("evil.example").is_some()
    );
    assert!(agent.stop().success());
    collector.stop().await.unwrap();
}
