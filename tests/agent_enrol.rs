//! `zdn-agent enrol --bundle`: the bundle `zdn-collector pki issue` writes, checked and put in
//! place as the agent's identity — and every kind of wrong bundle refused with the reason.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};
use zdn_transport::Role;

fn enrol(bundle: &Path, identity: &Path, extra: &[&str]) -> Output {
    Command::new(zdn_integration_tests::agent_binary())
        .args(["enrol", "--bundle", bundle.to_str().unwrap(), "--identity", identity.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_issued_bundle_is_installed_and_wrong_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    zdn_collector::pki::init(&pki, &[]).unwrap();
    let issued = zdn_collector::pki::issue(
        &pki,
        &zdn_collector::pki::Request::new("umc-noord", Role::Agent, Some("gw-1")),
    )
    .unwrap();
    let bundle = issued.join("bundle.pem");
    assert_eq!(std::fs::metadata(&bundle).unwrap().permissions().mode() & 0o777, 0o600);

    // As root, the key's group is the service's (here: nogroup); elsewhere no group is set.
    let root =
        std::fs::read_to_string("/proc/self/status").unwrap().lines().any(|l| l.starts_with("Uid:\t0\t"));
    let group_args: &[&str] = if root { &["--group", "nogroup"] } else { &["--no-group"] };
    let identity = dir.path().join("identity");
    let out = enrol(&bundle, &identity, group_args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("participant umc-noord (gw-1)"));
    let mode = |f: &str| std::fs::metadata(identity.join(f)).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode("cert.pem"), mode("key.pem"), mode("ca.pem")), (0o644, 0o640, 0o644));
    if root {
        assert_eq!(std::fs::metadata(identity.join("key.pem")).unwrap().gid(), 65534);
    }
    zdn_transport::Bundle::load(&identity).expect("the installed identity loads");

    let again = enrol(&bundle, &identity, &["--no-group"]);
    assert!(!again.status.success() && stderr(&again).contains("already holds an identity"));
    assert!(enrol(&bundle, &identity, &["--no-group", "--force"]).status.success());

    let other = dir.path().join("other");
    let analyst = zdn_collector::pki::issue(
        &pki,
        &zdn_collector::pki::Request::new("z-cert", Role::Analyst, Some("alice")),
    )
    .unwrap();
    let out = enrol(&analyst.join("bundle.pem"), &other, &["--no-group"]);
    assert!(stderr(&out).contains("role analyst"), "{}", stderr(&out));

    // The key of another certificate.
    let second = zdn_collector::pki::issue(
        &pki,
        &zdn_collector::pki::Request::new("umc-noord", Role::Agent, Some("gw-2")),
    )
    .unwrap();
    let text = |p: &Path| std::fs::read_to_string(p).unwrap();
    let mixed = dir.path().join("mixed.pem");
    std::fs::write(
        &mixed,
        [text(&issued.join("cert.pem")), text(&second.join("key.pem")), text(&issued.join("ca.pem"))]
            .concat(),
    )
    .unwrap();
    let out = enrol(&mixed, &other, &["--no-group"]);
    assert!(stderr(&out).contains("does not belong to the certificate"), "{}", stderr(&out));

    // A certificate from another CA, presented with ours.
    let foreign_pki = dir.path().join("foreign");
    zdn_collector::pki::init(&foreign_pki, &[]).unwrap();
    let foreign = zdn_collector::pki::issue(
        &foreign_pki,
        &zdn_collector::pki::Request::new("umc-noord", Role::Agent, Some("gw-1")),
    )
    .unwrap();
    let forged = dir.path().join("forged.pem");
    std::fs::write(
        &forged,
        [text(&foreign.join("cert.pem")), text(&foreign.join("key.pem")), text(&issued.join("ca.pem"))]
            .concat(),
    )
    .unwrap();
    let out = enrol(&forged, &other, &["--no-group"]);
    assert!(stderr(&out).contains("does not verify against the bundle's CA"), "{}", stderr(&out));

    std::fs::write(dir.path().join("junk.pem"), "not a bundle").unwrap();
    let out = enrol(&dir.path().join("junk.pem"), &other, &["--no-group"]);
    assert!(stderr(&out).contains("the bundle must hold"), "{}", stderr(&out));
    assert!(!other.join("cert.pem").exists(), "nothing written for a refused bundle");
}
