//! Sightings out, in the formats other tools import: STIX 2.1 bundles of Sighting objects,
//! MISP sightings, and CSV.
//!
//! - **STIX 2.1**: one `identity` per institution and one for the CERT (the producer), one
//!   `sighting` per stored sighting (`where_sighted_refs` the institution, first/last seen,
//!   count), and `sighting_of_ref` the indicator: the source's own STIX id when the indicator
//!   came from a STIX source (so the sighting joins the indicator the importer already holds),
//!   otherwise an `indicator` object of ours with its STIX pattern. Our ids are UUIDv5 under a
//!   ZDN namespace, so exporting the same sighting twice gives the same object and importers
//!   de-duplicate. Checked with OASIS's `stix2-validator` in CI.
//! - **MISP**: an array whose every element is the body of one `POST /sightings/add` call,
//!   as PyMISP's `MISPSighting` reads it: `uuid`, the *attribute's* UUID, when the indicator
//!   came from a MISP feed (MISP reads `uuid` as the attribute to sight, so nothing else may
//!   go there), otherwise `value` (MISP sights every attribute with that value); `type` (`"0"`
//!   seen, `"1"` false positive: the indicator was marked as one), `timestamp`, and `source`
//!   `"ZDN"`: the institution is not named, as MISP's `Sightings_anonymise` shows sightings
//!   under the organisation that pushed them, the CERT's (`name_institutions` makes it
//!   `"ZDN/<participant>"`, for a MISP only the CERT reads).
//! - **CSV**: the rows of `zdn sightings --format csv`.
//!
//! The caller's view applies before any of this: a participant analyst exports only its own
//! institution's sightings.

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;
use zdn_answers::rows::sighting_row;
use zdn_indicators::Kind;
use zdn_proto::{kind_from_wire, v1};
use zdn_timestamps::format_unix_ms;

/// `created`/`modified` of identity objects: an institution's identity never changes, so it
/// has one version, the same in every export.
pub(crate) const IDENTITY_VERSION: &str = "2026-01-01T00:00:00.000Z";

/// Namespace of the UUIDv5 ids of exported STIX objects.
const NAMESPACE: Uuid = Uuid::from_u128(0x5a44_4e00_7a64_6e2d_8000_0000_0000_0001);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Stix,
    Misp,
    Csv,
}

impl Format {
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Stix => "application/stix+json;version=2.1",
            Format::Misp => "application/json",
            Format::Csv => "text/csv",
        }
    }
}

/// What an export names, beyond the sightings themselves.
pub struct Naming<'a> {
    /// The indicators marked as false positives.
    pub false_positives: &'a BTreeSet<String>,
    /// The CERT's participant id (the STIX producer).
    pub producer: &'a str,
    /// MISP: the institution in each sighting's `source`.
    pub institutions: bool,
}

/// The document of `sightings` in `format`, at `now_ms`.
pub fn document(
    format: Format,
    sightings: &[v1::StoredSighting],
    naming: &Naming<'_>,
    now_ms: i64,
) -> Vec<u8> {
    match format {
        Format::Stix => {
            let mut bytes =
                serde_json::to_vec_pretty(&stix(sightings, naming.producer, now_ms)).expect("JSON");
            bytes.push(b'\n');
            bytes
        }
        Format::Misp => {
            let mut bytes = serde_json::to_vec_pretty(&misp(sightings, naming)).expect("JSON");
            bytes.push(b'\n');
            bytes
        }
        Format::Csv => csv(sightings),
    }
}

pub(crate) fn id(kind: &str, name: &str) -> String {
    format!("{kind}--{}", Uuid::new_v5(&NAMESPACE, format!("{kind}:{name}").as_bytes()))
}

