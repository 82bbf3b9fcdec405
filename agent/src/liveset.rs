//! The set the agent matches with: the last good set from the collector (installed in the
//! state directory, signature checked on every load) merged with the participant's local
//! lists, with the local allowlists applied.
//!
//! An installed set that no longer verifies (a tampered file, a rotated key) is left out and
//! reported; the agent runs on what remains rather than not at all, and the next sync
//! replaces it.

use std::path::PathBuf;
use zdn_indicators::signing::{self, VerifyingKey};
use zdn_indicators::{Allowlists, IndicatorSet, LoadError};

pub struct SetSources {
    /// Where the collector's last good set is kept.
    pub installed: PathBuf,
    pub local: Vec<PathBuf>,
    pub allowlists: Vec<PathBuf>,
    pub warninglist_policy: zdn_indicators::Policies,
    pub pinned: Option<VerifyingKey>,
}

/// A built live set and what it was built from.
pub struct LiveSet {
    pub set: IndicatorSet,
    /// Version of the collector's set inside it (0: none).
    pub version: u64,
    pub summary: String,
}

impl SetSources {
    /// Builds the live set. Errors in local lists are errors (the participant must fix them);
    /// a bad installed set is only logged.
    pub fn build(&self) -> Result<LiveSet, LoadError> {
        let installed = self.installed_set();
        if self.local.is_empty() && self.allowlists.is_empty() {
            return Ok(match installed {
                Some((set, version)) => {
                    let summary = format!("collector set version {version}: {} indicators", set.len());
                    LiveSet { set, version, summary }
                }
                None => {
                    LiveSet { set: IndicatorSet::default(), version: 0, summary: "no indicators yet".into() }
                }
            });
        }
        let version = installed.as_ref().map_or(0, |(_, v)| *v);
        let mut sources = self.local.clone();
        if installed.is_some() {
            sources.insert(0, self.installed.clone());
        }
        drop(installed);
        let allowlists = Allowlists { paths: &self.allowlists, policies: &self.warninglist_policy };
        let built = zdn_indicators::build_set(&sources, allowlists, self.pinned.as_ref())?;
        Ok(LiveSet { summary: built.summary(), set: built.set, version })
    }

    /// The installed set and its version, if there is one that verifies.
    fn installed_set(&self) -> Option<(IndicatorSet, u64)> {
        let pinned = self.pinned.as_ref()?;
        let bytes = match std::fs::read(&self.installed) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::error!(path = %self.installed.display(), error = %e, "cannot read the installed indicator set");
                return None;
            }
        };
        match signing::verify(&bytes, pinned) {
            Ok(found) => Some(found),
            Err(e) => {
                tracing::error!(path = %self.installed.display(), error = %e, "installed indicator set refused; running without it until the next sync");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zdn_indicators::parse_plain;
    use zdn_indicators::signing::{Publisher, parse_public_key};

    #[test]
    fn the_collector_set_local_lists_and_allowlists_are_merged() {
        let dir = tempfile::tempdir().unwrap();
        let publisher = Publisher::load_or_create(&dir.path().join("k")).unwrap();
        let cert = IndicatorSet::new(parse_plain("cert", "evil.example\nshared.example\n").indicators);
        std::fs::write(dir.path().join("installed.zdn"), publisher.sign(&cert, 7)).unwrap();
        std::fs::write(dir.path().join("local.txt"), "local-only.example\n").unwrap();
        let allow =
            r#"{"name":"ours","version":1,"description":"d","type":"hostname","list":["shared.example"]}"#;
        std::fs::write(dir.path().join("allow.json"), allow).unwrap();
        let mut sources = SetSources {
            installed: dir.path().join("installed.zdn"),
            local: vec![dir.path().join("local.txt")],
            allowlists: vec![dir.path().join("allow.json")],
            warninglist_policy: Default::default(),
            pinned: Some(parse_public_key(&publisher.public_hex()).unwrap()),
        };
        let live = sources.build().unwrap();
        assert_eq!(live.version, 7);
        let set = &live.set;
        assert!(set.match_domain("evil.example").is_some());
        assert!(set.match_domain("local-only.example").is_some());
        assert!(set.match_domain("shared.example").is_none(), "on the local allowlist");

        // A set that no longer verifies is left out; the local list still matches.
        let mut bytes = std::fs::read(&sources.installed).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(&sources.installed, bytes).unwrap();
        sources.allowlists.clear();
        let live = sources.build().unwrap();
        assert_eq!(live.version, 0);
        assert!(live.set.match_domain("evil.example").is_none());
        assert!(live.set.match_domain("local-only.example").is_some());
    }
}
