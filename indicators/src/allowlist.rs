//! Allowlists: values that must never match, from MISP warninglists (known-benign domains,
//! cloud ranges, public resolvers). Applied when a set is built: an indicator on an allowlist
//! is withdrawn and counted, so the hot path never pays for it.
//!
//! Warninglist types: `hostname` (the name and its subdomains), `string` (exact values), `cidr`
//! (addresses and networks). `substring` and `regex` lists cannot be applied to canonical
//! values reliably and are skipped with a count.

use crate::model::{Indicator, Kind};
use crate::normalise::normalise;
use crate::report::{LoadError, LoadReport};
use ipnet::IpNet;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::Path;

#[derive(Debug, Default)]
pub struct Allowlist {
    domains: HashSet<String>,
    exact: HashSet<(Kind, String)>,
    networks: Vec<IpNet>,
    pub reports: Vec<LoadReport>,
}

impl Allowlist {
    /// Loads a warninglist `list.json`, or every `list.json` below a directory.
    pub fn load(path: &Path) -> Result<Allowlist, LoadError> {
        let mut allow = Allowlist::default();
        allow.add_path(path)?;
        Ok(allow)
    }

    fn add_path(&mut self, path: &Path) -> Result<(), LoadError> {
        let io = |e| LoadError::Io { path: path.display().to_string(), source: e };
        if path.is_dir() {
            let mut entries: Vec<_> =
                std::fs::read_dir(path).map_err(io)?.filter_map(Result::ok).map(|e| e.path()).collect();
            entries.sort();
            for entry in entries {
                if entry.is_dir() || entry.file_name().is_some_and(|n| n == "list.json") {
                    self.add_path(&entry)?;
                }
            }
            return Ok(());
        }
        let bytes = std::fs::read(path).map_err(io)?;
        let doc: Value = serde_json::from_slice(&bytes).map_err(|e| LoadError::Malformed {
            path: path.display().to_string(),
            format: "MISP warninglist",
            what: e.to_string(),
        })?;
        self.add_warninglist(&path.display().to_string(), &doc)
    }

    pub fn add_warninglist(&mut self, source: &str, doc: &Value) -> Result<(), LoadError> {
        let malformed = |what: &str| LoadError::Malformed {
            path: source.into(),
            format: "MISP warninglist",
            what: what.into(),
        };
        let list = doc.get("list").and_then(Value::as_array).ok_or_else(|| malformed("no list array"))?;
        let typ = doc.get("type").and_then(Value::as_str).unwrap_or("string");
        let name = doc.get("name").and_then(Value::as_str).unwrap_or(source);
        let mut report = LoadReport {
            source: name.to_owned(),
            format: format!("warninglist/{typ}"),
            ..LoadReport::default()
        };
        if matches!(typ, "substring" | "regex") {
            report.skipped = BTreeMap::from([(format!("{typ} list not applicable"), list.len())]);
            self.reports.push(report);
            return Ok(());
        }
        for entry in list.iter().filter_map(Value::as_str) {
            let added = match (typ, normalise(entry)) {
                ("hostname", Ok(n)) if n.kind == Kind::Domain => self.domains.insert(n.value),
                (_, Ok(n)) if matches!(n.kind, Kind::Cidr | Kind::Ipv4 | Kind::Ipv6) => n
                    .value
                    .parse::<IpNet>()
                    .or_else(|_| n.value.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| self.networks.push(net))
                    .is_ok(),
                (_, Ok(n)) => self.exact.insert((n.kind, n.value)),
                (_, Err(_)) => {
                    *report.skipped.entry("not a value we match".into()).or_default() += 1;
                    continue;
                }
            };
            if added {
                report.accepted += 1;
            } else {
                report.duplicates += 1;
            }
        }
        self.reports.push(report);
        Ok(())
    }

    /// Adds another allowlist's entries to this one.
    pub fn merge(&mut self, other: Allowlist) {
        self.domains.extend(other.domains);
        self.exact.extend(other.exact);
        self.networks.extend(other.networks);
        self.reports.extend(other.reports);
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty() && self.exact.is_empty() && self.networks.is_empty()
    }

    /// Whether `ind` is allowlisted.
    pub fn covers(&self, ind: &Indicator) -> bool {
        if self.exact.contains(&(ind.kind, ind.value.clone())) {
            return true;
        }
        match ind.kind {
            Kind::Domain => self.covers_domain(&ind.value),
            Kind::Ipv4 | Kind::Ipv6 => ind.value.parse().is_ok_and(|ip| self.covers_ip(ip)),
            Kind::Cidr => {
                ind.value.parse::<IpNet>().is_ok_and(|net| self.networks.iter().any(|n| n.contains(&net)))
            }
            Kind::IpPort => ind.value.parse::<std::net::SocketAddr>().is_ok_and(|sa| self.covers_ip(sa.ip())),
            Kind::Url => {
                let host = ind.value.split(['/', '?']).next().unwrap_or("");
                let host = host
                    .rsplit_once(':')
                    .filter(|(h, _)| !h.ends_with(']') || h.starts_with('['))
                    .map_or(host, |(h, _)| h);
                match host.trim_matches(['[', ']']).parse::<IpAddr>() {
                    Ok(ip) => self.covers_ip(ip),
                    Err(_) => self.covers_domain(host),
                }
            }
            Kind::Ja3 | Kind::Ja4 => false,
        }
    }

    fn covers_ip(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|n| n.contains(&ip))
    }

    fn covers_domain(&self, name: &str) -> bool {
        let mut rest = name;
        loop {
            if self.domains.contains(rest) {
                return true;
            }
            match rest.find('.') {
                Some(dot) => rest = &rest[dot + 1..],
                None => return false,
            }
        }
    }

    /// Withdraws allowlisted indicators; returns what remains and what was suppressed.
    pub fn apply(&self, indicators: Vec<Indicator>) -> (Vec<Indicator>, Vec<Indicator>) {
        if self.is_empty() {
            return (indicators, Vec::new());
        }
        indicators.into_iter().partition(|i| !self.covers(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::parse_plain;

    #[test]
    fn suppresses_hostnames_with_subdomains_networks_and_exact_strings() {
        let mut allow = Allowlist::default();
        let lists = [
            serde_json::json!({"name": "top", "type": "hostname", "list": ["google.com", "Example.ORG."]}),
            serde_json::json!({"name": "dns", "type": "cidr", "list": ["8.8.8.0/24", "2001:4860::/32"]}),
            serde_json::json!({"name": "fp", "type": "string", "list": ["exact.example"]}),
            serde_json::json!({"name": "re", "type": "regex", "list": ["^a.*"]}),
        ];
        for l in &lists {
            allow.add_warninglist("t", l).unwrap();
        }
        let indicators = parse_plain(
            "t",
            "docs.google.com\nnotgoogle.com\n8.8.8.8\n8.8.8.8:53\n8.8.9.9\nexact.example\nsub.exact.example\nexample.org/x.exe\n",
        )
        .indicators;
        let (kept, suppressed) = allow.apply(indicators);
        let kept: Vec<&str> = kept.iter().map(|i| i.value.as_str()).collect();
        assert_eq!(kept, ["notgoogle.com", "8.8.9.9", "sub.exact.example"]);
        assert_eq!(suppressed.len(), 5);
        assert_eq!(allow.reports[3].skipped.values().sum::<usize>(), 1);
        assert!(allow.add_warninglist("t", &serde_json::json!({"type": "string"})).is_err());
    }
}
