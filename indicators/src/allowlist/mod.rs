//! Allowlists: MISP warninglists (known-benign domains, cloud ranges, public resolvers)
//! applied when a set is built, each under its [`Policy`]: an indicator an entry names exactly
//! is withdrawn and counted, one an entry covers more broadly is kept and flagged (see
//! `policy` for why), so the hot path never pays for either.
//!
//! Warninglist types: `hostname` (the name and its subdomains), `string` (exact values), `cidr`
//! (addresses and networks). `substring` and `regex` lists cannot be applied to canonical
//! values reliably and are skipped with a count.
//!
//! | file | job |
//! | --- | --- |
//! | `mod.rs` | loading lists, judging one indicator |
//! | `apply.rs` | applying the lists to every source, on every core, with counts per list |
//! | `document.rs` | a warninglist file, its entries borrowed from the bytes |
//! | `policy.rs` | [`Policy`] per list and the `[warninglist_policy]` configuration |
//! | `networks.rs` | which lists cover an address or network: the matcher's prefix table |

mod apply;
mod document;
mod networks;
mod policy;

pub use policy::{Decision, Policies, Policy};

use crate::model::{Indicator, Kind};
use crate::normalise::normalise;
use crate::report::{LoadError, LoadReport};
use document::Document;
use hashbrown::HashMap;
use ipnet::IpNet;
use networks::Coverage;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::OnceLock;

/// The tag a flagged indicator carries, one per list that flags it: `warninglist:<list>`.
pub const FLAG_TAG: &str = "warninglist:";

/// The loaded warninglists.
#[derive(Debug, Default)]
pub struct Allowlist {
    lists: Vec<List>,
    /// Hostname entries: the name and its subdomains.
    domains: HashMap<Box<str>, Vec<u16>>,
    /// String entries by kind (`Kind as usize`): exact canonical values.
    exact: [HashMap<Box<str>, Vec<u16>>; Kind::ALL.len()],
    /// CIDR entries, and the lookup structure built from them on first use.
    networks: Vec<(IpNet, u16)>,
    coverage: OnceLock<Coverage>,
    /// Indicators flagged by at least one list in the applications so far.
    flagged: usize,
}

/// One warninglist: who it is, its policy, what loading it gave and what it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct List {
    /// The list's directory name (`amazon-aws`), else its `name`.
    pub slug: String,
    pub policy: Policy,
    pub report: LoadReport,
    /// Indicators it withdrew, and indicators it flagged, in the last [`Allowlist::apply`]s.
    pub suppressed: usize,
    pub flagged: usize,
}

/// What a list does to one indicator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The first (lowest-numbered) list that withdraws it, if any.
    pub suppressed_by: Option<u16>,
    /// The lists that flag it (empty when suppressed).
    pub flagged_by: Vec<u16>,
}

impl Allowlist {
    /// Loads each path (a warninglist `list.json`, or every `list.json` below a directory)
    /// under `policies`. A policy naming a list that none of the paths hold is an error: a typo
    /// there would quietly apply the default.
    pub fn load(paths: &[std::path::PathBuf], policies: &Policies) -> Result<Allowlist, LoadError> {
        let mut allow = Allowlist::default();
        for path in paths {
            allow.add_path(path, policies)?;
        }
        let loaded: Vec<(&str, &str)> =
            allow.lists.iter().map(|l| (l.slug.as_str(), l.report.source.as_str())).collect();
        let unknown = policies.unknown(&loaded);
        if !unknown.is_empty() {
            return Err(LoadError::Malformed {
                path: "warninglist_policy".into(),
                format: "warninglist policy",
                what: format!("no loaded warninglist is called {}", unknown.join(", ")),
            });
        }
        Ok(allow)
    }

