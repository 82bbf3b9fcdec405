//! `zdn-agent run` as a process against a real collector over mutual TLS on loopback: outages,
//! crashes, privacy of internal addresses, tampered indicator updates, false-positive storms.
//!
//! The agent is the real binary (so it can be killed with SIGKILL); the collector runs in this
//! test's process from the `zdn-collector` library, on a fixed loopback port so it can be
//! started late and restarted. What the collector stored is read from its SQLite file.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use zdn_agent::sample::{STORM_TARGET, storm_host, write_storm};
use zdn_collector::config::{Config, ConsoleConfig};
use zdn_collector::server::{self, RunningCollector};
use zdn_indicators::parse_plain;
use zdn_indicators::signing::Publisher;
use zdn_proto::v1::{
    self,
    indicator_service_server::{IndicatorService, IndicatorServiceServer},
};
use zdn_transport::Role;

/// A PKI, a collector configuration on a reserved port, and an agent credential.
struct Site {
    dir: TempDir,
    port: u16,
    agent_identity: PathBuf,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        zdn_collector::pki::init(&pki, &[]).unwrap();
        let agent_identity =
            zdn_collector::pki::issue(&pki, "umc-noord", Role::Agent, Some("gw-1"), None).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        std::fs::write(dir.path().join("local.txt"), format!("{STORM_TARGET}\n")).unwrap();
        Site { dir, port, agent_identity }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    async fn start_collector(&self) -> RunningCollector {
        self.start_collector_publishing(&[]).await
    }

    /// A collector publishing `indicators` (signed with `pki/publish.key`).
    async fn start_collector_publishing(&self, indicators: &[PathBuf]) -> RunningCollector {
        let config = Config {
            listen: format!("127.0.0.1:{}", self.port).parse().unwrap(),
            data_dir: self.path("collector"),
            identity: Some(self.path("pki/collector")),
            indicators: indicators.to_vec(),
            publish_key: Some(self.path("pki/publish.key")),
            console: ConsoleConfig { enabled: false, ..ConsoleConfig::default() },
            ..Config::default()
        };
        server::start(config, false).await.unwrap()
    }

    /// Writes an agent configuration: the storm target as a local indicator, `pcap` as input,
    /// limits high enough not to interfere unless `extra` says otherwise.
    fn agent_config(&self, name: &str, pcap: &Path, extra: &str) -> PathBuf {
        let text = format!(
            r#"state_dir = "{state}"
home_net = ["10.0.0.0/8"]
{extra_top}
[capture]
pcap = ["{pcap}"]
[collector]
url = "https://localhost:{port}"
identity = "{identity}"
batch_size = 50
heartbeat_seconds = 1
reconnect_max_seconds = 1
[indicators]
sync = false
local = ["{local}"]
{limits}
{extra}"#,
            state = self.path("agent-state").display(),
            pcap = pcap.display(),
            port = self.port,
            identity = self.agent_identity.display(),
            local = self.path("local.txt").display(),
            limits = if extra.contains("[rate_limit]") {
                ""
            } else {
                "[rate_limit]\nper_indicator_per_minute = 1000000\noverall_per_second = 1000000"
            },
            extra_top = if extra.contains("share_internal_addresses") { extra } else { "" },
            extra = if extra.contains("share_internal_addresses") { "" } else { extra },
        );
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// (id, src, count) of every sighting the collector stored.
    fn stored(&self) -> Vec<(String, String, u64)> {
        let path = self.path("collector/zdn.sqlite");
        if !path.exists() {
            return Vec::new();
        }
        let conn =
            rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let mut stmt = conn.prepare("SELECT id, src, count FROM sightings").unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect()
    }

    /// (packets seen, sightings held back) of the agent, as the collector's fleet table has them.
    fn fleet(&self) -> (u64, u64) {
        let conn = rusqlite::Connection::open(self.path("collector/zdn.sqlite")).unwrap();
        conn.query_row("SELECT packets_seen, sightings_held_back FROM agents", [], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
        })
        .unwrap()
    }

