//! The alert document: one sighting in Elastic Common Schema 8.x names.
//!
//! A SIEM maps these fields by type (`destination.ip` is an `ip` field, `destination.port` a
//! `long`), so a document never carries a field without a value: an empty string in an `ip`
//! field makes Elasticsearch refuse the whole document. What is unknown is left out.
//! `ecs.version` says which schema the names follow, `observer.*` which sensor wrote it; our
//! own fields sit under `zdn.*`, as ECS asks of custom fields. A test checks every other field
//! and its type against the ECS field reference (`agent/tests/data/ecs-fields.csv`).

use crate::sighting::Sighting;
use serde_json::{Map, Value, json};
use zdn_indicators::{Kind, Via};
use zdn_timestamps::format_unix_ms;

/// The ECS release whose field reference the documents are checked against.
pub const ECS_VERSION: &str = "8.17.0";

/// The sensor that writes the documents.
#[derive(Debug, Clone)]
pub struct Observer {
    hostname: String,
}

impl Observer {
    /// This machine, by its host name (empty, and so left out, if it cannot be read).
    pub fn this_host() -> Observer {
        Observer { hostname: sysinfo::System::host_name().unwrap_or_default() }
    }
}

/// The ECS document of a sighting; `held_back` marks one the rate limits kept local.
pub fn document(s: &Sighting, held_back: bool, observer: &Observer) -> Value {
    let doc = json!({
        "@timestamp": format_unix_ms(s.first_seen_unix_ms),
        "ecs": { "version": ECS_VERSION },
        "observer": {
            "hostname": observer.hostname,
            "type": "ids",
            "vendor": "Z-CERT",
            "product": "ZDN sensor",
            "version": env!("CARGO_PKG_VERSION"),
        },
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
        // The remote end is unknown when it is internal too (it never leaves in a sighting),
        // and a port is unknown for ICMP.
        "destination": {
            "ip": s.dst_ip,
            "port": (s.dst_port != 0).then_some(s.dst_port),
            "domain": s.resolved_name,
        },
        "network": { "transport": transport(&s.proto) },
        "threat": {
            "indicator": { "type": indicator_type(s), "name": s.indicator, "id": [s.indicator_id] },
            "enrichments": [{
                "matched": { "atomic": s.observed, "type": "indicator_match_rule", "field": field(s.via) }
            }],
        },
        "zdn": {
            "count": s.count,
            "via": s.via,
            "host_pseudonym": s.src,
            "held_back": held_back,
        },
    });
    without_empty(doc).unwrap_or_else(|| Value::Object(Map::new()))
}

/// `value` without empty strings, nulls, and the objects and arrays left empty by their
/// removal; `None` when nothing is left.
fn without_empty(value: Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::String(text) if text.is_empty() => None,
        Value::Object(map) => {
            let map: Map<String, Value> =
                map.into_iter().filter_map(|(k, v)| Some((k, without_empty(v)?))).collect();
            (!map.is_empty()).then_some(Value::Object(map))
        }
        Value::Array(items) => {
            let items: Vec<Value> = items.into_iter().filter_map(without_empty).collect();
            (!items.is_empty()).then_some(Value::Array(items))
        }
        other => Some(other),
    }
}

/// ECS `network.transport` (IANA protocol names); `None` for what the agent calls "other".
fn transport(proto: &str) -> Option<&str> {
    matches!(proto, "tcp" | "udp" | "icmp").then_some(proto)
}

/// ECS `threat.indicator.type` (the STIX cyber-observable names).
fn indicator_type(s: &Sighting) -> &'static str {
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

