//! Local alerts for the participant's own SIEM: one JSON document per sighting with Elastic
//! Common Schema field names (Filebeat, Elastic and most SIEMs map them without a parser),
//! appended to a JSON-lines file and/or sent to the local syslog socket. They carry the *real*
//! internal address (`source.ip`): they stay inside the institution; what goes to the
//! collector carries the pseudonym (`zdn.host_pseudonym`). The document itself is [`ecs`].

mod ecs;

use crate::config::AlertConfig;
use crate::sighting::Sighting;
use ecs::Observer;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use syslog::{Facility, Formatter3164, Logger, LoggerBackend};

pub struct AlertLog {
    file: Option<(PathBuf, BufWriter<File>)>,
    syslog: Option<Logger<LoggerBackend, Formatter3164>>,
    /// This sensor, as every document names it (`observer.*`).
    observer: Observer,
}

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("alert log {path}: {source}")]
    File { path: PathBuf, source: std::io::Error },
    #[error("syslog socket {path}: {source}")]
    Syslog { path: String, source: syslog::Error },
}

impl AlertLog {
    /// Opens the configured sinks; `None` when neither is configured.
    pub fn open(config: &AlertConfig) -> Result<Option<AlertLog>, AlertError> {
        let file = match config.log.as_str() {
            "" => None,
            path => Some((PathBuf::from(path), open_file(path.as_ref())?)),
        };
        let syslog = match config.syslog.as_str() {
            "" => None,
            path => {
                let formatter = Formatter3164 {
                    facility: Facility::LOG_DAEMON,
                    hostname: None,
                    process: "zdn-agent".into(),
                    pid: std::process::id(),
                };
                let logger = syslog::unix_custom(formatter, path)
                    .map_err(|source| AlertError::Syslog { path: path.into(), source })?;
                Some(logger)
            }
        };
        let observer = Observer::this_host();
        Ok((file.is_some() || syslog.is_some()).then_some(AlertLog { file, syslog, observer }))
    }

    /// Reopens the file (after log rotation moved it; SIGHUP).
    pub fn reopen(&mut self) -> Result<(), AlertError> {
        if let Some((path, out)) = &mut self.file {
            let _ = out.flush();
            *out = open_file(path)?;
        }
        Ok(())
    }

    /// Records one sighting; `held_back` marks those the rate limits kept local.
    pub fn write(&mut self, sighting: &Sighting, held_back: bool) -> std::io::Result<()> {
        let doc = ecs::document(sighting, held_back, &self.observer);
        if let Some((_, out)) = &mut self.file {
            serde_json::to_writer(&mut *out, &doc)?;
            out.write_all(b"\n")?;
        }
        if let Some(logger) = &mut self.syslog {
            logger.warning(doc.to_string()).map_err(std::io::Error::other)?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.file {
            Some((_, out)) => out.flush(),
            None => Ok(()),
        }
    }
}

/// Opens `path` for appending (created mode 0640 if missing).
fn open_file(path: &Path) -> Result<BufWriter<File>, AlertError> {
    let mut options = OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o640);
    let file = options.open(path).map_err(|source| AlertError::File { path: path.into(), source })?;
    Ok(BufWriter::new(file))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sighting::Aggregator;
    use zdn_indicators::{IndicatorSet, Via, parse_plain};

    #[test]
    fn alerts_reach_the_file_and_the_syslog_socket_with_the_real_address() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("log.sock");
        let listener = std::os::unix::net::UnixDatagram::bind(&socket).unwrap();
        let config = AlertConfig {
            log: dir.path().join("alerts.jsonl").display().to_string(),
            syslog: socket.display().to_string(),
        };
        let mut alerts = AlertLog::open(&config).unwrap().unwrap();
        let set = IndicatorSet::new(parse_plain("t", "evil.example").indicators);
        let mut agg = Aggregator::new(1000, 10, crate::pseudonym::Pseudonymiser::ephemeral());
        let hit = crate::packet_path::Hit {
            indicator: set.iter().next().unwrap(),
            via: Via::DnsQuery,
            observed: "a.evil.example".into(),
            host: "10.1.2.3".parse().unwrap(),
            remote: Some("10.0.0.53".parse().unwrap()),
            remote_port: 53,
            proto: "udp",
            resolved_name: None,
        };
        agg.add(hit, 0);
        let sighting = agg.take_ready().remove(0);
        alerts.write(&sighting, true).unwrap();
        alerts.flush().unwrap();

        let line = std::fs::read_to_string(dir.path().join("alerts.jsonl")).unwrap();
        let doc: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(doc["source"]["ip"], "10.1.2.3");
        assert_eq!(doc["threat"]["enrichments"][0]["matched"]["field"], "dns.question.name");
        assert_eq!(doc["zdn"]["held_back"], true);
        let mut buf = [0u8; 4096];
        let n = listener.recv(&mut buf).unwrap();
        let datagram = String::from_utf8_lossy(&buf[..n]);
        assert!(datagram.starts_with("<28>"), "daemon.warning: {datagram}");
        assert!(
            datagram.contains("zdn-agent[") && datagram.contains("\"source\":{\"ip\":\"10.1.2.3\"}"),
            "{datagram}"
        );
    }

    #[test]
    fn unusable_sinks_fail_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let missing =
            AlertConfig { log: String::new(), syslog: dir.path().join("none").display().to_string() };
        assert!(AlertLog::open(&missing).err().unwrap().to_string().contains("syslog socket"));
        let bad = AlertConfig {
            log: dir.path().join("no/such/dir/a.jsonl").display().to_string(),
            syslog: String::new(),
        };
        assert!(AlertLog::open(&bad).err().unwrap().to_string().contains("alert log"));
        assert!(AlertLog::open(&AlertConfig::default()).unwrap().is_none());
    }
}
