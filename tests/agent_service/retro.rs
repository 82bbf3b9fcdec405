//! Retro-hunt end to end: three institutions' agents read their traffic while the CERT
//! publishes nothing that matches it; then the collector publishes a domain and a network those
//! hosts contacted. The agents with a history report the past contacts as retro sightings (the
//! right hosts and hours, subdomains and addresses inside the network found), the collector
//! correlates them across institutions, and the agent whose history is off reports nothing.
//! The history files hold none of the destinations in the clear.

use super::*;
use zdn_sample_traffic::demo_sites;

/// An agent of `participant` reading its demo capture, subscribed to the collector's set.
fn agent(site: &Site, participant: &str, history_days: u32, pinned: &str) -> (PathBuf, PathBuf) {
    let demo = demo_sites().into_iter().find(|s| s.participant == participant).unwrap();
    let dir = site.path(participant);
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = demo.write_capture(&dir).unwrap();
    let identity = zdn_collector::pki::issue(
        &site.path("pki"),
        &zdn_collector::pki::Request::new(participant, Role::Agent, Some("gw-1")),
    )
    .unwrap();
    std::fs::write(dir.join("local.txt"), "unrelated.example\n").unwrap();
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {state:?}\nhome_net = [{home:?}]\n[capture]\npcap = [{pcap:?}]\n\
             [collector]\nurl = \"https://localhost:{port}\"\nidentity = {identity:?}\nheartbeat_seconds = 1\n\
             reconnect_max_seconds = 1\n[indicators]\nsync = true\npinned_key = {pinned:?}\nlocal = [{local:?}]\n\
             [history]\nretention_days = {history_days}\n",
            state = dir.join("state"),
            home = demo.home_net,
            port = site.port,
            local = dir.join("local.txt"),
        ),
    )
    .unwrap();
    (config, dir.join("state"))
}