/// The ECS field the observed value came from (a value, not a field of the document;
/// `tls.client.ja4` is not in ECS 8.x, and is named as `tls.client.ja3` is).
fn field(via: Via) -> &'static str {
    match via {
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
    use std::collections::HashMap;
    use std::net::IpAddr;

    /// ECS fields by name with their types, from the reference of [`ECS_VERSION`].
    fn reference() -> HashMap<String, String> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ecs-fields.csv");
        let text = std::fs::read_to_string(path).unwrap();
        text.lines()
            .skip(1)
            .map(|line| {
                let [version, field, kind]: [&str; 3] =
                    line.split(',').collect::<Vec<_>>().try_into().unwrap();
                assert_eq!(version, ECS_VERSION, "the reference is of the version the documents claim");
                (field.to_owned(), kind.to_owned())
            })
            .collect()
    }

    /// Every leaf of `value` as (dotted ECS name, value); array elements under their field's name.
    fn leaves<'v>(prefix: &str, value: &'v Value, out: &mut Vec<(String, &'v Value)>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    let name = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                    leaves(&name, v, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| leaves(prefix, v, out)),
            leaf => out.push((prefix.to_owned(), leaf)),
        }
    }

    /// Whether `value` is a valid value of an ECS field of type `kind`.
    fn fits(kind: &str, value: &Value) -> bool {
        let text = value.as_str().unwrap_or_default();
        match kind {
            "ip" => text.parse::<IpAddr>().is_ok(),
            "long" => value.is_u64() || value.is_i64(),
            "date" => {
                time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).is_ok()
            }
            "keyword" | "wildcard" | "match_only_text" | "constant_keyword" => {
                value.is_string() && !text.is_empty()
            }
            _ => false,
        }
    }

    /// Sightings of every way a value is seen, with and without what may be unknown: a remote
    /// address (internal ends are left out), a port (ICMP), a resolved name, a transport.
    fn every_kind_of_sighting() -> Vec<Sighting> {
        let vias = [
            (Via::IpDst, Kind::Ipv4, "203.0.113.9"),
            (Via::IpDst, Kind::Cidr, "2001:db8::/32"),
            (Via::IpDst, Kind::IpPort, "203.0.113.9:443"),
            (Via::DnsQuery, Kind::Domain, "evil.example"),
            (Via::DnsAnswer, Kind::Ipv6, "2001:db8::1"),
            (Via::TlsSni, Kind::Domain, "evil.example"),
            (Via::QuicSni, Kind::Domain, "evil.example"),
            (Via::HttpHost, Kind::Domain, "evil.example"),
            (Via::HttpUrl, Kind::Url, "http://evil.example/x"),
            (Via::Ja3, Kind::Ja3, "e7d705a3286e19ea42f587b344ee6865"),
            (Via::Ja4, Kind::Ja4, "t13d1516h2_8daaf6152771_b186095e22b6"),
        ];
        let ends = [
            ("203.0.113.9", 443, "tcp", "name.example"),
            ("", 0, "icmp", ""),
            ("2001:db8::1", 53, "other", ""),
        ];
        let mut all = Vec::new();
        for (via, kind, indicator) in vias {
            for (dst_ip, dst_port, proto, resolved_name) in ends {
                all.push(Sighting {
                    id: "01a2".into(),
                    indicator: indicator.into(),
                    indicator_id: "i-1".into(),
                    kind,
                    via,
                    observed: indicator.into(),
                    first_seen_unix_ms: 1_700_000_000_000,
                    last_seen_unix_ms: 1_700_000_060_000,
                    count: 3,
                    src: "h-0011".into(),
                    dst_ip: dst_ip.into(),
                    dst_port,
                    proto: proto.into(),
                    resolved_name: resolved_name.into(),
                    retro: false,
                    host: "10.1.2.3".parse().unwrap(),
                });
            }
        }
        all
    }

    #[test]
    fn every_field_is_in_the_ecs_reference_with_a_value_of_its_type_and_none_is_empty() {
        let reference = reference();
        let observer = Observer { hostname: "gw-1.umc.example".into() };
        for sighting in every_kind_of_sighting() {
            for held_back in [false, true] {
                let doc = document(&sighting, held_back, &observer);
                let mut fields = Vec::new();
                leaves("", &doc, &mut fields);
                for (name, value) in fields {
                    assert!(!value.is_null() && value.as_str() != Some(""), "{name} is empty: {doc}");
                    if name.starts_with("zdn.") {
                        continue;
                    }
                    let kind = reference
                        .get(&name)
                        .unwrap_or_else(|| panic!("{name} is not an ECS {ECS_VERSION} field"));
                    assert!(fits(kind, value), "{name} = {value} is not a valid {kind}: {doc}");
                }
                assert_eq!(doc["ecs"]["version"], ECS_VERSION);
                for field in ["hostname", "type", "vendor", "product", "version"] {
                    assert!(doc["observer"][field].is_string(), "observer.{field}: {doc}");
                }
            }
        }
    }

    #[test]
    fn what_is_unknown_is_left_out_not_written_empty() {
        let sighting = every_kind_of_sighting().remove(1);
        assert_eq!((sighting.dst_ip.as_str(), sighting.dst_port, sighting.proto.as_str()), ("", 0, "icmp"));
        let doc = document(&sighting, false, &Observer { hostname: String::new() });
        assert!(doc.get("destination").is_none(), "no destination field at all: {doc}");
        assert_eq!(doc["network"]["transport"], "icmp");
        assert!(doc["observer"].get("hostname").is_none() && doc["observer"]["vendor"] == "Z-CERT", "{doc}");
        let other = document(&every_kind_of_sighting().remove(2), false, &Observer::this_host());
        assert!(other.get("network").is_none(), "\"other\" is no IANA transport: {other}");
        assert_eq!(other["destination"]["port"], 53);
    }
}
