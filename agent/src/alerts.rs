//! The local alert log: one JSON line per sighting for the participant's own SIEM, with
//! Elastic Common Schema field names so Filebeat, Elastic and most SIEMs map it without a
//! parser. It carries the *real* internal address (`source.ip`): this file stays inside the
//! institution; what goes to the collector carries the pseudonym (`zdn.host_pseudonym`).

use crate::sighting::{Sighting, format_unix_ms};
use serde_json::json;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub struct AlertLog {
    path: PathBuf,
    out: BufWriter<File>,
}

impl AlertLog {
    /// Opens `path` for appending (created mode 0640 if missing).
    pub fn open(path: &Path) -> std::io::Result<AlertLog> {
        let mut options = OpenOptions::new();
        options.append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o640);
        let file = options
            .open(path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("alert log {}: {e}", path.display())))?;
        Ok(AlertLog { path: path.into(), out: BufWriter::new(file) })
    }

    /// Reopens the file (after log rotation moved it; SIGHUP).
    pub fn reopen(&mut self) -> std::io::Result<()> {
        *self = AlertLog::open(&self.path)?;
        Ok(())
    }

    /// Appends one line per sighting; `held_back` marks those the rate limits kept local.
    pub fn write(&mut self, sighting: &Sighting, held_back: bool) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, &ecs(sighting, held_back))?;
        self.out.write_all(b"\n")
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
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
        "destination": { "ip": s.dst_ip, "port": s.dst_port },
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
