//! # zdn-loud-skip
//!
//! A test that needs what this machine lacks (root, PostgreSQL, Chromium, a validator)
//! skips, and says so where a newcomer sees it — or fails, where CI requires it.
//!
//! Why not `eprintln!`: libtest captures what the print macros write and shows it only for
//! failing tests, so a skipped test reads `ok` like one that ran. [`skip`] writes to the
//! process's standard error directly, which the capture does not intercept: the `SKIPPED`
//! line appears in `cargo test`'s output beside the test's `ok`. (`cargo test 2>&1 | grep
//! SKIPPED` lists them.)

#![forbid(unsafe_code)]

use std::io::Write;

/// Skips the calling test: a `SKIPPED <test>: needs <needs>` line on the real standard error.
/// Panics instead when the environment variable `required_by` is `1` (`.ci/run` sets the
/// `ZDN_REQUIRE_*` switches, so in CI a missing prerequisite is a failure, not a skip).
pub fn skip(test: &str, needs: &str, required_by: &str) {
    assert!(
        std::env::var(required_by).as_deref() != Ok("1"),
        "{test} needs {needs}, and {required_by}=1 requires it to run"
    );
    let line = format!("SKIPPED {test}: needs {needs}; set {required_by}=1 to make this a failure\n");
    // Unbuffered, and past libtest's capture of the print macros.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    const SWITCH: &str = "ZDN_LOUD_SKIP_SELF_TEST";

    /// Runs [`skipping`] in a child test process, with or without the switch (in a child:
    /// this crate forbids the `unsafe` that setting a variable in this process needs, and
    /// the parent's own output stays free of a `SKIPPED` line that is only a demonstration).
    fn child(switch: Option<&str>) -> std::process::Output {
        let mut command = std::process::Command::new(std::env::current_exe().unwrap());
        command.args(["--exact", "tests::skipping", "--ignored", "--test-threads=1"]);
        match switch {
            Some(value) => command.env(SWITCH, value),
            None => command.env_remove(SWITCH),
        };
        command.output().unwrap()
    }

    #[test]
    fn a_skip_is_seen_and_fails_where_it_is_required() {
        let skipped = child(None);
        let stderr = String::from_utf8_lossy(&skipped.stderr);
        assert!(skipped.status.success(), "a skip passes");
        // Printed past libtest's capture: the child's test passed, and its line is there.
        assert!(stderr.contains("SKIPPED skipping: needs nothing"), "{stderr}");
        let required = child(Some("1"));
        let stdout = String::from_utf8_lossy(&required.stdout);
        assert!(!required.status.success() && stdout.contains("1 failed"), "a required skip fails: {stdout}");
    }

    #[test]
    #[ignore = "run by a_skip_is_seen_and_fails_where_it_is_required, in a child process"]
    fn skipping() {
        skip("skipping", "nothing", SWITCH);
    }
}