    fn add_path(&mut self, path: &Path, policies: &Policies) -> Result<(), LoadError> {
        let io = |e| LoadError::Io { path: path.display().to_string(), source: e };
        if path.is_dir() {
            let mut entries: Vec<_> =
                std::fs::read_dir(path).map_err(io)?.filter_map(Result::ok).map(|e| e.path()).collect();
            entries.sort();
            for entry in entries {
                if entry.is_dir() || entry.file_name().is_some_and(|n| n == "list.json") {
                    self.add_path(&entry, policies)?;
                }
            }
            return Ok(());
        }
        let bytes = std::fs::read(path).map_err(io)?;
        let doc: Document = serde_json::from_slice(&bytes).map_err(|e| LoadError::Malformed {
            path: path.display().to_string(),
            format: "MISP warninglist",
            what: e.to_string(),
        })?;
        // MISP's repository keeps each list as `lists/<slug>/list.json`; another file is known
        // by its own name.
        let slug = match path.file_name() {
            Some(file) if file == "list.json" => path.parent().and_then(Path::file_name),
            _ => path.file_stem(),
        };
        let slug = slug.map(|s| s.to_string_lossy().into_owned()).filter(|s| !s.is_empty());
        let name = doc.name.as_deref().unwrap_or_default();
        let slug = slug.unwrap_or_else(|| name.to_owned());
        let policy = policies.of(&slug, name);
        self.add_list(&path.display().to_string(), &slug, policy, &doc)
    }

    /// Adds one warninglist document under the default policy (`source` names it in errors).
    pub fn add_warninglist(&mut self, source: &str, doc: &Value) -> Result<(), LoadError> {
        let malformed =
            |what: String| LoadError::Malformed { path: source.into(), format: "MISP warninglist", what };
        let doc = Document::deserialize(doc).map_err(|e| malformed(e.to_string()))?;
        let name = doc.name.as_deref().unwrap_or(source).to_owned();
        self.add_list(source, &name, Policy::default(), &doc)
    }

    fn add_list(
        &mut self,
        source: &str,
        slug: &str,
        policy: Policy,
        doc: &Document<'_>,
    ) -> Result<(), LoadError> {
        let malformed = |what: &str| LoadError::Malformed {
            path: source.into(),
            format: "MISP warninglist",
            what: what.into(),
        };
        let entries = doc.list.as_deref().ok_or_else(|| malformed("no list array"))?;
        let typ = doc.typ.as_deref().unwrap_or("string");
        let name = doc.name.as_deref().unwrap_or(source);
        let id = u16::try_from(self.lists.len()).map_err(|_| malformed("more than 65,535 warninglists"))?;
        let mut report = LoadReport {
            source: name.to_owned(),
            format: format!("warninglist/{typ}"),
            ..LoadReport::default()
        };
        if policy == Policy::Off {
            report.skipped = BTreeMap::from([("policy off".to_owned(), entries.len())]);
        } else if matches!(typ, "substring" | "regex") {
            report.skipped = BTreeMap::from([(format!("{typ} list not applicable"), entries.len())]);
        } else {
            if typ == "hostname" {
                self.domains.reserve(entries.len());
            }
            for entry in entries.iter().filter_map(|e| e.0.as_deref()) {
                match self.add_entry(typ, entry, id) {
                    Some(true) => report.accepted += 1,
                    Some(false) => report.duplicates += 1,
                    None => *report.skipped.entry("not a value we match".into()).or_default() += 1,
                }
            }
        }
        self.lists.push(List { slug: slug.to_owned(), policy, report, suppressed: 0, flagged: 0 });
        self.coverage = OnceLock::new();
        Ok(())
    }