#[tokio::test(flavor = "multi_thread")]
async fn indicators_published_later_find_past_contacts_in_the_agents_history() {
    let site = Site::new();
    let pinned = Publisher::load_or_create(&site.path("pki/publish.key")).unwrap().public_hex();
    let mut agents = Vec::new();
    let mut states = Vec::new();
    for (participant, days) in [("umc-noord", 14), ("ggz-oost", 14), ("ziekenhuis-zuid", 0)] {
        let (config, state) = agent(&site, participant, days, &pinned);
        let mut running = Agent::start(&config, site.path(&format!("{participant}.log")));
        running.wait_log("capture files read", LONG);
        agents.push(running);
        states.push((participant, config, state));
    }
    // Nothing matched while the traffic was read: no collector, and no such indicator.
    let published = site.path("published.txt");
    std::fs::write(&published, "evil-cdn.example\n203.0.113.0/24\n").unwrap();
    let collector = site.start_collector_publishing(&[published]).await;
    for running in &mut agents[..2] {
        running.wait_log("retro-hunt of the newly published indicators", LONG);
    }
    let conn = rusqlite::Connection::open(site.path("collector/zdn.sqlite")).unwrap();
    let started = Instant::now();
    let rows = loop {
        let mut stmt = conn
            .prepare("SELECT participant, indicator, via, src, first_seen, count, retro FROM sightings ORDER BY participant, indicator, first_seen")
            .unwrap();
        let rows: Vec<(String, String, String, String, i64, i64, bool)> = stmt
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let participants: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        if participants.len() == 2 && rows.iter().any(|r| r.1 == "evil-cdn.example") {
            break rows;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no retro sightings within 60 s: {rows:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(rows.iter().all(|r| r.6), "every one marked retro: {rows:?}");
    assert!(rows.iter().all(|r| r.0 != "ziekenhuis-zuid"), "its history is off: {rows:?}");
    assert!(rows.iter().all(|r| r.3.starts_with("h-") && r.3.len() == 18), "pseudonymous hosts: {rows:?}");
    let subjects = |p: &str| -> Vec<&str> {
        let mut s: Vec<&str> = rows.iter().filter(|r| r.0 == p).map(|r| r.1.as_str()).collect();
        s.dedup();
        s
    };
    assert_eq!(
        subjects("umc-noord"),
        ["203.0.113.0/24", "evil-cdn.example"],
        "a subdomain and an address inside"
    );
    assert_eq!(subjects("ggz-oost"), ["203.0.113.0/24"]);
    // The times are the traffic's, to the minute, not the hunt's.
    let demo_epoch_ms = zdn_sample_traffic::demo_epoch_s() as i64 * 1000;
    assert!(rows.iter().all(|r| (r.4 - demo_epoch_ms).abs() < 3 * 3_600_000), "{rows:?} vs {demo_epoch_ms}");
    // Two institutions contacted the network before it was published: an incident.
    let started = Instant::now();
    loop {
        let participants: i64 = conn
            .query_row(
                "SELECT COALESCE(MAX(participant_count), 0) FROM incidents WHERE subject = '203.0.113.0/24'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        if participants == 2 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no retroactive incident");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Every agent heartbeating (a hunt asks the agents that are not stale).
    let started = Instant::now();
    while conn.query_row("SELECT COUNT(*) FROM agents", [], |r| r.get::<_, i64>(0)).unwrap() < 3 {
        assert!(started.elapsed() < Duration::from_secs(30), "the agents did not heartbeat");
        std::thread::sleep(Duration::from_millis(100));
    }
    // An analyst's hunt for a name not published: every agent answers in its heartbeat, the one
    // that contacted it with retro sightings, the one without a history saying so.
    let analyst = zdn_collector::pki::issue(
        &site.path("pki"),
        &zdn_collector::pki::Request::new("z-cert", Role::Analyst, Some("ann")),
    )
    .unwrap();
    let argv = [
        "zdn",
        "--collector",
        &format!("https://localhost:{}", site.port),
        "--identity",
        analyst.to_str().unwrap(),
        "--format",
        "json",
        "hunt",
        "cdn.updates.evil-cdn.example",
        "--wait",
        "30",
    ];
    let cli = <zdn_client::Cli as clap::Parser>::try_parse_from(argv).unwrap();
    let mut out = Vec::new();
    zdn_client::run(cli, &mut out).await.unwrap();
    let answers: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let by_participant =
        |p: &str| answers.as_array().unwrap().iter().find(|a| a["participant"] == p).cloned();
    assert_eq!(answers.as_array().unwrap().len(), 3, "every agent answered: {answers}");
    assert!(by_participant("umc-noord").unwrap()["sightings"].as_u64().unwrap() >= 1, "{answers}");
    assert_eq!(by_participant("ggz-oost").unwrap()["sightings"], 0, "checked, nothing: {answers}");
    assert!(
        by_participant("ziekenhuis-zuid").unwrap()["not_searched"].as_str().unwrap().contains("history off")
    );
    assert!(
        agents[0].log().contains("the CERT asked for a retro-hunt"),
        "the participant's log shows the hunt"
    );
    let started = Instant::now();
    let stored = loop {
        let hunted: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sightings WHERE indicator = 'cdn.updates.evil-cdn.example' AND retro",
                [],
                |r| r.get(0),
            )
            .unwrap();
        if hunted > 0 {
            break conn.query_row("SELECT COUNT(*) FROM sightings", [], |r| r.get::<_, i64>(0)).unwrap()
                as usize;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the hunt's sightings did not arrive");
        std::thread::sleep(Duration::from_millis(200));
    };
    for running in agents {
        assert!(running.stop().success());
    }
    // A hunt repeated (umc-noord restarts without its installed set, installs it again and
    // hunts it whole) stores nothing twice: the same contacts get the same ids.
    let (_, config, umc_state) = &states[0];
    std::fs::remove_file(umc_state.join("indicators.zdn")).unwrap();
    let mut again = Agent::start(config, site.path("umc-noord-again.log"));
    again.wait_log("retro-hunt of the newly published indicators", LONG);
    wait_spool_empty(umc_state);
    assert!(again.stop().success());
    // The history holds no destination in the clear; the disabled one holds nothing.
    for (participant, _, state) in &states {
        let files: Vec<PathBuf> = std::fs::read_dir(state.join("history"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        if *participant == "ziekenhuis-zuid" {
            assert!(files.is_empty(), "{files:?}");
            continue;
        }
        assert!(!files.is_empty(), "{participant} kept its hours");
        for file in files {
            let bytes = std::fs::read(&file).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains("evil-cdn") && !text.contains("example"), "{}", file.display());
            assert!(!bytes.windows(4).any(|w| w == [203, 0, 113, 66]), "{}", file.display());
        }
    }
    let after: i64 = conn.query_row("SELECT COUNT(*) FROM sightings", [], |r| r.get(0)).unwrap();
    assert_eq!(after as usize, stored, "the repeated hunt's sightings were already stored");
    collector.stop().await.unwrap();
}
