//! What the agent's root-only test files share: loud skips, network namespaces the tests
//! create and delete, processes run inside them.
// Each test file uses part of this module.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

const NOBODY: u32 = 65534;

pub fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
}

/// Whether `test` can run here (`ready`); if not, a loud skip saying what it `needs`, or a
/// failure where `ZDN_REQUIRE_ROOT=1` asks for every privileged test to run (`.ci/run`).
pub fn ready_or_skip(test: &str, ready: bool, needs: &str) -> bool {
    if !ready {
        zdn_loud_skip::skip(test, needs, "ZDN_REQUIRE_ROOT");
    }
    ready
}

/// Whether the test can run here; panics if it must but cannot.
pub fn root_or_skip(test: &str) -> bool {
    ready_or_skip(test, is_root(), "root (network namespace, setpriv)")
}

/// Whether every one of `tools` is installed (see [`ready_or_skip`]).
pub fn tools_or_skip(test: &str, tools: &[&str]) -> bool {
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
pub struct Netns(pub String);

impl Netns {
    pub fn new() -> Netns {
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
    pub fn exec(&self, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.0]).args(args).current_dir(dir);
        cmd
    }

    /// `ip netns exec <ns> setpriv <privileges> <program> <args>` as `nobody`.
    pub fn as_nobody(&self, caps: &[&str], program: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.0, "setpriv"]);
        cmd.args([format!("--reuid={NOBODY}"), format!("--regid={NOBODY}"), "--clear-groups".into()]);
        cmd.args(caps).arg(program).args(args);
        cmd
    }

    /// Sends one DNS query for live-test.evil.example to 127.0.0.53 inside the namespace.
    pub fn send_query(&self) {
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

pub fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A background process in the namespace, killed when dropped.
pub struct Background(pub std::process::Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
