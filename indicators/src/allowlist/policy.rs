//! What a warninglist does to the indicators it covers: the per-list policy.
//!
//! MISP's warninglists mean "a value here is *likely* a false positive": they warn, they do not
//! delete. A cloud provider's /12 covers the C2 server an attacker rented inside it; a
//! top-domains list covers `docs.google.com`, which hosts phishing forms. So by default an
//! entry withdraws an indicator only when it names exactly what the indicator names (the same
//! domain, address or network, or the same string): then the indicator adds nothing the list
//! does not already call benign. Broader matches keep the indicator and flag it, and the flag
//! travels with it to analysts (the tag `warninglist:<list>`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// What one warninglist does with the indicators it covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Withdraw what an entry names exactly; keep and flag what it covers more broadly (a
    /// subdomain of a listed hostname, an address or `IP:port` inside a listed network, a URL
    /// on a listed host).
    #[default]
    Specific,
    /// Withdraw everything the list covers (what every list did before this policy existed).
    Suppress,
    /// Withdraw nothing; flag everything the list covers.
    Flag,
    /// Ignore the list.
    Off,
}

impl Policy {
    /// What this policy does with a covered indicator; `exact` when the entry names exactly
    /// what the indicator does.
    pub fn decide(self, exact: bool) -> Decision {
        match self {
            Policy::Specific if exact => Decision::Suppress,
            Policy::Specific | Policy::Flag => Decision::Flag,
            Policy::Suppress => Decision::Suppress,
            Policy::Off => Decision::Ignore,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Specific => "specific",
            Policy::Suppress => "suppress",
            Policy::Flag => "flag",
            Policy::Off => "off",
        }
    }
}

impl std::str::FromStr for Policy {
    type Err = String;

    fn from_str(text: &str) -> Result<Policy, String> {
        [Policy::Specific, Policy::Suppress, Policy::Flag, Policy::Off]
            .into_iter()
            .find(|p| p.as_str() == text)
            .ok_or_else(|| format!("{text:?} is not a warninglist policy: specific, suppress, flag or off"))
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens to one covered indicator under one list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Suppress,
    Flag,
    Ignore,
}

/// The `[warninglist_policy]` table of `agent.toml` and `collector.toml`: a default and
/// exceptions by list, named by the list's directory (`amazon-aws`, as in MISP's repository)
/// or by its `name`.
///
/// ```toml
/// [warninglist_policy]
/// default = "specific"                                  # specific | suppress | flag | off
/// lists = { public-dns-v4 = "suppress", amazon-aws = "flag", second-level-tlds = "off" }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policies {
    pub default: Policy,
    pub lists: BTreeMap<String, Policy>,
}

impl Policies {
    /// Every list under one policy.
    pub fn all(policy: Policy) -> Policies {
        Policies { default: policy, lists: BTreeMap::new() }
    }

    /// The policy of the list with directory name `slug` and `name`.
    pub fn of(&self, slug: &str, name: &str) -> Policy {
        self.lists.get(slug).or_else(|| self.lists.get(name)).copied().unwrap_or(self.default)
    }

    /// The configured list names no loaded list answers to (`loaded`: each list's slug and
    /// name): a typo there would silently apply the default.
    pub fn unknown<'a>(&'a self, loaded: &[(&str, &str)]) -> Vec<&'a str> {
        self.lists
            .keys()
            .filter(|key| !loaded.iter().any(|(slug, name)| slug == key || name == key))
            .map(String::as_str)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_and_lookup_by_directory_or_name() {
        assert_eq!(Policy::Specific.decide(true), Decision::Suppress);
        assert_eq!(Policy::Specific.decide(false), Decision::Flag);
        assert_eq!(Policy::Suppress.decide(false), Decision::Suppress);
        assert_eq!(Policy::Flag.decide(true), Decision::Flag);
        assert_eq!(Policy::Off.decide(true), Decision::Ignore);
        let p: Policies = toml::from_str(
            "default = \"flag\"\nlists = { amazon-aws = \"off\", \"Top 1000\" = \"suppress\" }",
        )
        .unwrap();
        assert_eq!(p.of("amazon-aws", "List of known Amazon AWS IP address ranges"), Policy::Off);
        assert_eq!(p.of("top-1000", "Top 1000"), Policy::Suppress);
        assert_eq!(p.of("other", "Other"), Policy::Flag);
        assert_eq!(p.unknown(&[("amazon-aws", "x")]), ["Top 1000"]);
        assert!(toml::from_str::<Policies>("default = \"hide\"").is_err());
        assert!(toml::from_str::<Policies>("defualt = \"flag\"").is_err());
    }
}
