//! The indicator model: what an indicator is, and through which mechanism traffic matched it.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// What an indicator value denotes. The text names (`as_str`) are part of the sighting JSON
/// contract and the wire format; do not rename them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A domain; matches the name and its subdomains unless `exact_only`.
    Domain,
    Ipv4,
    Ipv6,
    /// An IPv4 or IPv6 network; the longest prefix wins.
    Cidr,
    /// Address and destination port.
    IpPort,
    /// Host and path, scheme-less.
    Url,
    Ja3,
    Ja4,
}

impl Kind {
    pub const ALL: [Kind; 8] =
        [Kind::Domain, Kind::Ipv4, Kind::Ipv6, Kind::Cidr, Kind::IpPort, Kind::Url, Kind::Ja3, Kind::Ja4];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Domain => "domain",
            Kind::Ipv4 => "ipv4",
            Kind::Ipv6 => "ipv6",
            Kind::Cidr => "cidr",
            Kind::IpPort => "ip_port",
            Kind::Url => "url",
            Kind::Ja3 => "ja3",
            Kind::Ja4 => "ja4",
        }
    }

    /// The inverse of [`Kind::as_str`].
    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The mechanism through which the agent saw an indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    IpDst,
    DnsQuery,
    DnsAnswer,
    TlsSni,
    QuicSni,
    HttpHost,
    HttpUrl,
    Ja3,
    Ja4,
}

impl Via {
    pub const ALL: [Via; 9] = [
        Via::IpDst,
        Via::DnsQuery,
        Via::DnsAnswer,
        Via::TlsSni,
        Via::QuicSni,
        Via::HttpHost,
        Via::HttpUrl,
        Via::Ja3,
        Via::Ja4,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Via::IpDst => "ip_dst",
            Via::DnsQuery => "dns_query",
            Via::DnsAnswer => "dns_answer",
            Via::TlsSni => "tls_sni",
            Via::QuicSni => "quic_sni",
            Via::HttpHost => "http_host",
            Via::HttpUrl => "http_url",
            Via::Ja3 => "ja3",
            Via::Ja4 => "ja4",
        }
    }

    /// The inverse of [`Via::as_str`].
    pub fn parse(text: &str) -> Option<Via> {
        Via::ALL.into_iter().find(|v| v.as_str() == text)
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where indicators come from and what their source says about them. One record is shared
/// (`Arc`) by all the indicators it describes — a file, a MISP event, a STIX object — so 1.85M
/// indicators carry thousands of these, not millions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Meta {
    /// The file or feed name.
    pub source: String,
    /// Event, campaign or family ("" when the source gives none).
    pub event: String,
    /// TLP label ("" when the source gives none).
    pub tlp: String,
    /// 0-100, 0 when unknown.
    pub confidence: u8,
    /// Validity window in Unix milliseconds; `None` is unbounded.
    pub valid_from_unix_ms: Option<i64>,
    pub valid_until_unix_ms: Option<i64>,
    pub tags: Vec<String>,
}

/// One indicator of compromise. `value` is always in the canonical form [`crate::normalise`]
/// produces for `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Indicator {
    /// Stable id within its source (MISP attribute uuid, STIX id); `None` for list formats,
    /// whose indicators are known by their value (see [`Indicator::id`]).
    pub id: Option<String>,
    pub kind: Kind,
    pub value: String,
    pub meta: Arc<Meta>,
    /// Domain indicators: match the name only, not its subdomains.
    pub exact_only: bool,
}

impl Indicator {
    /// The id from the source, else the value.
    pub fn id(&self) -> &str {
        self.id.as_deref().unwrap_or(&self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
        for v in Via::ALL {
            assert_eq!(Via::parse(v.as_str()), Some(v));
        }
        assert_eq!(Kind::parse("hostname"), None);
        assert_eq!(Via::parse(""), None);
    }
}
