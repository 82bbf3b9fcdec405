//! Agent tests that need root, run for real in CI:
//! - live capture as the service runs it: `zdn-agent run` as an unprivileged user holding only
//!   CAP_NET_RAW, capturing with two fanout workers on the loopback interface of a network
//!   namespace this test creates, matching a DNS query sent there — and the same user without the capability: a
//!   clear error;
//! - the spool on a full disk (a tiny tmpfs): refusals counted, nothing queued lost or broken;
//! - real clients in a namespace (dig, openssl s_client, curl against openssl s_server and
//!   Python's http.server): the agent, live on the namespace's loopback, sees their DNS query
//!   names, TLS server names and HTTP hosts; and Chromium, whose ~2 KB ClientHello arrives in
//!   two segments (real MTU, offloads off), read whole.
//!
//! Without root the tests skip, loudly; `ZDN_REQUIRE_ROOT=1` (set by `.ci/run`) turns a skip
//! into a failure.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NOBODY: u32 = 65534;
const NAME: &str = "live-test.evil.example";

fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
}

/// Whether `test` can run here (`ready`); if not, a loud skip saying what it `needs`, or a
/// failure where `ZDN_REQUIRE_ROOT=1` asks for every privileged test to run (`.ci/run`).
fn ready_or_skip(test: &str, ready: bool, needs: &str) -> bool {
    if !ready {
        zdn_loud_skip::skip(test, needs, "ZDN_REQUIRE_ROOT");
    }
    ready
}

/// Whether the test can run here; panics if it must but cannot.
fn root_or_skip(test: &str) -> bool {
    ready_or_skip(test, is_root(), "root (network namespace, setpriv)")
}

/// Whether every one of `tools` is installed (see [`ready_or_skip`]).
fn tools_or_skip(test: &str, tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|tool| {
            let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).output();
            !found.is_ok_and(|f| f.status.success())
        })
        .collect();
    ready_or_skip(test, missing.is_empty(), &format!("{missing:?} (apt-get install them, or run .ci/run)"))
}