/// A STIX 2.1 pattern for an indicator of `kind`, or `None` for kinds STIX has no object for.
pub fn pattern(kind: Kind, value: &str) -> Option<String> {
    let quoted = value.replace('\\', "\\\\").replace('\'', "\\'");
    Some(match kind {
        Kind::Domain => format!("[domain-name:value = '{quoted}']"),
        Kind::Ipv4 => format!("[ipv4-addr:value = '{quoted}']"),
        Kind::Ipv6 => format!("[ipv6-addr:value = '{quoted}']"),
        Kind::Cidr if value.contains(':') => format!("[ipv6-addr:value ISSUBSET '{quoted}']"),
        Kind::Cidr => format!("[ipv4-addr:value ISSUBSET '{quoted}']"),
        Kind::Url => format!("[url:value = '{quoted}']"),
        Kind::IpPort => {
            let (ip, port) = value.rsplit_once(':')?;
            let ip = ip.trim_start_matches('[').trim_end_matches(']');
            let family = if ip.contains(':') { "ipv6-addr" } else { "ipv4-addr" };
            format!(
                "[network-traffic:dst_ref.type = '{family}' AND network-traffic:dst_ref.value = '{ip}' AND network-traffic:dst_port = {port}]"
            )
        }
        // TLS fingerprints have no STIX cyber-observable; they travel as a custom pattern.
        Kind::Ja3 | Kind::Ja4 => return None,
    })
}

pub(crate) fn stix(sightings: &[v1::StoredSighting], producer: &str, now_ms: i64) -> Value {
    let now = format_unix_ms(now_ms);
    let producer_ref = id("identity", producer);
    let mut objects = vec![json!({
        "type": "identity", "spec_version": "2.1", "id": producer_ref,
        "created": IDENTITY_VERSION, "modified": IDENTITY_VERSION,
        "name": producer, "identity_class": "organization", "sectors": ["healthcare"],
    })];
    let mut indicators = BTreeMap::new();
    let mut participants = BTreeSet::new();
    let mut sighting_objects = Vec::new();
    for stored in sightings {
        let Some(s) = &stored.sighting else { continue };
        let kind = kind_from_wire(s.kind).unwrap_or(Kind::Domain);
        let indicator_ref = match stix_indicator_id(&s.indicator_id) {
            Some(source_id) => source_id.to_owned(),
            None => {
                let ours = id("indicator", &format!("{}:{}", kind.as_str(), s.indicator));
                indicators
                    .entry(ours.clone())
                    .or_insert_with(|| (kind, s.indicator.clone(), s.first_seen_unix_ms));
                ours
            }
        };
        participants.insert(stored.participant.clone());
        let count = s.count.clamp(1, 999_999_999);
        sighting_objects.push(json!({
            "type": "sighting", "spec_version": "2.1", "id": id("sighting", &s.id),
            "created": format_unix_ms(stored.received_unix_ms), "modified": format_unix_ms(stored.received_unix_ms),
            "created_by_ref": producer_ref,
            "sighting_of_ref": indicator_ref,
            "where_sighted_refs": [id("identity", &stored.participant)],
            "first_seen": format_unix_ms(s.first_seen_unix_ms), "last_seen": format_unix_ms(s.last_seen_unix_ms),
            "count": count,
            "description": format!("{} seen by {} ({})", s.observed, stored.participant, zdn_proto::via_from_wire(s.via).map_or("unknown", |v| v.as_str())),
        }));
    }
    for (indicator_ref, (kind, value, first_seen)) in indicators {
        let (pattern, pattern_type) = match pattern(kind, &value) {
            Some(p) => (p, "stix"),
            None => (value.clone(), kind.as_str()),
        };
        let first = format_unix_ms(first_seen);
        objects.push(json!({
            "type": "indicator", "spec_version": "2.1", "id": indicator_ref, "created": first, "modified": first,
            "created_by_ref": producer_ref,
            "name": value, "indicator_types": ["malicious-activity"],
            "pattern": pattern, "pattern_type": pattern_type, "valid_from": first,
        }));
    }
    for participant in participants.into_iter().filter(|p| p != producer) {
        objects.push(json!({
            "type": "identity", "spec_version": "2.1", "id": id("identity", &participant),
            "created": IDENTITY_VERSION, "modified": IDENTITY_VERSION,
            "name": participant, "identity_class": "organization", "sectors": ["healthcare"],
        }));
    }
    objects.extend(sighting_objects);
    json!({ "type": "bundle", "id": format!("bundle--{}", Uuid::new_v5(&NAMESPACE, now.as_bytes())), "objects": objects })
}

/// The source's STIX id of an indicator (`indicator--<uuid>`), if it came from STIX.
pub(crate) fn stix_indicator_id(indicator_id: &str) -> Option<&str> {
    let uuid = indicator_id.strip_prefix("indicator--")?;
    Uuid::parse_str(uuid).is_ok().then_some(indicator_id)
}

