//! The `zdn-agent replay` binary on real captures from Suricata's verification suite.

use std::path::{Path, PathBuf};
use std::process::Command;

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data").join(rel)
}

fn agent(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_zdn-agent")).args(args).output().expect("run zdn-agent")
}

/// The capture all tests replay: one DNS query from 10.16.1.11 for www.suricata-ids.org to the
/// resolver 10.16.1.1 and its answer (read off the capture's bytes).
const DNS_CAPTURE: &str = "pcap/suricata-verify/cond-log-dns-dig/input.pcap";

/// `zdn-agent replay --pcap <DNS_CAPTURE> --indicators <indicators> <extra...>`.
fn replay(indicators: &str, extra: &[&str]) -> std::process::Output {
    let pcap = data(DNS_CAPTURE);
    let mut args = vec!["replay", "--pcap", pcap.to_str().unwrap(), "--indicators", indicators];
    args.extend_from_slice(extra);
    agent(&args)
}

fn list(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("iocs.txt");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn prints_a_json_line_per_sighting() {
    let dir = tempfile::tempdir().unwrap();
    let out = replay(&list(&dir, "SURICATA-IDS.org.\n10.16.1.1\n"), &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    let dns = lines.iter().find(|l| l["via"] == "dns_query").expect("dns sighting");
    assert_eq!(dns["indicator"], "suricata-ids.org");
    assert_eq!(dns["kind"], "domain");
    assert_eq!(dns["observed"], "www.suricata-ids.org");
    assert_eq!(dns["first_seen"], "2017-04-20T21:15:58.732Z");
    assert_eq!(
        (dns["count"].as_u64(), dns["dst_port"].as_u64(), dns["proto"].as_str()),
        (Some(1), Some(53), Some("udp"))
    );
    let ip = lines.iter().find(|l| l["via"] == "ip_dst").expect("resolver address sighting");
    assert_eq!((ip["indicator"].as_str(), ip["kind"].as_str()), (Some("10.16.1.1"), Some("ipv4")));
    // The response says www.suricata-ids.org is an alias of suricata-ids.org: listed too.
    let answer = lines.iter().find(|l| l["via"] == "dns_answer").expect("answer sighting");
    assert_eq!(
        (answer["observed"].as_str(), answer["dst_port"].as_u64()),
        (Some("suricata-ids.org"), Some(53))
    );
    // With home_net covering the resolver, it is internal: no ip_dst sighting and the resolver
    // is not named; the query and the answer are still seen, for the client.
    let out = replay(&list(&dir, "suricata-ids.org\n10.16.1.1\n"), &["--home-net", "10.16.1.0/24"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let vias: Vec<&str> = lines.iter().map(|l| l["via"].as_str().unwrap()).collect();
    assert_eq!(vias, ["dns_query", "dns_answer"], "{stdout}");
    assert!(lines.iter().all(|l| l["dst_ip"] == "" && l["src"] == lines[0]["src"]), "{stdout}");
}

#[test]
fn bad_inputs_fail_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = data(DNS_CAPTURE);
    let pcap = pcap.to_str().unwrap();

    let out = replay(&list(&dir, "# only junk\nnot a domain\n"), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("holds no indicators") && err.contains("iocs.txt:2"),
        "{err}"
    );

    let not_pcap = list(&dir, "evil.example\n");
    let out = agent(&["replay", "--pcap", &not_pcap, "--indicators", &not_pcap]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("neither a pcap nor a pcapng"), "{err}");

    let truncated = dir.path().join("cut.pcap");
    let bytes = std::fs::read(pcap).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() - 10]).unwrap();
    let out = agent(&["replay", "--pcap", truncated.to_str().unwrap(), "--indicators", &not_pcap]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("corrupt record at byte"), "{err}");
    // What was read before the damage is reported, then the error: the DNS query survives
    // the cut answer.
    let iocs = list(&dir, "suricata-ids.org\n");
    let out = agent(&["replay", "--pcap", truncated.to_str().unwrap(), "--indicators", &iocs]);
    let (stdout, err) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success() && err.contains("1 of 1 capture files could not be read"), "{err}");
    assert_eq!(stdout.lines().count(), 1, "the query's sighting: {stdout}");
    assert!(stdout.contains("www.suricata-ids.org"), "{stdout}");

    let out = replay(&not_pcap, &["--collector", "https://127.0.0.1:1", "--identity", "/nonexistent"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("/nonexistent/cert.pem"), "{err}");
}

#[test]
fn signed_sets_are_compiled_pinned_installed_and_refused_when_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let iocs = list(&dir, "suricata-ids.org\n203.0.113.66\n");
    let key = dir.path().join("publish.key");
    let signed = dir.path().join("v2.zdn");
    let out = agent(&[
        "compile-indicators",
        "--indicators",
        &iocs,
        "--output",
        signed.to_str().unwrap(),
        "--set-version",
        "2",
        "--sign-key",
        key.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let public = stdout.split("public key ").nth(1).unwrap().split(' ').next().unwrap().to_owned();
    let signed_s = signed.to_str().unwrap();

    let unpinned = agent(&["check-indicators", "--indicators", signed_s]);
    assert!(
        !unpinned.status.success() && String::from_utf8_lossy(&unpinned.stderr).contains("pinned public key")
    );
    let other = "0".repeat(63) + "1";
    let wrong = agent(&["check-indicators", "--indicators", signed_s, "--pinned-key", &other]);
    assert!(!wrong.status.success(), "a set signed by another key was accepted");
    let pinned = agent(&["check-indicators", "--indicators", signed_s, "--pinned-key", &public]);
    assert!(String::from_utf8_lossy(&pinned.stdout).contains("signed, version 2"), "{:?}", pinned);

    let installed = dir.path().join("installed.zdn");
    let install = |set: &str| {
        agent(&[
            "install-indicators",
            "--set",
            set,
            "--pinned-key",
            &public,
            "--installed",
            installed.to_str().unwrap(),
        ])
    };
    assert!(install(signed_s).status.success());
    let again = install(signed_s);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("not newer"));

    // The installed set is what replay matches with, verified on every start.
    let out = replay(installed.to_str().unwrap(), &["--pinned-key", &public]);
    assert!(String::from_utf8(out.stdout).unwrap().contains("\"indicator\":\"suricata-ids.org\""));
}

#[test]
fn a_pseudonym_in_a_sighting_resolves_locally_to_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("pseudonym.key");
    let out = replay(
        &list(&dir, "suricata-ids.org\n"),
        &["--home-net", "10.16.1.0/24", "--secret-file", secret.to_str().unwrap()],
    );
    let first = String::from_utf8(out.stdout).unwrap().lines().next().unwrap().to_owned();
    let line: serde_json::Value = serde_json::from_str(&first).unwrap();
    let src = line["src"].as_str().unwrap();
    let secret_s = secret.to_str().unwrap();
    let found = agent(&["resolve", src, "--secret-file", secret_s, "--home-net", "10.16.0.0/16"]);
    assert_eq!(String::from_utf8(found.stdout).unwrap().trim(), format!("{src} = 10.16.1.11"));
    let other = agent(&["resolve", src, "--secret-file", secret_s, "--home-net", "192.168.0.0/24"]);
    assert!(
        !other.status.success() && String::from_utf8_lossy(&other.stderr).contains("is not an address of")
    );
    let missing = agent(&["resolve", src, "--secret-file", "/nonexistent/key", "--home-net", "10.16.0.0/16"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no pseudonym secret"));
}