    /// Every text value in every table of the collector's database, for leak checks.
    fn everything_stored(&self) -> String {
        let conn = rusqlite::Connection::open(self.path("collector/zdn.sqlite")).unwrap();
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let mut all = String::new();
        for table in tables {
            let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
            let columns = stmt.column_count();
            let mut rows = stmt.query([]).unwrap();
            while let Some(row) = rows.next().unwrap() {
                for i in 0..columns {
                    if let Ok(text) = row.get::<_, String>(i) {
                        all.push_str(&text);
                        all.push('\n');
                    }
                }
            }
        }
        all
    }

    /// Waits until the collector stored `n` sightings (or fails after `limit`).
    fn wait_stored(&self, n: usize, limit: Duration) -> Vec<(String, String, u64)> {
        let start = Instant::now();
        loop {
            let rows = self.stored();
            if rows.len() >= n {
                return rows;
            }
            assert!(start.elapsed() < limit, "only {} of {n} sightings stored after {limit:?}", rows.len());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A running `zdn-agent run`, killed when dropped; its JSON log goes to a file.
struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    fn start(config: &Path, log: PathBuf) -> Agent {
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_zdn-agent"))
            .args(["--log-format", "json", "run", "--config", config.to_str().unwrap()])
            .env("ZDN_LOG", "info")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        Agent { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `text`.
    fn wait_log(&mut self, text: &str, limit: Duration) {
        let start = Instant::now();
        while !self.log().contains(text) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("agent exited ({status}) before logging {text:?}:\n{}", self.log());
            }
            assert!(start.elapsed() < limit, "agent did not log {text:?} within {limit:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, and the exit status within 30 s.
    fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "agent ignored SIGTERM:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill9(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Ids queued in an agent's spool (read beside the agent, as SQLite allows).
fn spooled_ids(state_dir: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(state_dir.join("spool.sqlite")).unwrap();
    let ids: Vec<String> = conn
        .prepare("SELECT id FROM queue")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    ids
}

const LONG: Duration = Duration::from_secs(60);

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
    let rows = site.wait_stored(600, LONG);
    std::thread::sleep(Duration::from_millis(500)); // anything extra would arrive now
    let rows_after = site.stored();
    assert_eq!(rows_after.len(), 600, "each sighting stored once");
    assert_eq!(rows.iter().map(|r| r.2).sum::<u64>(), 600, "every packet counted once");
    let hosts: std::collections::HashSet<&String> = rows.iter().map(|r| &r.1).collect();
    assert_eq!(hosts.len(), 300);
    let start = Instant::now();
    while !spooled_ids(&site.path("agent-state")).is_empty() {
        assert!(start.elapsed() < LONG, "spool not emptied after acknowledgements");
        std::thread::sleep(Duration::from_millis(100));
    }
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
    let rows = site.wait_stored(expected.len(), LONG);
    std::thread::sleep(Duration::from_millis(500));
    let ids: Vec<String> = site.stored().into_iter().map(|r| r.0).collect();
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

/// `GET /metrics` over a plain TCP connection; the body.
fn scrape(port: u16) -> String {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"), "{response}");
    response.split_once("\r\n\r\n").unwrap().1.to_owned()
}

fn metric(body: &str, name: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{name} not in:\n{body}"))
        .parse()
        .unwrap()
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

#[test]
fn check_config_reports_what_it_checked_and_what_is_wrong() {
    let site = Site::new();
    let pcap = site.path("hosts.pcap");
    write_storm(&pcap, 1, 1, 1).unwrap();
    let config = site.agent_config("agent.toml", &pcap, "");
    let check = |config: &Path| {
        Command::new(env!("CARGO_BIN_EXE_zdn-agent"))
            .args(["check-config", "--config", config.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let out = check(&config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("participant umc-noord (gw-1)")
            && stdout.contains("1 indicators, 0 duplicates, 0 rejected"),
        "{stdout}"
    );
    assert!(stdout.contains("configuration ok"), "{stdout}");

    let text = std::fs::read_to_string(&config).unwrap().replace("hosts.pcap", "missing.pcap");
    std::fs::write(site.path("bad.toml"), text).unwrap();
    let out = check(&site.path("bad.toml"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.pcap is not a file"));
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