/// The MISP attribute UUID of an indicator (a bare UUID), if it came from MISP.
fn misp_attribute_uuid(indicator_id: &str) -> Option<Uuid> {
    Uuid::try_parse(indicator_id).ok()
}

fn misp(sightings: &[v1::StoredSighting], naming: &Naming<'_>) -> Value {
    let entries: Vec<Value> = sightings
        .iter()
        .filter_map(|stored| {
            let s = stored.sighting.as_ref()?;
            let kind = if naming.false_positives.contains(&s.indicator) { "1" } else { "0" };
            let source =
                if naming.institutions { format!("ZDN/{}", stored.participant) } else { "ZDN".to_owned() };
            let mut entry = json!({
                "type": kind,
                "source": source,
                "timestamp": (s.last_seen_unix_ms / 1000).to_string(),
            });
            match misp_attribute_uuid(&s.indicator_id) {
                Some(attribute) => entry["uuid"] = attribute.to_string().into(),
                None => entry["value"] = s.indicator.clone().into(),
            }
            Some(entry)
        })
        .collect();
    Value::Array(entries)
}

/// What the collector holds about one participant, as the store gives it.
pub struct Held<'a> {
    pub sightings: &'a [v1::StoredSighting],
    pub timelines: &'a [(String, v1::ParticipantTimeline)],
    pub agents: &'a [v1::AgentStatus],
    pub audit: &'a [v1::AuditEntry],
    pub hosts: &'a [v1::SuspectHost],
}

/// Everything held about one participant (a data subject access request of an institution):
/// its sightings, per-indicator aggregates, agents and the audit entries of its people.
pub fn participant_record(participant: &str, held: &Held<'_>, now_ms: i64) -> Vec<u8> {
    let aggregates: Vec<Value> = held
        .timelines
        .iter()
        .map(|(indicator, t)| {
            let vias: Vec<&str> =
                t.vias.iter().filter_map(|v| zdn_proto::via_from_wire(*v).ok()).map(|v| v.as_str()).collect();
            json!({
                "indicator": indicator,
                "first_seen": format_unix_ms(t.first_seen_unix_ms),
                "last_seen": format_unix_ms(t.last_seen_unix_ms),
                "sightings": t.sightings,
                "vias": vias,
            })
        })
        .collect();
    let doc = json!({
        "participant": participant,
        "exported": format_unix_ms(now_ms),
        "sightings": held.sightings.iter().map(sighting_row).collect::<Vec<_>>(),
        "aggregates": aggregates,
        "suspect_hosts": held.hosts.iter().map(zdn_answers::rows::host_row).collect::<Vec<_>>(),
        "agents": held.agents.iter().map(zdn_answers::rows::agent_row).collect::<Vec<_>>(),
        "audit": held.audit.iter().map(zdn_answers::rows::audit_row).collect::<Vec<_>>(),
    });
    let mut bytes = serde_json::to_vec_pretty(&doc).expect("JSON");
    bytes.push(b'\n');
    bytes
}

