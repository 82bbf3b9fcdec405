//! Delivery: outages, crashes, internal addresses, false-positive storms.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn collector_down_for_the_whole_capture_then_started_gets_every_sighting_once() {
    let site = Site::new();
    let pcap = site.path("hosts.pcap");
    write_storm(&pcap, 300, 600, 1000).unwrap(); // 300 hosts, each twice: a first hit and a repeat
    let mut agent = Agent::start(&site.agent_config("agent.toml", &pcap, ""), site.path("agent.log"));
    agent.wait_log("capture files read", LONG);
    agent.wait_log("collector unreachable", LONG);
    assert!(site.stored().is_empty());
    assert_eq!(spooled_ids(&site.path("agent-state")).len(), 600, "300 first hits + 300 repeats wait");

    let collector = site.start_collector().await;
    site.wait_stored(600, LONG);
    // An empty spool means every batch was acknowledged after its commit: nothing more can
    // arrive, so the count is final.
    wait_spool_empty(&site.path("agent-state"));
    let rows = site.stored();
    assert_eq!(rows.len(), 600, "each sighting stored once");
    assert_eq!(rows.iter().map(|r| r.2).sum::<u64>(), 600, "every packet counted once");
    let hosts: std::collections::HashSet<&String> = rows.iter().map(|r| &r.1).collect();
    assert_eq!(hosts.len(), 300);
    assert!(agent.stop().success());
    collector.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_killed_mid_delivery_loses_nothing_acknowledged_and_duplicates_nothing() {
    let site = Site::new();
    let pcap = site.path("hosts.pcap");
    write_storm(&pcap, 20_000, 20_000, 100_000).unwrap(); // 20,000 distinct first hits
    let collector = site.start_collector().await;
    let config = site.agent_config("agent.toml", &pcap, "");
    let agent = Agent::start(&config, site.path("agent.log"));
    site.wait_stored(1, LONG);
    agent.kill9();
    let stored_at_kill: std::collections::HashSet<String> = site.stored().into_iter().map(|r| r.0).collect();
    let spooled_at_kill: std::collections::HashSet<String> =
        spooled_ids(&site.path("agent-state")).into_iter().collect();
    assert!(
        stored_at_kill.len() < 20_000,
        "the kill came after everything was delivered; the test proves nothing"
    );
    eprintln!("at kill: {} stored, {} in the spool", stored_at_kill.len(), spooled_at_kill.len());

    // Restart on a capture without hits: only the spool has something to say.
    let empty = site.path("empty.pcap");
    write_storm(&empty, 1, 0, 1).unwrap();
    let config = site.agent_config("agent2.toml", &empty, "");
    let agent = Agent::start(&config, site.path("agent2.log"));
    let expected: std::collections::HashSet<String> =
        stored_at_kill.union(&spooled_at_kill).cloned().collect();
    site.wait_stored(expected.len(), LONG);
    wait_spool_empty(&site.path("agent-state"));
    let rows = site.stored();
    let ids: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let unique: std::collections::HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(ids.len(), unique.len());
    assert_eq!(unique, expected, "stored = stored before the kill + what the spool held");
    let hosts: std::collections::HashSet<String> = rows.into_iter().map(|r| r.1).collect();
    assert_eq!(hosts.len(), expected.len(), "no host's first hit stored twice");
    assert!(agent.stop().success());
    assert!(spooled_ids(&site.path("agent-state")).is_empty());
    collector.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn internal_addresses_stay_inside_unless_the_participant_opts_in() {
    let site = Site::new();
    let pcap = site.path("hosts.pcap");
    write_storm(&pcap, 40, 40, 1000).unwrap();
    let collector = site.start_collector().await;
    let alerts = site.path("alerts.jsonl");
    let extra = format!("[alerts]\nlog = \"{}\"\n", alerts.display());
    let agent = Agent::start(&site.agent_config("agent.toml", &pcap, &extra), site.path("agent.log"));
    site.wait_stored(40, LONG);
    assert!(agent.stop().success());

    let internal: Vec<String> = (0..40).map(|i| storm_host(i).to_string()).collect();
    let everything = site.everything_stored();
    for ip in &internal {
        assert!(!everything.contains(ip.as_str()), "{ip} reached the collector's database");
    }
    assert!(site.stored().iter().all(|r| r.1.starts_with("h-")), "pseudonyms only");
    // The participant's own alert log has the real addresses, in ECS fields.
    let log = std::fs::read_to_string(&alerts).unwrap();
    let first: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert_eq!(first["event"]["kind"], "alert");
    assert_eq!(first["destination"]["ip"], STORM_TARGET.to_string());
    assert!(internal.contains(&first["source"]["ip"].as_str().unwrap().to_owned()), "{first}");
    assert!(first["zdn"]["host_pseudonym"].as_str().unwrap().starts_with("h-"));

    // Opted in: the addresses are what the participant chose to share.
    let pcap2 = site.path("more.pcap");
    write_storm(&pcap2, 45, 45, 1000).unwrap(); // hosts 0..45: five new ones, new sightings for all
    let agent = Agent::start(
        &site.agent_config("agent2.toml", &pcap2, "share_internal_addresses = true\n"),
        site.path("agent2.log"),
    );
    let rows = site.wait_stored(85, LONG);
    assert!(agent.stop().success());
    assert_eq!(rows.iter().filter(|r| internal.contains(&r.1) || r.1.starts_with("10.")).count(), 45);
    collector.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_false_positive_storm_is_aggregated_and_held_back_in_flat_memory() {
    let site = Site::new();
    let collector = site.start_collector().await;
    let mut peaks = Vec::new();
    let started = Instant::now();
    for (run, packets) in [(1u32, 200_000u32), (2, 1_000_000)] {
        let pcap = site.path(&format!("storm{run}.pcap"));
        // 100k packets/s of packet time from 2,000 hosts, every one a hit.
        write_storm(&pcap, 2_000, packets, 100_000).unwrap();
        let extra = "[rate_limit]\nper_indicator_per_minute = 100\noverall_per_second = 1000\n";
        let config = site.agent_config(&format!("storm{run}.toml"), &pcap, extra);
        let mut agent = Agent::start(&config, site.path(&format!("storm{run}.log")));
        let pid = agent.child.id();
        let mut peak_anon_kb = 0u64;
        let start = Instant::now();
        while !agent.log().contains("capture files read") {
            assert!(start.elapsed() < LONG, "storm not processed:\n{}", agent.log());
            peak_anon_kb = peak_anon_kb.max(rss_anon_kb(pid));
            std::thread::sleep(Duration::from_millis(20));
        }
        agent.wait_log("capture files read", LONG);
        let status = agent.stop();
        assert!(status.success());
        let log = std::fs::read_to_string(site.path(&format!("storm{run}.log"))).unwrap();
        let stopped = log
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["fields"]["message"] == "stopped")
            .expect("a final line with the counters");
        let held_back = stopped["fields"]["held_back"].as_u64().unwrap();
        let hits = stopped["fields"]["hits"].as_u64().unwrap();
        assert_eq!(hits, u64::from(packets), "every packet was a hit");
        assert!(held_back > 0, "2,000 hosts' sightings exceed 100/min: {stopped}");
        eprintln!("storm of {packets}: peak anonymous RSS {peak_anon_kb} KiB, held back {held_back}");
        // The last heartbeat told the collector: the fleet view shows what was held back.
        let fleet = site.fleet();
        assert_eq!((fleet.0, fleet.1), (u64::from(packets), held_back), "packets seen and held back");
        peaks.push(peak_anon_kb);
    }
    // Five times the packets, the same memory: nothing grows per packet.
    assert!(peaks[1] < peaks[0] + 16 * 1024, "anonymous memory grew with the storm: {peaks:?} KiB");
    // What reached the collector is what the limit lets through: each run's agent starts with
    // a burst of 100, then 100 per minute.
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    let allowed = 2 * 100 + (minutes * 100.0).ceil() as usize + 2;
    let rows = site.stored();
    assert!(rows.len() <= allowed, "{} sightings stored, at most {allowed} allowed", rows.len());
    collector.stop().await.unwrap();
}

/// Current anonymous resident memory of a process, KiB (0 once it is gone).
fn rss_anon_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_match_on_a_very_long_url_is_reported_cut_to_the_limit_not_lost() {
    use zdn_proto::limits::{MAX_VALUE, TRUNCATED};
    let site = Site::new();
    std::fs::write(site.path("local.txt"), "http://c2.evil.example/gate.php\n").unwrap();
    // A 3 KB query string: the match is on the URL, the observed value is longer than the
    // contract allows.
    let request = format!("GET /gate.php?id={} HTTP/1.1\r\nHost: c2.evil.example\r\n\r\n", "a".repeat(3_000));
    let pcap = site.path("long-url.pcap");
    let (host, server) = ("10.0.0.5".parse().unwrap(), "192.0.2.80".parse().unwrap());
    zdn_sample_traffic::write_tcp_request(&pcap, host, server, 80, request.as_bytes()).unwrap();
    let collector = site.start_collector().await;
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let extra = format!("[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n");
    let mut agent = Agent::start(&site.agent_config("agent.toml", &pcap, &extra), site.path("agent.log"));
    agent.wait_log("capture files read", LONG);
    site.wait_stored(1, LONG);
    let conn = rusqlite::Connection::open(site.path("collector/zdn.sqlite")).unwrap();
    let (indicator, observed): (String, String) = conn
        .query_row("SELECT indicator, observed FROM sightings", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    assert_eq!(indicator, "c2.evil.example/gate.php");
    assert!(observed.contains("c2.evil.example/gate.php?id=aaa"), "{observed}");
    assert!(observed.ends_with(TRUNCATED) && observed.len() <= MAX_VALUE, "{} bytes", observed.len());
    assert_eq!(metric(&scrape(metrics_port), "zdn_agent_sightings_truncated_total"), 1);
    assert!(agent.stop().success());
    collector.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_over_its_ingest_rate_waits_on_its_connection_instead_of_reconnecting() {
    let site = Site::new();
    let pcap = site.path("hosts.pcap");
    write_storm(&pcap, 40, 40, 1000).unwrap(); // 40 distinct first hits
    let collector = site
        .start_collector_configured(&[], |c| {
            c.ingest.per_agent_sightings_per_second = 10;
            c.ingest.per_agent_burst = 10;
            c.max_batch_sightings = 10;
        })
        .await;
    // Batches of 10 at 10 a second: several refusals with retry-after before all are in.
    let config = site.agent_config("agent.toml", &pcap, "");
    let text = std::fs::read_to_string(&config).unwrap().replace("batch_size = 50", "batch_size = 10");
    std::fs::write(&config, text).unwrap();
    let mut agent = Agent::start(&config, site.path("agent.log"));
    agent.wait_log("collector asked us to wait", LONG);
    site.wait_stored(40, LONG);
    let refusals = agent.log().matches("collector asked us to wait").count();
    let connections = collector.stats.accepted.load(std::sync::atomic::Ordering::Relaxed);
    // One for delivery, one for heartbeats: not one more per refusal.
    assert!(connections <= 2, "{connections} connections for {refusals} refusals:\n{}", agent.log());
    assert!(agent.stop().success());
    collector.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_agent_does_not_read_its_capture_files_again() {
    let site = Site::new();
    let pcap = site.path("hosts.pcap");
    write_storm(&pcap, 30, 30, 1000).unwrap();
    let collector = site.start_collector().await;
    let config = site.agent_config("agent.toml", &pcap, "");
    let mut agent = Agent::start(&config, site.path("agent.log"));
    agent.wait_log("capture files read", LONG);
    site.wait_stored(30, LONG);
    assert!(agent.stop().success());

    let mut again = Agent::start(&config, site.path("agent-2.log"));
    again.wait_log("capture files read", LONG);
    assert!(again.log().contains("capture file read before (unchanged): skipped"), "{}", again.log());
    // The files are spooled before "capture files read": a second reading would be in the
    // spool now, or (acknowledged and deleted) already stored.
    assert!(spooled_ids(&site.path("agent-state")).is_empty(), "read again into the spool");
    assert_eq!(site.stored().len(), 30, "each sighting stored once");
    assert!(again.stop().success());
    collector.stop().await.unwrap();
}
