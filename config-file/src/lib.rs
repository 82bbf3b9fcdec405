//! # zdn-config-file
//!
//! How `agent.toml` and `collector.toml` are read: the file, parsed into the part's own
//! configuration type (keys left out keep their defaults, unknown keys are errors there), and
//! one error type whose message names the file and the line. What is *valid* is each part's
//! own business (`validate`), reported as [`ConfigError::Invalid`].

#![forbid(unsafe_code)]

use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Parse { path: PathBuf, source: Box<toml::de::Error> },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Reads and parses the TOML file at `path`.
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.into(), source })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.into(), source: Box::new(e) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Example {
        listen: String,
    }

    #[test]
    fn errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!("zdn-config-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.toml");
        std::fs::write(&good, "listen = \"127.0.0.1:7443\"\n").unwrap();
        assert_eq!(read::<Example>(&good).unwrap().listen, "127.0.0.1:7443");
        let typo = dir.join("typo.toml");
        std::fs::write(&typo, "listen = 7443\n").unwrap();
        let message = read::<Example>(&typo).unwrap_err().to_string();
        assert!(message.contains("typo.toml") && message.contains("line 1"), "{message}");
        let missing = read::<Example>(&dir.join("missing.toml")).unwrap_err().to_string();
        assert!(missing.starts_with("cannot read") && missing.contains("missing.toml"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
