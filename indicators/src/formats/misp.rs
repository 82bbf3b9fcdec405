//! MISP: feeds (a directory with `manifest.json` and one `<uuid>.json` per event) and event
//! exports (`{"Event": …}`, `{"response": [{"Event": …}]}` or a list of either).
//!
//! An attribute is an indicator when its type names a destination (`ip-dst`, `ip-dst|port`,
//! `domain`, `hostname`, `url`, …) and `to_ids` is true; attributes inside objects count the
//! same way, and an `ip-port` object's `ip` and `dst-port` become one IP:port. The event's
//! `tlp:` tag gives the TLP, its galaxy tag (or its `info`) the event name.

use crate::model::Kind;
use crate::model::Meta;
use crate::report::{ListBuilder, LoadError, Loaded};
use serde_json::Value;
use std::path::Path;

pub fn load_feed(dir: &Path) -> Result<Loaded, LoadError> {
    let source = dir.display().to_string();
    let io = |path: &Path, e| LoadError::Io { path: path.display().to_string(), source: e };
    let manifest_path = dir.join("manifest.json");
    let manifest: Value = read_json(&manifest_path, "MISP feed manifest")?;
    let uuids: Vec<&String> = manifest
        .as_object()
        .ok_or_else(|| LoadError::Malformed {
            path: manifest_path.display().to_string(),
            format: "MISP feed manifest",
            what: "not an object of event uuids".into(),
        })?
        .keys()
        .collect();
    let mut list = ListBuilder::new(&source, "misp-feed");
    for uuid in uuids {
        let path = dir.join(format!("{uuid}.json"));
        if !path.exists() {
            return Err(io(
                &path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "event listed in manifest.json is missing"),
            ));
        }
        let event: Value = read_json(&path, "MISP event")?;
        add_event(&mut list, uuid, event.get("Event").unwrap_or(&event));
    }
    Ok(list.finish())
}

/// A file of one or more exported events.
pub fn parse_export(source: &str, doc: &Value) -> Result<Loaded, LoadError> {
    let mut list = ListBuilder::new(source, "misp-event");
    let events: Vec<&Value> = match doc {
        Value::Array(items) => items.iter().map(|i| i.get("Event").unwrap_or(i)).collect(),
        Value::Object(o) if o.contains_key("response") => {
            o["response"].as_array().into_iter().flatten().map(|i| i.get("Event").unwrap_or(i)).collect()
        }
        Value::Object(o) if o.contains_key("Event") => vec![&o["Event"]],
        // A bare event object, as some exports write it.
        Value::Object(o) if o.contains_key("Attribute") || o.contains_key("Object") => vec![doc],
        _ => {
            return Err(LoadError::Malformed {
                path: source.into(),
                format: "MISP event",
                what: "no Event".into(),
            });
        }
    };
    for (i, event) in events.into_iter().enumerate() {
        let name = event
            .get("uuid")
            .and_then(Value::as_str)
            .map_or_else(|| format!("event {}", i + 1), str::to_owned);
        add_event(&mut list, &name, event);
    }
    Ok(list.finish())
}

fn read_json(path: &Path, format: &'static str) -> Result<Value, LoadError> {
    let bytes =
        std::fs::read(path).map_err(|e| LoadError::Io { path: path.display().to_string(), source: e })?;
    serde_json::from_slice(&bytes).map_err(|e| LoadError::Malformed {
        path: path.display().to_string(),
        format,
        what: e.to_string(),
    })
}

fn tags(v: &Value) -> Vec<String> {
    v.get("Tag")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("name")?.as_str())
        .map(str::to_owned)
        .collect()
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// MISP writes booleans as true/false and, in older exports, as "1"/"0".
fn flag(v: &Value, key: &str) -> bool {
    match v.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "1" || s.eq_ignore_ascii_case("true"),
        Some(Value::Number(n)) => n.as_u64() == Some(1),
        _ => false,
    }
}

fn add_event(list: &mut ListBuilder, name: &str, event: &Value) {
    let event_tags = tags(event);
    let tlp = event_tags.iter().find_map(|t| t.strip_prefix("tlp:")).unwrap_or("").to_owned();
    let family = event_tags
        .iter()
        .find_map(|t| {
            t.strip_prefix("misp-galaxy:")
                .and_then(|g| g.split_once('='))
                .map(|(_, v)| v.trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| text(event, "info").to_owned());
    let base = Meta { event: family, tlp, tags: event_tags, ..Meta::default() };
    for (i, attr) in event.get("Attribute").and_then(Value::as_array).into_iter().flatten().enumerate() {
        add_attribute(list, &format!("{name}/attribute {}", i + 1), attr, &base, None);
    }
    for (i, object) in event.get("Object").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let attrs: Vec<&Value> =
            object.get("Attribute").and_then(Value::as_array).into_iter().flatten().collect();
        // An ip-port object names one destination: its ip (or ip-dst) with its dst-port.
        let port = attrs.iter().find(|a| text(a, "object_relation") == "dst-port").map(|a| text(a, "value"));
        for (j, attr) in attrs.iter().enumerate() {
            if text(attr, "object_relation") == "dst-port" {
                continue;
            }
            add_attribute(list, &format!("{name}/object {}/attribute {}", i + 1, j + 1), attr, &base, port);
        }
    }
}

fn add_attribute(list: &mut ListBuilder, location: &str, attr: &Value, base: &Meta, port: Option<&str>) {
    if flag(attr, "deleted") {
        list.skip("deleted");
        return;
    }
    let typ = text(attr, "type");
    let value = text(attr, "value");
    let expected: &[Kind] = match typ {
        "ip-dst" | "ip-src" | "ip" => &[Kind::Ipv4, Kind::Ipv6, Kind::Cidr],
        "ip-dst|port" | "ip-src|port" => &[Kind::IpPort],
        "domain" | "hostname" => &[Kind::Domain],
        "url" | "link" => &[Kind::Url, Kind::Domain],
        "hostname|port" => &[Kind::Url],
        "ja3-fingerprint-md5" => &[Kind::Ja3],
        "ja4-fingerprint" => &[Kind::Ja4],
        "domain|ip" => {
            // Both halves are destinations of their own.
            if flag(attr, "to_ids") {
                let meta = attribute_meta(attr, base);
                for part in value.split('|') {
                    list.add(location, part, attribute_id(attr), &meta);
                }
            } else {
                list.skip("to_ids false");
            }
            return;
        }
        other => {
            list.skip(format!("type {other}"));
            return;
        }
    };
    if !flag(attr, "to_ids") {
        list.skip("to_ids false");
        return;
    }
    let meta = attribute_meta(attr, base);
    // MISP writes composite values as `a|b`; ours are `a:b`.
    let value = match (typ, port) {
        ("ip-dst|port" | "ip-src|port" | "hostname|port", _) => value.replacen('|', ":", 1),
        (_, Some(port)) if !port.is_empty() => match value.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(v6)) => format!("[{v6}]:{port}"),
            _ => format!("{value}:{port}"),
        },
        _ => value.to_owned(),
    };
    let expected: &[Kind] = if port.is_some_and(|p| !p.is_empty()) { &[Kind::IpPort] } else { expected };
    list.add_as(location, &value, expected, attribute_id(attr), &meta);
}

fn attribute_meta(attr: &Value, base: &Meta) -> Meta {
    let mut meta = base.clone();
    meta.tags.extend(tags(attr));
    meta
}

fn attribute_id(attr: &Value) -> Option<&str> {
    Some(text(attr, "uuid")).filter(|u| !u.is_empty())
}