fn csv(sightings: &[v1::StoredSighting]) -> Vec<u8> {
    let rows: Vec<zdn_answers::rows::Row> = sightings.iter().map(sighting_row).collect();
    let mut out = Vec::new();
    zdn_answers::output::write(&mut out, zdn_answers::output::Format::Csv, &rows).expect("writing to memory");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(id: &str, participant: &str, indicator: &str, kind: Kind) -> v1::StoredSighting {
        v1::StoredSighting {
            sighting: Some(v1::Sighting {
                id: id.into(),
                indicator: indicator.into(),
                kind: v1::IndicatorKind::from(kind) as i32,
                via: v1::Via::DnsQuery as i32,
                observed: indicator.into(),
                first_seen_unix_ms: 1_768_467_660_000,
                last_seen_unix_ms: 1_768_467_720_000,
                count: 2,
                ..Default::default()
            }),
            participant: participant.into(),
            agent: "gw-1".into(),
            received_unix_ms: 1_768_467_800_000,
        }
    }

    #[test]
    fn patterns_quote_and_cover_every_kind_stix_has() {
        assert_eq!(pattern(Kind::Domain, "it's.example").unwrap(), r"[domain-name:value = 'it\'s.example']");
        assert_eq!(
            pattern(Kind::IpPort, "198.51.100.23:8443").unwrap(),
            "[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = '198.51.100.23' AND network-traffic:dst_port = 8443]"
        );
        assert!(pattern(Kind::IpPort, "[2001:db8::1]:443").unwrap().contains("'ipv6-addr'"));
        assert!(pattern(Kind::Cidr, "10.0.0.0/8").unwrap().contains("ipv4-addr:value ISSUBSET"));
        assert!(pattern(Kind::Ja3, "e7d705a3286e19ea42f587b344ee6865").is_none());
    }

    #[test]
    fn stix_ids_are_stable_and_objects_reference_each_other() {
        let sightings = [
            stored("s1", "umc", "evil.example", Kind::Domain),
            stored("s2", "ggz", "evil.example", Kind::Domain),
        ];
        let a = stix(&sightings, "z-cert", 1);
        let b = stix(&sightings, "z-cert", 1);
        assert_eq!(a, b);
        let objects = a["objects"].as_array().unwrap();
        let types: Vec<&str> = objects.iter().map(|o| o["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["identity", "indicator", "identity", "identity", "sighting", "sighting"]);
        let indicator = &objects[1];
        assert!(objects[4..].iter().all(|s| s["sighting_of_ref"] == indicator["id"]));
        let ids: BTreeSet<&str> = objects.iter().map(|o| o["id"].as_str().unwrap()).collect();
        for s in &objects[4..] {
            assert!(ids.contains(s["where_sighted_refs"][0].as_str().unwrap()));
        }
    }

    #[test]
    fn sightings_of_source_indicators_name_the_sources_ids() {
        let attribute = "5f0c3a2e-1b7d-4c1a-9d2e-0a1b2c3d4e5f";
        let stix_id = "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f";
        let mut from_misp = stored("s1", "umc", "evil.example", Kind::Domain);
        from_misp.sighting.as_mut().unwrap().indicator_id = attribute.into();
        let mut from_stix = stored("s2", "umc", "bad.example", Kind::Domain);
        from_stix.sighting.as_mut().unwrap().indicator_id = stix_id.into();
        let listed = stored("s3", "umc", "plain.example", Kind::Domain);
        let sightings = [from_misp, from_stix, listed];
        let none = BTreeSet::new();
        let doc =
            misp(&sightings, &Naming { false_positives: &none, producer: "z-cert", institutions: false });
        assert_eq!((doc[0]["uuid"].as_str(), doc[0].get("value")), (Some(attribute), None));
        assert_eq!((doc[1]["value"].as_str(), doc[1].get("uuid")), (Some("bad.example"), None));
        let bundle = stix(&sightings, "z-cert", 1);
        let objects = bundle["objects"].as_array().unwrap();
        let refs: Vec<&str> = objects
            .iter()
            .filter(|o| o["type"] == "sighting")
            .map(|o| o["sighting_of_ref"].as_str().unwrap())
            .collect();
        assert_eq!(refs[1], stix_id, "the source's STIX indicator, not one of ours");
        let ours: Vec<&Value> = objects.iter().filter(|o| o["type"] == "indicator").collect();
        assert_eq!(ours.len(), 2, "indicator objects only for those without a STIX id");
        assert!(ours.iter().all(|o| o["name"] != "bad.example"));
    }

    #[test]
    fn misp_marks_false_positives_as_type_1() {
        let sightings = [
            stored("s1", "umc", "evil.example", Kind::Domain),
            stored("s2", "umc", "cdn.example", Kind::Domain),
        ];
        let fp = BTreeSet::from(["cdn.example".to_owned()]);
        let naming = Naming { false_positives: &fp, producer: "z-cert", institutions: false };
        let doc = misp(&sightings, &naming);
        assert_eq!(doc[0]["type"], "0");
        assert_eq!(doc[1]["type"], "1");
        assert_eq!(
            (doc[0]["source"].as_str(), doc[0]["timestamp"].as_str(), doc[0]["value"].as_str()),
            (Some("ZDN"), Some("1768467720"), Some("evil.example")),
            "by value, the institution not named"
        );
        assert!(doc[0].get("uuid").is_none(), "no uuid but an attribute's: MISP reads it as one");
        let text = String::from_utf8(document(Format::Csv, &sightings, &naming, 0)).unwrap();
        assert!(text.starts_with("participant,agent,indicator,") && text.lines().count() == 3, "{text}");
    }
}
