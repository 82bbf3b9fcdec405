//! Local alerts for the participant's own SIEM: one JSON document per sighting with Elastic
//! Common Schema field names (Filebeat, Elastic and most SIEMs map them without a parser),
//! appended to a JSON-lines file and/or sent to the local syslog socket. They carry the *real*
//! internal address (`source.ip`): they stay inside the institution; what goes to the
//! collector carries the pseudonym (`zdn.host_pseudonym`).

use crate::config::AlertConfig;
use crate::sighting::Sighting;
use serde_json::json;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use syslog::{Facility, Formatter3164, Logger, LoggerBackend};
use zdn_timestamps::format_unix_ms;

pub struct AlertLog {
    file: Option<(PathBuf, BufWriter<File>)>,
    syslog: Option<Logger<LoggerBackend, Formatter3164>>,
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
        Ok((file.is_some() || syslog.is_some()).then_some(AlertLog { file, syslog }))
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
        let doc = ecs(sighting, held_back);
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

/// The ECS document of a sighting.
fn ecs(s: &Sighting, held_back: bool) -> serde_json::Value {
    json!({
        "@timestamp": format_unix_ms(s.first_seen_unix_ms),
        "event": {
            "kind": "alert",
            "category": ["network", "threat"],
            "type": ["indicator"],
            "module": "zdn",
            "dataset": "zdn.sighting",
            "id": s.id,
            "start": format_unix_ms(s.first_seen_unix_ms),
            "end": format_unix_ms(s.last_seen_unix_ms),
        },
        "source": { "ip": s.host.to_string() },
        "destination": { "ip": s.dst_ip, "port": s.dst_port, "domain": s.resolved_name },
        "network": { "transport": s.proto },
        "threat": {
            "indicator": { "type": ecs_indicator_type(s), "name": s.indicator, "id": [s.indicator_id] },
            "enrichments": [{
                "matched": { "atomic": s.observed, "type": "indicator_match_rule", "field": ecs_field(s) }
            }],
        },
        "zdn": {
            "count": s.count,
            "via": s.via,
            "host_pseudonym": s.src,
            "held_back": held_back,
        },
    })
}

/// ECS `threat.indicator.type` (the STIX cyber-observable names).
fn ecs_indicator_type(s: &Sighting) -> &'static str {
    use zdn_indicators::Kind;
    match s.kind {
        Kind::Ipv4 => "ipv4-addr",
        Kind::Ipv6 => "ipv6-addr",
        Kind::Cidr if s.indicator.contains(':') => "ipv6-addr",
        Kind::Cidr => "ipv4-addr",
        Kind::IpPort => "network-traffic",
        Kind::Domain => "domain-name",
        Kind::Url => "url",
        // A TLS fingerprint identifies the client software.
        Kind::Ja3 | Kind::Ja4 => "software",
    }
}

/// The ECS field the observed value came from.
fn ecs_field(s: &Sighting) -> &'static str {
    use zdn_indicators::Via;
    match s.via {
        Via::IpDst => "destination.ip",
        Via::DnsQuery => "dns.question.name",
        Via::DnsAnswer => "dns.answers.data",
        Via::TlsSni | Via::QuicSni => "tls.client.server_name",
        Via::HttpHost => "url.domain",
        Via::HttpUrl => "url.full",
        Via::Ja3 => "tls.client.ja3",
        Via::Ja4 => "tls.client.ja4",
    }
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
