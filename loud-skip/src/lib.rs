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

    #[test]
    fn a_skip_is_a_failure_where_it_is_required() {
        skip("a_skip_is_a_failure_where_it_is_required", "nothing", SWITCH);
        // With the switch set (in a child process: this crate forbids the `unsafe` that
        // setting a variable in this one needs), the same skip fails the test.
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "tests::required_skip", "--ignored"])
            .env(SWITCH, "1")
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&child.stdout);
        assert!(!child.status.success() && out.contains("1 failed"), "a required skip must fail: {out}");
    }

    #[test]
    #[ignore = "run by a_skip_is_a_failure_where_it_is_required, with the switch set"]
    fn required_skip() {
        skip("required_skip", "nothing", SWITCH);
    }
}
