//! `zdn-agent run` as a process against a real collector over mutual TLS on loopback: outages,
//! crashes, privacy of internal addresses, tampered indicator updates, false-positive storms.
//!
//! The agent is the real binary (so it can be killed with SIGKILL); the collector runs in this
//! test's process from the `zdn-collector` library, on a fixed loopback port so it can be
//! started late and restarted. What the collector stored is read from its SQLite file.
//!
//! Layout: the collector site, the agent process and helpers here; the tests in `delivery`
//! (outages, crashes, privacy, storms) and `indicators` (signed updates, reloads, metrics).

mod delivery;
mod indicators;
mod metrics;
mod retro;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use zdn_collector::config::{Config, ConsoleConfig};
use zdn_collector::server::{self, RunningCollector};
use zdn_indicators::parse_plain;
use zdn_indicators::signing::Publisher;
use zdn_proto::v1::{
    self,
    indicator_service_server::{IndicatorService, IndicatorServiceServer},
};
use zdn_sample_traffic::{STORM_TARGET, storm_host, write_storm};
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
        let agent_identity = zdn_collector::pki::issue(
            &pki,
            &zdn_collector::pki::Request::new("umc-noord", Role::Agent, Some("gw-1")),
        )
        .unwrap();
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
        self.start_collector_configured(indicators, |_| {}).await
    }

    /// A collector publishing `indicators`, its configuration changed by `adjust` first.
    async fn start_collector_configured(
        &self,
        indicators: &[PathBuf],
        adjust: impl FnOnce(&mut Config),
    ) -> RunningCollector {
        let mut config = Config {
            listen: format!("127.0.0.1:{}", self.port).parse().unwrap(),
            data_dir: self.path("collector"),
            identity: Some(self.path("pki/collector")),
            indicators: indicators.to_vec(),
            publish_key: Some(self.path("pki/publish.key")),
            console: ConsoleConfig { enabled: false, ..ConsoleConfig::default() },
            ..Config::default()
        };
        adjust(&mut config);
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
        let tables = text_column(&conn, "SELECT name FROM sqlite_master WHERE type = 'table'");
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
        let child = Command::new(zdn_integration_tests::agent_binary())
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
    text_column(&conn, "SELECT id FROM queue")
}

/// Waits until the agent's spool is empty: every sighting acknowledged, nothing left to send.
fn wait_spool_empty(state_dir: &Path) {
    let start = Instant::now();
    while !spooled_ids(state_dir).is_empty() {
        assert!(start.elapsed() < LONG, "spool not emptied after acknowledgements");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The first column of every row `sql` selects, as text.
fn text_column(conn: &rusqlite::Connection, sql: &str) -> Vec<String> {
    conn.prepare(sql).unwrap().query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}

const LONG: Duration = Duration::from_secs(60);

/// `GET /metrics` over a plain TCP connection; the body.
/// The body of `GET /metrics` on `port`, after checking it is served as the classic text
/// format its content says it is.
fn scrape(port: u16) -> String {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"), "{response}");
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
    assert!(!body.contains("# EOF"), "no OpenMetrics marker in the classic format");
    body.to_owned()
}

/// Prometheus's own linter (`promtool check metrics`, Debian package `prometheus`) finds
/// nothing wrong with `body`. Without promtool: a loud skip, or a failure where
/// `ZDN_REQUIRE_PROMTOOL=1` (`.ci/run`).
fn assert_promtool_accepts(test: &str, body: &str) {
    use std::io::Write;
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let Ok(mut promtool) = spawned else {
        return zdn_loud_skip::skip(test, "promtool (apt-get install prometheus)", "ZDN_REQUIRE_PROMTOOL");
    };
    promtool.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics:\n{said}");
}

fn metric(body: &str, name: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{name} not in:\n{body}"))
        .parse()
        .unwrap()
}

#[test]
fn check_config_reports_what_it_checked_and_what_is_wrong() {
    let site = Site::new();
    let pcap = site.path("hosts.pcap");
    write_storm(&pcap, 1, 1, 1).unwrap();
    let config = site.agent_config("agent.toml", &pcap, "");
    let check = |config: &Path| {
        Command::new(zdn_integration_tests::agent_binary())
            .args(["check-config", "--config", config.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let out = check(&config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("participant umc-noord (gw-1)")
            && stdout.contains(
                "1 indicators read, 0 duplicates (0 within a source, 0 across sources), 0 rejected"
            ),
        "{stdout}"
    );
    assert!(stdout.contains("configuration ok"), "{stdout}");

    let text = std::fs::read_to_string(&config).unwrap().replace("hosts.pcap", "missing.pcap");
    std::fs::write(site.path("bad.toml"), text).unwrap();
    let out = check(&site.path("bad.toml"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.pcap is not a file"));
}
