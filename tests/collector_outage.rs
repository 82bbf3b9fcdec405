//! The real `zdn-collector` process killed with SIGKILL while an agent streams to it, then
//! restarted: the agent (its service code, `zdn_agent::service::run`, in this process)
//! reconnects with backoff, resends what was not acknowledged, and the store ends up with every
//! sighting exactly once.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use zdn_agent::config::AgentConfig;
use zdn_agent::service::Controls;
use zdn_sample_traffic::{STORM_TARGET, write_storm};
use zdn_transport::Role;

struct Collector(Child);

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `zdn-collector serve` and waits until it listens.
fn serve(config: &Path) -> Collector {
    let child = Command::new(zdn_integration_tests::workspace_binary("zdn-collector", "zdn-collector"))
        .args(["--log-format", "json", "serve", "--config", config.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut collector = Collector(child); // killed and waited for on drop, whatever happens
    let mut lines = BufReader::new(collector.0.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.contains("collector listening") {
            std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
            return collector;
        }
    }
    panic!("collector exited without listening");
}

/// (id, src) of the stored sightings.
fn stored(db: &Path) -> Vec<(String, String)> {
    if !db.exists() {
        return Vec::new();
    }
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut stmt = conn.prepare("SELECT id, src FROM sightings").unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn collector_killed_mid_stream_and_restarted_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    zdn_collector::pki::init(&pki, &[]).unwrap();
    let identity = zdn_collector::pki::issue(
        &pki,
        &zdn_collector::pki::Request::new("umc-noord", Role::Agent, Some("gw-1")),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = {:?}\nidentity = {:?}\n[console]\nenabled = false\n",
            dir.path().join("data"),
            pki.join("collector")
        ),
    )
    .unwrap();
    let db = dir.path().join("data/zdn.sqlite");

    const HOSTS: u32 = 20_000;
    let pcap = dir.path().join("hosts.pcap");
    write_storm(&pcap, HOSTS, HOSTS, 100_000).unwrap(); // one first hit per host
    let local = dir.path().join("local.txt");
    std::fs::write(&local, format!("{STORM_TARGET}\n")).unwrap();
    let mut agent = AgentConfig { state_dir: dir.path().join("agent"), ..AgentConfig::default() };
    agent.home_net = vec!["10.0.0.0/8".parse().unwrap()];
    agent.capture.pcap = vec![pcap];
    agent.collector.url = format!("https://localhost:{port}");
    agent.collector.identity = identity;
    agent.collector.batch_size = 100;
    agent.collector.reconnect_max_seconds = 1;
    agent.indicators.sync = false;
    agent.indicators.local = vec![local];
    agent.rate_limit.per_indicator_per_minute = 1_000_000;
    agent.rate_limit.overall_per_second = 1_000_000;

    let collector = serve(&config);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let (_reload_tx, reload) = tokio::sync::mpsc::channel(1);
    let running = tokio::spawn(zdn_agent::service::run(agent, Controls { stop, reload }));

    let start = Instant::now();
    while stored(&db).len() < 500 {
        assert!(start.elapsed() < Duration::from_secs(60), "nothing arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(collector); // SIGKILL mid-stream
    let at_kill = stored(&db).len();
    assert!(
        at_kill < HOSTS as usize,
        "the kill came after everything was delivered; the test proves nothing"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await; // the agent retries against nothing
    let _collector = serve(&config);

    let start = Instant::now();
    let rows = loop {
        let rows = stored(&db);
        if rows.len() >= HOSTS as usize {
            break rows;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "{} of {HOSTS} stored after restart", rows.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // An empty spool: every batch acknowledged after its commit, nothing more to arrive.
    let spool = dir.path().join("agent/spool.sqlite");
    let queued = || {
        let conn = rusqlite::Connection::open(&spool).unwrap();
        conn.query_row("SELECT count(*) FROM queue", [], |r| r.get::<_, i64>(0)).unwrap()
    };
    while queued() > 0 {
        assert!(start.elapsed() < Duration::from_secs(120), "spool not emptied after acknowledgements");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stored(&db).len(), HOSTS as usize, "nothing stored twice");
    let hosts: std::collections::HashSet<&String> = rows.iter().map(|r| &r.1).collect();
    assert_eq!(hosts.len(), HOSTS as usize, "every host's sighting once: no loss, no duplicate");
    eprintln!("killed with {at_kill} of {HOSTS} stored; all {HOSTS} after the restart");
    stop_tx.send_replace(true);
    running.await.unwrap().unwrap();
}
