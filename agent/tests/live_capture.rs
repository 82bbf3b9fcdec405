//! Live capture as the service runs it, for real, as root in network namespaces the tests
//! create (CI runs them; `ZDN_REQUIRE_ROOT=1` turns a skip into a failure):
//! - `zdn-agent run` as an unprivileged user holding only CAP_NET_RAW, capturing with two
//!   fanout workers on the loopback interface of a namespace, on the ring and on the socket
//!   fallback, matching a DNS query sent there; and the same user without the capability: a
//!   clear error;
//! - real clients (dig, openssl s_client, curl against openssl s_server and Python's
//!   http.server): the agent, live on the namespace's loopback, sees their DNS query names, TLS
//!   server names and HTTP hosts; and Chromium, whose ~2 KB ClientHello arrives in two
//!   segments (real MTU, offloads off), read whole;
//! - a ring too small for a burst: what the kernel dropped is counted, per worker, in /metrics;
//! - an interface that goes away: the agent exits with an error, for systemd to restart it.

mod root;

use root::{Background, Netns, root_or_skip, run, tools_or_skip};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NOBODY: u32 = 65534;
const NAME: &str = "live-test.evil.example";

#[test]
fn captures_live_traffic_as_nobody_with_only_cap_net_raw() {
    if root_or_skip("captures_live_traffic_as_nobody_with_only_cap_net_raw") {
        capture_as_nobody("ring");
    }
}

#[test]
fn captures_live_traffic_as_nobody_with_only_cap_net_raw_on_the_socket_fallback() {
    if root_or_skip("captures_live_traffic_as_nobody_with_only_cap_net_raw_on_the_socket_fallback") {
        capture_as_nobody("socket");
    }
}

/// `zdn-agent run` as `nobody` with CAP_NET_RAW alone, two fanout workers capturing with
/// `method`, sees a DNS query; without the capability it refuses to start, saying why.
fn capture_as_nobody(method: &str) {
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
            "state_dir = {state:?}\n[capture]\ninterfaces = [\"lo\"]\nworkers = 2\nmethod = {method:?}\n\
             [indicators]\nsync = false\n\
             local = [{:?}]\n[alerts]\nlog = {alerts:?}\n",
            dir.path().join("iocs.txt")
        ),
    )
    .unwrap();
    for file in ["agent.toml", "iocs.txt"] {
        std::fs::set_permissions(dir.path().join(file), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let args = ["run", "--config", config.to_str().unwrap()];

    // Without the capability: refused at start, saying what is missing. The copy may still be
    // held open for writing by a child another test forked while it was written (ETXTBSY
    // until that child execs): try again briefly.
    let mut out = ns.as_nobody(&["--inh-caps=-all", "--bounding-set=-all"], &agent, &args).output().unwrap();
    for _ in 0..20 {
        if !String::from_utf8_lossy(&out.stderr).contains("Text file busy") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        out = ns.as_nobody(&["--inh-caps=-all", "--bounding-set=-all"], &agent, &args).output().unwrap();
    }
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

/// The agent's Prometheus counters, read inside the namespace from `127.0.0.1:9477`: each
/// sample line `name{labels} value` as (name with labels, value).
fn metrics_in(ns: &Netns) -> Vec<(String, u64)> {
    let fetch = "exec 3<>/dev/tcp/127.0.0.1/9477; printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3";
    let out = ns.exec(Path::new("/"), &["bash", "-c", fetch]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("zdn_agent_"))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(name, v)| Some((name.to_owned(), v.parse().ok()?))))
        .collect()
}

/// A burst the worker cannot take (it is stopped, its ring holds two 4 KiB blocks) loses
/// packets in the kernel. Every one is accounted for: read or counted as dropped, per worker
/// and in total, with the times the ring was full, in /metrics.
#[test]
fn packets_a_full_ring_could_not_hold_are_counted_as_dropped() {
    let test = "packets_a_full_ring_could_not_hold_are_counted_as_dropped";
    if !root_or_skip(test) || !tools_or_skip(test, &["/usr/bin/python3"]) {
        return;
    }
    let ns = Netns::new();
    for cmd in [
        "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1",
        "ip link add zdn0 type veth peer name zdn1",
        "ip link set zdn0 up",
        "ip link set zdn1 up",
    ] {
        run(&mut ns.exec(Path::new("/"), &["sh", "-c", cmd]));
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    let state = dir.path().join("state");
    std::fs::write(
        &config,
        format!(
            "state_dir = {state:?}\n[capture]\ninterfaces = [\"zdn0\"]\n[capture.ring]\nblock_size = 4096\n\
             block_count = 2\n[indicators]\nsync = false\n[metrics]\nlisten = \"127.0.0.1:9477\"\n"
        ),
    )
    .unwrap();
    let log = dir.path().join("agent.log");
    let agent = ns
        .exec(dir.path(), &[env!("CARGO_BIN_EXE_zdn-agent"), "run", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let pid = agent.id().to_string();
    let agent = Background(agent);
    let start = Instant::now();
    while metrics_in(&ns).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "agent did not start: {:?}",
            std::fs::read_to_string(&log)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Stopped, the worker reads nothing: the ring fills after a few dozen frames.
    run(Command::new("kill").args(["-STOP", &pid]));
    const SENT: u64 = 2_000;
    let send = format!(
        "import socket\ns = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\ns.bind(('zdn1', 0))\n\
         frame = b'\\xff' * 6 + b'\\x02\\x00\\x00\\x00\\x00\\x01' + b'\\x88\\xb5' + bytes(186)\n\
         for _ in range({SENT}):\n    s.send(frame)\n"
    );
    run(&mut ns.exec(dir.path(), &["/usr/bin/python3", "-c", &send]));
    run(Command::new("kill").args(["-CONT", &pid]));
    let value = |metrics: &[(String, u64)], name: &str| {
        metrics.iter().find(|(n, _)| n == name).map_or(0, |(_, v)| *v)
    };
    let worker = "{interface=\"zdn0\",method=\"ring\",worker=\"0\"}";
    let deadline = Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        let metrics = metrics_in(&ns);
        let accounted = value(&metrics, &format!("zdn_agent_capture_worker_packets_total{worker}"))
            + value(&metrics, &format!("zdn_agent_capture_worker_dropped_kernel_total{worker}"));
        if accounted >= SENT || Instant::now() > deadline {
            break metrics;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    drop(agent);
    let read = value(&metrics, &format!("zdn_agent_capture_worker_packets_total{worker}"));
    let dropped = value(&metrics, &format!("zdn_agent_capture_worker_dropped_kernel_total{worker}"));
    let freezes = value(&metrics, &format!("zdn_agent_capture_worker_queue_freezes_total{worker}"));
    assert!(read > 0 && dropped > SENT / 2, "read {read}, dropped {dropped} of {SENT}");
    assert!((SENT..SENT + 20).contains(&(read + dropped)), "read {read} + dropped {dropped} ≠ sent {SENT}");
    assert!(freezes > 0, "the ring was full, yet no freeze was counted");
    assert_eq!(
        value(&metrics, "zdn_agent_packets_dropped_kernel_total"),
        dropped,
        "the total is the workers' sum"
    );
    assert_eq!(value(&metrics, "zdn_agent_capture_queue_freezes_total"), freezes);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("the kernel dropped packets"), "the drop is in the log too: {text}");
}