/// A network namespace, deleted when dropped.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        // Tests run in parallel threads of one process: the name must differ per test too.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("zdn-live-{}-{n}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns(name);
        run(Command::new("ip").args(["-n", &ns.0, "link", "set", "lo", "up"]));
        ns
    }

    /// `ip netns exec <ns> <args>` in `dir`.
    fn exec(&self, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.0]).args(args).current_dir(dir);
        cmd
    }

    /// `ip netns exec <ns> setpriv <privileges> <program> <args>` as `nobody`.
    fn as_nobody(&self, caps: &[&str], program: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.0, "setpriv"]);
        cmd.args([format!("--reuid={NOBODY}"), format!("--regid={NOBODY}"), "--clear-groups".into()]);
        cmd.args(caps).arg(program).args(args);
        cmd
    }

    /// Sends one DNS query for [`NAME`] to 127.0.0.53 inside the namespace.
    fn send_query(&self) {
        let query = "\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00\
                     \\x09live-test\\x04evil\\x07example\\x00\\x00\\x01\\x00\\x01";
        let script = format!("printf '{query}' > /dev/udp/127.0.0.53/53");
        run(Command::new("ip").args(["netns", "exec", &self.0, "bash", "-c", &script]));
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn captures_live_traffic_as_nobody_with_only_cap_net_raw() {
    if !root_or_skip("captures_live_traffic_as_nobody_with_only_cap_net_raw") {
        return;
    }
    let ns = Netns::new();
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(dir.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    // A copy of the binary that `nobody` may execute wherever the build tree lives.
    let agent = dir.path().join("zdn-agent");
    std::fs::copy(env!("CARGO_BIN_EXE_zdn-agent"), &agent).unwrap();
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.path().join("iocs.txt"), format!("{NAME}\n")).unwrap();
    let state = dir.path().join("state");
    let alerts = dir.path().join("alerts.jsonl");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {state:?}\n[capture]\ninterfaces = [\"lo\"]\nworkers = 2\n[indicators]\nsync = false\n\
             local = [{:?}]\n[alerts]\nlog = {alerts:?}\n",
            dir.path().join("iocs.txt")
        ),
    )
    .unwrap();
    for file in ["agent.toml", "iocs.txt"] {
        std::fs::set_permissions(dir.path().join(file), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let args = ["run", "--config", config.to_str().unwrap()];

    // Without the capability: refused at start, saying what is missing.
    let out = ns.as_nobody(&["--inh-caps=-all", "--bounding-set=-all"], &agent, &args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("CAP_NET_RAW"), "{stderr}");

    // With CAP_NET_RAW alone.
    let caps = ["--inh-caps=+net_raw", "--ambient-caps=+net_raw", "--bounding-set=-all,+net_raw"];
    let mut child =
        ns.as_nobody(&caps, &agent, &args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let start = Instant::now();
    let mut seen = false;
    for _ in 0..100 {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("agent exited ({status}): {err}");
        }
        ns.send_query();
        std::thread::sleep(Duration::from_millis(100));
        if std::fs::read_to_string(&alerts).unwrap_or_default().contains(NAME) {
            seen = true;
            break;
        }
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("agent ignored SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(seen, "no sighting of {NAME} in the alert log after {:?}", start.elapsed());
    let field = |name: &str| {
        status.lines().find(|l| l.starts_with(name)).map(|l| l.split_whitespace().nth(1).unwrap().to_owned())
    };
    assert_eq!(field("Uid:").as_deref(), Some("65534"), "running as nobody");
    assert_eq!(field("CapEff:").as_deref(), Some("0000000000002000"), "CAP_NET_RAW and nothing else");
    assert!(exit.success(), "graceful stop: {exit}");
    let line = std::fs::read_to_string(&alerts).unwrap();
    let alert: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    assert_eq!(alert["threat"]["enrichments"][0]["matched"]["atomic"], NAME);
    assert_eq!(alert["destination"]["port"], 53);
}

/// A tmpfs of `size` mounted on a fresh directory, unmounted when dropped.
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    fn new(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path()));
        SmallDisk(dir)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

/// A sighting of about 1 KB, to fill a small disk quickly.
fn sighting(i: u32) -> zdn_proto::v1::Sighting {
    zdn_proto::v1::Sighting {
        id: format!("s-{i}"),
        indicator: format!("{i}.{}", "x".repeat(900)),
        count: 1,
        ..Default::default()
    }
}

#[test]
fn a_full_disk_refuses_new_sightings_counted_and_keeps_the_queue_intact() {
    use zdn_agent::spool::Spool;
    if !root_or_skip("a_full_disk_refuses_new_sightings_counted_and_keeps_the_queue_intact") {
        return;
    }
    let disk = SmallDisk::new("512k");
    let path = disk.0.path().join("spool.sqlite");
    let spool = Spool::open(&path, 1 << 30).unwrap();
    let (mut queued, mut refused, mut i) = (0u64, 0u64, 0u32);
    for _ in 0..2_000 {
        let batch: Vec<_> = (i..i + 8).map(sighting).collect();
        i += 8;
        let pushed = spool.push(&batch);
        queued += pushed.queued;
        refused += pushed.refused_disk;
        if refused > 0 {
            break;
        }
    }
    assert!(queued > 0 && refused > 0, "queued {queued}, refused {refused}: the disk never filled");
    assert_eq!(spool.len(), queued, "a refused batch leaves no partial rows");
    drop(spool);
    // As after a restart: the queue opens, whole, in order.
    let spool = Spool::open(&path, 1 << 30).unwrap();
    let rows = spool.peek(0, 100_000).unwrap();
    assert_eq!(rows.len() as u64, queued);
    assert!(rows.iter().enumerate().all(|(n, r)| r.sighting.id == format!("s-{n}")));
}

/// A background process in the namespace, killed when dropped.
struct Background(std::process::Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `zdn-agent run` in the namespace, capturing its loopback, matching `iocs` (one per line),
/// logging alerts; returns it and its alert log.
fn agent_in(ns: &Netns, dir: &Path, iocs: &str) -> (Background, std::path::PathBuf) {
    std::fs::write(dir.join("iocs.txt"), iocs).unwrap();
    let (alerts, config) = (dir.join("alerts.jsonl"), dir.join("agent.toml"));
    std::fs::write(
        &config,
        format!(
            "state_dir = {:?}\n[capture]\ninterfaces = [\"lo\"]\n[indicators]\nsync = false\nlocal = [{:?}]\n\
             [alerts]\nlog = {alerts:?}\n",
            dir.join("state"),
            dir.join("iocs.txt")
        ),
    )
    .unwrap();
    let agent = ns
        .exec(dir, &[env!("CARGO_BIN_EXE_zdn-agent"), "run", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (Background(agent), alerts)
}

/// `openssl s_server` on 127.0.0.1:8443 in the namespace with a throw-away certificate; its
/// output (with `-msg`: every handshake message and its length) goes to `dir/s_server.log`.
fn tls_server(ns: &Netns, dir: &Path) -> Background {
    run(Command::new("openssl").current_dir(dir).args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        "/CN=test",
        "-days",
        "1",
        "-keyout",
        "key.pem",
        "-out",
        "cert.pem",
    ]));
    let log = std::fs::File::create(dir.join("s_server.log")).unwrap();
    let args = ["openssl", "s_server", "-accept", "127.0.0.1:8443", "-cert", "cert.pem", "-key", "key.pem"];
    let server =
        ns.exec(dir, &args).args(["-www", "-msg"]).stdout(log).stderr(Stdio::null()).spawn().unwrap();
    Background(server)
}

/// Waits (bounded) until something in the namespace accepts TCP on 127.0.0.1:`port`.
fn wait_for_port(ns: &Netns, port: u16) {
    let probe = format!("exec 3<>/dev/tcp/127.0.0.1/{port}");
    for _ in 0..200 {
        if ns.exec(Path::new("/"), &["bash", "-c", &probe]).stderr(Stdio::null()).status().unwrap().success()
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("nothing listens on port {port} in the namespace after 5 s");
}

/// The (via, indicator) of every alert the agent logged so far.
fn sightings_in(alerts: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(alerts)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            (
                v["zdn"]["via"].as_str().unwrap_or_default().to_owned(),
                v["threat"]["indicator"]["name"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn sees_what_real_clients_send_dig_openssl_curl() {
    let test = "sees_what_real_clients_send_dig_openssl_curl";
    if !root_or_skip(test) || !tools_or_skip(test, &["dig", "openssl", "curl", "/usr/bin/python3"]) {
        return;
    }
    let ns = Netns::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let in_ns = |args: &[&str]| ns.exec(d, args);
    let (agent, alerts) =
        agent_in(&ns, d, "dig-test.evil.example\ntls-test.evil.example\nhttp-test.evil.example\n");
    let _tls = tls_server(&ns, d);
    let http = in_ns(&["/usr/bin/python3", "-m", "http.server", "8080", "--bind", "127.0.0.1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _http = Background(http);
    std::thread::sleep(Duration::from_millis(700)); // servers listening, agent capturing

    let wanted = [
        ("dns_query", "dig-test.evil.example"),
        ("tls_sni", "tls-test.evil.example"),
        ("http_host", "http-test.evil.example"),
    ];
    let start = Instant::now();
    let mut found = Vec::new();
    for _ in 0..20 {
        let _ = in_ns(&["dig", "@127.0.0.53", "dig-test.evil.example", "+tries=1", "+time=1"]).output();
        let _ = in_ns(&[
            "sh",
            "-c",
            "openssl s_client -connect 127.0.0.1:8443 -servername tls-test.evil.example </dev/null",
        ])
        .output();
        let _ = in_ns(&[
            "curl",
            "-sk",
            "--max-time",
            "2",
            "--resolve",
            "tls-test.evil.example:8443:127.0.0.1",
            "https://tls-test.evil.example:8443/",
        ])
        .output();
        let _ = in_ns(&[
            "curl",
            "-s",
            "--max-time",
            "2",
            "-H",
            "Host: http-test.evil.example",
            "http://127.0.0.1:8080/dl/x.exe?id=1",
        ])
        .output();
        std::thread::sleep(Duration::from_millis(500));
        found = sightings_in(&alerts);
        if wanted.iter().all(|(via, name)| found.iter().any(|(v, n)| v == via && n == name)) {
            break;
        }
    }
    drop(agent);
    for (via, name) in wanted {
        assert!(
            found.iter().any(|(v, n)| v == via && n == name),
            "no {via} sighting of {name} after {:?}: {found:?}",
            start.elapsed()
        );
    }
}

/// Chromium's ClientHello carries a post-quantum key share (X25519MLKEM768) and is larger than
/// one TCP segment; with the namespace's loopback at a real MTU and segmentation offloads off,
/// it arrives as two segments, and the agent must put them together to read the server name.
#[test]
fn reads_the_server_name_of_chromium_hellos_split_over_segments() {
    let test = "reads_the_server_name_of_chromium_hellos_split_over_segments";
    if !root_or_skip(test) || !tools_or_skip(test, &["ethtool"]) {
        return;
    }
    let chromium = Path::new("/usr/bin/chromium");
    if !chromium.exists() {
        let needs = "/usr/bin/chromium (apt-get install chromium)";
        return zdn_loud_skip::skip(
            "reads_the_server_name_of_chromium_hellos_split_over_segments",
            needs,
            "ZDN_REQUIRE_BROWSER",
        );
    }
    let ns = Netns::new();
    // Segments of at most 1460 bytes, as on an Ethernet: no offload merges or splits them.
    run(Command::new("ip").args(["-n", &ns.0, "link", "set", "lo", "mtu", "1500"]));
    run(&mut ns.exec(Path::new("/"), &["ethtool", "-K", "lo", "tso", "off", "gso", "off", "gro", "off"]));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (agent, alerts) = agent_in(&ns, d, "chromium-test.evil.example\n");
    let _tls = tls_server(&ns, d);
    wait_for_port(&ns, 8443);

    let profile = d.join("profile");
    let browse = [
        "/usr/bin/chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--ignore-certificate-errors",
        "--host-resolver-rules=MAP chromium-test.evil.example 127.0.0.1",
        "--dump-dom",
        "https://chromium-test.evil.example:8443/",
    ];
    let mut found = Vec::new();
    for _ in 0..5 {
        let page =
            ns.exec(d, &browse).arg(format!("--user-data-dir={}", profile.display())).output().unwrap();
        assert!(String::from_utf8_lossy(&page.stdout).contains("s_server"), "Chromium fetched the page");
        std::thread::sleep(Duration::from_millis(500));
        found = sightings_in(&alerts);
        if found.iter().any(|(v, n)| v == "tls_sni" && n == "chromium-test.evil.example") {
            break;
        }
    }
    drop(agent);
    assert!(found.iter().any(|(v, n)| v == "tls_sni" && n == "chromium-test.evil.example"), "{found:?}");
    // The hello really was larger than a segment (s_server logs each message's length).
    let server_log = std::fs::read_to_string(d.join("s_server.log")).unwrap();
    let hello = server_log
        .lines()
        .filter(|l| l.contains("ClientHello"))
        .filter_map(|l| l.split("[length ").nth(1)?.split(']').next())
        .filter_map(|hex| usize::from_str_radix(hex, 16).ok())
        .max()
        .expect("s_server logged the ClientHello");
    assert!(hello > 1460, "Chromium's ClientHello is {hello} bytes: it fits one segment, nothing was split");
}

/// A live capture that stops on its own (here: its interface is deleted) must not leave an
/// agent that heartbeats "healthy" without capture: it exits non-zero, for systemd to restart.
#[test]
fn an_agent_whose_live_capture_stops_exits_with_an_error() {
    let test = "an_agent_whose_live_capture_stops_exits_with_an_error";
    if !root_or_skip(test) {
        return;
    }
    let ns = Netns::new();
    let dir = tempfile::tempdir().unwrap();
    run(Command::new("ip").args(["-n", &ns.0, "link", "add", "zdn0", "type", "veth", "peer", "name", "zdn1"]));
    run(Command::new("ip").args(["-n", &ns.0, "link", "set", "zdn0", "up"]));
    let config = dir.path().join("agent.toml");
    let state = dir.path().join("state");
    std::fs::write(
        &config,
        format!("state_dir = {state:?}\n[capture]\ninterfaces = [\"zdn0\"]\n[indicators]\nsync = false\n"),
    )
    .unwrap();
    let log = dir.path().join("agent.log");
    let mut agent = ns
        .exec(dir.path(), &[env!("CARGO_BIN_EXE_zdn-agent"), "run", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    let start = Instant::now();
    while !text().contains("live capture open") {
        assert!(agent.try_wait().unwrap().is_none(), "agent exited early: {}", text());
        assert!(start.elapsed() < Duration::from_secs(30), "agent did not start: {}", text());
        std::thread::sleep(Duration::from_millis(50));
    }
    run(Command::new("ip").args(["-n", &ns.0, "link", "del", "zdn0"]));
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = agent.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = agent.kill();
            panic!("agent kept running without its capture: {}", text());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success(), "exited OK without capture: {}", text());
    assert!(text().contains("live capture stopped"), "{}", text());
}

/// After a full disk the spool gets its space back: once room is freed, acknowledged rows are
/// deleted, the WAL is emptied into the database and truncated (it does not keep the freed
/// space), and new sightings are queued again. While the disk is full, the error names it.
#[test]
fn after_a_full_disk_the_spool_recovers_with_the_space_freed() {
    use zdn_agent::spool::{Spool, SpoolError, WAL_SIZE_LIMIT};
    if !root_or_skip("after_a_full_disk_the_spool_recovers_with_the_space_freed") {
        return;
    }
    let disk = SmallDisk::new("2m");
    let filler = disk.0.path().join("filler");
    std::fs::write(&filler, vec![0u8; 768 * 1024]).unwrap();
    let path = disk.0.path().join("spool.sqlite");
    let spool = Spool::open(&path, 1 << 30).unwrap();
    let mut i = 0u32;
    while spool.push(&(i..i + 8).map(sighting).collect::<Vec<_>>()).refused_disk == 0 {
        i += 8;
        assert!(i < 100_000, "the disk never filled");
    }
    let seqs: Vec<i64> = spool.peek(0, 100_000).unwrap().iter().map(|r| r.seq).collect();
    assert!(!seqs.is_empty());
    // Acknowledged while the disk is full: the error is about this disk, not the collector.
    if let Err(e) = spool.remove(&seqs) {
        assert!(
            matches!(e, SpoolError::DiskFull { .. }) && e.to_string().contains("agent's own disk"),
            "{e}"
        );
    }
    std::fs::remove_file(&filler).unwrap();
    spool.remove(&seqs).unwrap();
    assert!(spool.is_empty());
    assert_eq!(spool.push(&[sighting(1_000_000)]).queued, 1, "new sightings are queued again");
    let wal = std::fs::metadata(disk.0.path().join("spool.sqlite-wal")).map_or(0, |m| m.len());
    assert!(wal <= WAL_SIZE_LIMIT as u64, "the WAL kept {wal} bytes of the freed space");
}