    /// Adds one entry of list `id`: whether it was new in that list, `None` if unusable.
    fn add_entry(&mut self, typ: &str, entry: &str, id: u16) -> Option<bool> {
        // Networks as most cidr lists write them (canonical already) skip the normaliser; an
        // IPv4-mapped IPv6 address goes through it, which makes it the IPv4 address it means.
        if typ == "cidr"
            && let Some(net) =
                entry.parse::<IpNet>().ok().or_else(|| entry.parse::<IpAddr>().ok().map(IpNet::from))
            && net == net.trunc()
            && net.addr().to_canonical() == net.addr()
        {
            self.networks.push((net, id));
            return Some(true);
        }
        let n = normalise(entry).ok()?;
        let add = |lists: &mut Vec<u16>| {
            let new = !lists.contains(&id);
            if new {
                lists.push(id);
            }
            new
        };
        Some(match n.kind {
            Kind::Domain if typ == "hostname" => add(self.domains.entry(n.value.into()).or_default()),
            Kind::Cidr | Kind::Ipv4 | Kind::Ipv6 => {
                let net =
                    n.value.parse::<IpNet>().or_else(|_| n.value.parse::<IpAddr>().map(IpNet::from)).ok()?;
                self.networks.push((net, id));
                true
            }
            kind => add(self.exact[kind as usize].entry(n.value.into()).or_default()),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty() && self.exact.iter().all(HashMap::is_empty) && self.networks.is_empty()
    }

    /// Indicators the applications so far kept and flagged.
    pub fn flagged(&self) -> usize {
        self.flagged
    }

    /// The lists, with what the applications so far did.
    pub fn lists(&self) -> &[List] {
        &self.lists
    }

    /// The lists that cover `ind`, each with whether its entry names exactly what `ind` does.
    fn covering(&self, ind: &Indicator) -> Vec<(u16, bool)> {
        let mut found: Vec<(u16, bool)> = Vec::new();
        let mut add = |lists: &[u16], exact: bool| found.extend(lists.iter().map(|&l| (l, exact)));
        if let Some(lists) = self.exact[ind.kind as usize].get(ind.value.as_str()) {
            add(lists, true);
        }
        let coverage = || self.coverage();
        match ind.kind {
            Kind::Domain => self.walk_domain(&ind.value, true, &mut add),
            Kind::Ipv4 | Kind::Ipv6 => {
                if let Some(c) = ind.value.parse().ok().and_then(|ip| coverage().address(ip)) {
                    let exact = c.network.prefix_len() == c.network.max_prefix_len();
                    add(&c.around, false);
                    if exact {
                        add(&c.own, true);
                    }
                }
            }
            Kind::Cidr => {
                if let Some(c) = ind.value.parse().ok().and_then(|net: IpNet| coverage().network(net)) {
                    add(&c.around, false);
                    if ind.value.parse::<IpNet>().is_ok_and(|net| net.trunc() == c.network) {
                        add(&c.own, true);
                    }
                }
            }
            Kind::IpPort => {
                if let Some(c) =
                    ind.value.parse::<std::net::SocketAddr>().ok().and_then(|sa| coverage().address(sa.ip()))
                {
                    add(&c.around, false);
                }
            }
            Kind::Url => match url_host(&ind.value) {
                Ok(ip) => {
                    if let Some(c) = coverage().address(ip) {
                        add(&c.around, false);
                    }
                }
                Err(host) => self.walk_domain(host, false, &mut add),
            },
            Kind::Ja3 | Kind::Ja4 => {}
        }
        found
    }

    /// Hostname entries for `name` and its parents; `name` itself is exact when `exact_self`.
    /// The walk stops before the top-level label: a hostname entry has at least two (as every
    /// domain `normalise` accepts), so probing the last one alone could only miss.
    fn walk_domain(&self, name: &str, exact_self: bool, add: &mut impl FnMut(&[u16], bool)) {
        let mut rest = name;
        let mut first = true;
        while let Some(dot) = rest.find('.') {
            if let Some(lists) = self.domains.get(rest) {
                add(lists, first && exact_self);
            }
            first = false;
            rest = &rest[dot + 1..];
        }
    }

    /// The networks' lookup structure, built on first use.
    fn coverage(&self) -> &Coverage {
        self.coverage.get_or_init(|| Coverage::new(&self.networks))
    }

    /// What the lists do to `ind` under their policies.
    pub fn judge(&self, ind: &Indicator) -> Verdict {
        let mut verdict = Verdict::default();
        for (list, exact) in self.covering(ind) {
            match self.lists[usize::from(list)].policy.decide(exact) {
                Decision::Suppress => {
                    verdict.suppressed_by = Some(verdict.suppressed_by.map_or(list, |first| first.min(list)));
                }
                Decision::Flag if !verdict.flagged_by.contains(&list) => verdict.flagged_by.push(list),
                Decision::Flag | Decision::Ignore => {}
            }
        }
        if verdict.suppressed_by.is_some() {
            verdict.flagged_by.clear();
        }
        verdict.flagged_by.sort_unstable();
        verdict
    }
}

/// A URL's host: an address, or else the name.
fn url_host(url: &str) -> Result<IpAddr, &str> {
    let host = url.split(['/', '?']).next().unwrap_or("");
    let host = host
        .rsplit_once(':')
        .filter(|(h, _)| !h.ends_with(']') || h.starts_with('['))
        .map_or(host, |(h, _)| h);
    let host = host.trim_matches(['[', ']']);
    host.parse::<IpAddr>().map_err(|_| host)
}

#[cfg(test)]
mod tests;
