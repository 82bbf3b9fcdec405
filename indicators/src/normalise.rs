//! Canonical text forms for indicator values.
//!
//! Lists arrive defanged (`hxxp://evil[.]example`), in mixed case, with trailing dots, IDNs,
//! IPv4-mapped IPv6 and scheme-less URLs. [`normalise`] detects the kind of a raw value and
//! returns the one form the matcher compares against, or the reason it cannot be an indicator.
//!
//! Canonical forms:
//! - domain: lower-case ASCII (IDN as punycode), no trailing dot, no leading `*.`;
//! - ipv4 / ipv6: the standard text form; IPv4-mapped IPv6 becomes ipv4;
//! - cidr: the network address and prefix (`10.1.0.0/16`); a full-length prefix is an address;
//! - ip_port: `1.2.3.4:443` or `[2001:db8::1]:443`;
//! - url: `host[:port]/path?query`, scheme-less, host canonical as above, default port removed;
//!   or a bare `/path` that matches on any host;
//! - ja3: 32 lower-case hex digits; ja4: the JA4 `a_b_c` form, lower-case.

use crate::model::Kind;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use thiserror::Error;

/// A value in canonical form with its detected kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalised {
    pub kind: Kind,
    pub value: String,
}

/// Why a raw value is not an indicator.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RejectReason {
    #[error("empty value")]
    Empty,
    #[error("value longer than {max} bytes")]
    TooLong { max: usize },
    #[error("invalid domain name: {0}")]
    BadDomain(&'static str),
    #[error("invalid port")]
    BadPort,
    #[error("invalid network prefix")]
    BadCidr,
    #[error("unsupported URL scheme {0:?}")]
    BadScheme(String),
    #[error("not an IP address, network, IP:port, domain, URL, JA3 or JA4")]
    Unrecognised,
    #[error("{0}")]
    Format(String),
}

/// The longest value we accept (a URL); longer ones are almost always garbage in a feed.
pub const MAX_VALUE_LEN: usize = 2048;
const MAX_DOMAIN_LEN: usize = 253;

/// Detects the kind of `raw` and returns its canonical form.
pub fn normalise(raw: &str) -> Result<Normalised, RejectReason> {
    let too_long = RejectReason::TooLong { max: MAX_VALUE_LEN };
    // Defanged text is longer than what it stands for, but not four times longer; the bound
    // also keeps refanging's passes cheap.
    if raw.len() > 4 * MAX_VALUE_LEN {
        return Err(too_long);
    }
    let refanged = refang(raw.trim());
    let text = refanged.as_ref();
    if text.is_empty() {
        return Err(RejectReason::Empty);
    }
    if text.len() > MAX_VALUE_LEN {
        return Err(too_long);
    }
    let canonical = detect(text)?;
    // Escaping can lengthen a value past the bound; the canonical form must pass it too, or
    // it would not be its own canonical form.
    if canonical.value.len() > MAX_VALUE_LEN {
        return Err(too_long);
    }
    Ok(canonical)
}

/// The kind and canonical form of refanged, trimmed, bounded text.
fn detect(text: &str) -> Result<Normalised, RejectReason> {
    if text.starts_with('/') {
        return path_only_url(text);
    }
    // `split_once("://")` would build a substring searcher for every value.
    let scheme_end = text.match_indices(':').map(|(i, _)| i).find(|&i| text[i..].starts_with("://"));
    if let Some(end) = scheme_end {
        return normalise_url(Some(&text[..end].to_ascii_lowercase()), &text[end + 3..]);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(address(ip));
    }
    if let Ok(sa) = text.parse::<SocketAddr>() {
        return ip_port(sa.ip(), sa.port());
    }
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(network(net));
    }
    if text.contains('/') {
        // A '/' that did not make a CIDR: an address-looking prefix with a bad length is a
        // broken CIDR, anything else a scheme-less URL (Maltrail writes `1.2.3.4/x.exe`).
        let (head, tail) = text.split_once('/').unwrap_or((text, ""));
        if head.parse::<IpAddr>().is_ok() && !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RejectReason::BadCidr);
        }
        return normalise_url(None, text);
    }
    if let Some(fp) = fingerprint(text) {
        return Ok(fp);
    }
    if let Some((host, port)) = text.rsplit_once(':')
        && port.bytes().all(|b| b.is_ascii_digit())
        && !host.contains(':')
    {
        // `evil.example:8080` — a host with a port is a URL without a path.
        return normalise_url(None, text);
    }
    Ok(Normalised { kind: Kind::Domain, value: domain(text)? })
}

/// Canonical form of a domain name: lower-case ASCII, punycode for IDNs, no trailing dot, no
/// leading wildcard label.
pub fn domain(raw: &str) -> Result<String, RejectReason> {
    let name = raw.strip_prefix("*.").unwrap_or(raw);
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err(RejectReason::BadDomain("empty"));
    }
    let ascii = if name.is_ascii() {
        name.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(name).map_err(|_| RejectReason::BadDomain("invalid IDN"))?
    };
    if ascii.len() > MAX_DOMAIN_LEN {
        return Err(RejectReason::BadDomain("longer than 253 bytes"));
    }
    if !ascii.contains('.') {
        // A single label would match a whole TLD: never what a CERT means.
        return Err(RejectReason::BadDomain("single label"));
    }
    for label in ascii.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(RejectReason::BadDomain("empty label or label longer than 63 bytes"));
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(RejectReason::BadDomain("character outside letters, digits, '-' and '_'"));
        }
    }
    if ascii.rsplit('.').next().is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit())) {
        // `1.2.3` and friends: a mangled address, not a name.
        return Err(RejectReason::BadDomain("numeric top-level label"));
    }
    Ok(ascii)
}

/// Undoes the usual defanging: `hxxp`, `[.]`, `(.)`, `[dot]`, `[:]`. Most values are not
/// defanged; they pass through without a copy.
fn refang(text: &str) -> std::borrow::Cow<'_, str> {
    let bracketed = text.bytes().any(|b| matches!(b, b'[' | b'(' | b'{'));
    let head = text.get(..4).unwrap_or("");
    if !bracketed
        && !head.eq_ignore_ascii_case("hxxp")
        && !head.get(..3).is_some_and(|h| h.eq_ignore_ascii_case("fxp"))
    {
        return std::borrow::Cow::Borrowed(text);
    }
    // Until nothing is left to replace: removing one pair of brackets can leave another
    // defanged form behind (`[[.]]`, `[(.)]`), and a canonical value must be its own canonical
    // form. Every replacement shortens the text, so an unchanged length means none was made,
    // and the loop ends within as many passes as the entry has brackets.
    let mut s = text.to_owned();
    loop {
        let next = s
            .replace("[.]", ".")
            .replace("(.)", ".")
            .replace("{.}", ".")
            .replace("[dot]", ".")
            .replace("[:]", ":")
            .replace("[://]", "://");
        if next.len() == s.len() {
            break;
        }
        s = next;
    }
    for (defanged, scheme) in [("hxxps", "https"), ("hxxp", "http"), ("fxp", "ftp")] {
        if s.get(..defanged.len()).is_some_and(|head| head.eq_ignore_ascii_case(defanged)) {
            s.replace_range(..defanged.len(), scheme);
        }
    }
    std::borrow::Cow::Owned(s)
}

fn address(ip: IpAddr) -> Normalised {
    match ip.to_canonical() {
        IpAddr::V4(v4) => Normalised { kind: Kind::Ipv4, value: v4.to_string() },
        IpAddr::V6(v6) => Normalised { kind: Kind::Ipv6, value: v6.to_string() },
    }
}

fn network(net: IpNet) -> Normalised {
    if net.prefix_len() == net.max_prefix_len() {
        return address(net.addr());
    }
    Normalised { kind: Kind::Cidr, value: net.trunc().to_string() }
}

fn ip_port(ip: IpAddr, port: u16) -> Result<Normalised, RejectReason> {
    if port == 0 {
        return Err(RejectReason::BadPort);
    }
    let value = SocketAddr::new(ip.to_canonical(), port).to_string();
    Ok(Normalised { kind: Kind::IpPort, value })
}

/// JA3 is an MD5 in hex; JA4 is `[tqd]NN[di]NNNNaa_<12 hex>_<12 hex>`.
fn fingerprint(text: &str) -> Option<Normalised> {
    if text.len() != 32 && text.len() != 36 {
        return None;
    }
    let lower = text.to_ascii_lowercase();
    if lower.len() == 32 && lower.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some(Normalised { kind: Kind::Ja3, value: lower });
    }
    let parts: Vec<&str> = lower.split('_').collect();
    let is_ja4 = parts.len() == 3
        && parts[0].len() == 10
        && matches!(parts[0].as_bytes()[0], b't' | b'q' | b'd')
        && parts[0].bytes().all(|b| b.is_ascii_alphanumeric())
        && parts[1..].iter().all(|p| p.len() == 12 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    is_ja4.then_some(Normalised { kind: Kind::Ja4, value: lower })
}

/// `rest` is everything after `scheme://`, or the whole scheme-less value.
fn normalise_url(scheme: Option<&str>, rest: &str) -> Result<Normalised, RejectReason> {
    let default_port = match scheme {
        None | Some("http") => 80,
        Some("https") => 443,
        Some("ftp") => 21,
        Some(other) => return Err(RejectReason::BadScheme(other.to_owned())),
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.is_empty() && !path.is_empty() {
        // `http:///gate.php`: feeds write host-less paths this way.
        return path_only_url(path);
    }
    let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let (host, port) = split_host_port(authority)?;
    // Brackets enclose an IPv6 literal and nothing else (`[0.0.2.0` is no host).
    let literal = match host.strip_prefix('[') {
        Some(inner) => {
            let v6 = inner.strip_suffix(']').and_then(|v6| v6.parse::<std::net::Ipv6Addr>().ok());
            Some(IpAddr::V6(v6.ok_or(RejectReason::BadDomain("brackets around no IPv6 address"))?))
        }
        // Feeds also write IPv6 hosts without brackets (`http://2001:db8::1/x`).
        None => host.parse::<IpAddr>().ok(),
    };
    let host = match literal.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => format!("[{v6}]"),
        None => domain(host)?,
    };
    let path = match path {
        "" => "/".to_owned(),
        p if p.starts_with('?') => format!("/{}", canonical_path(p)),
        p => canonical_path(p),
    };
    if path == "/" && port.is_none_or(|p| p == default_port) && scheme.is_none() {
        // `evil.example/` in a trail list names the host, not a page on it.
        return normalise(&host);
    }
    // The value has no scheme, and a value without a port reads as port 80 (the agent sees
    // URLs of plain HTTP only): so the port is written unless it is the scheme's default or
    // 80 (`https://x:80/a` is `x/a`, as `x/a` is again).
    let value = match port {
        Some(p) if p != default_port && p != 80 => format!("{host}:{p}{path}"),
        _ => format!("{host}{path}"),
    };
    Ok(Normalised { kind: Kind::Url, value })
}

/// A URL path without a host (`/gate.php`): Maltrail and MISP carry these for panels that move
/// between hosts; it matches that path on any host.
fn path_only_url(text: &str) -> Result<Normalised, RejectReason> {
    if text.len() < 2 {
        return Err(RejectReason::Format("a URL path needs more than '/'".into()));
    }
    Ok(Normalised { kind: Kind::Url, value: canonical_path(text) })
}

/// The path and query as they travel in an HTTP request line: bytes outside printable ASCII
/// and a `%` that starts no escape percent-encoded, escapes of unreserved characters decoded,
/// hex digits upper-case. The agent canonicalises what it sees the same way, so `/a%7Eb`,
/// `/a~b` and `/ä` compare right.
pub fn canonical_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    push_canonical_path(&mut out, path);
    out
}

/// Appends the canonical form of `path` (see [`canonical_path`]) to `out`: how the agent
/// builds a request's URL in one buffer.
pub fn push_canonical_path(out: &mut String, path: &str) {
    fn push_escaped(out: &mut String, b: u8) {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        out.push('%');
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    let bytes = path.as_bytes();
    // The common path has nothing to rewrite: copied whole.
    if bytes.iter().all(|&b| b.is_ascii_graphic() && b != b'%') {
        out.push_str(path);
        return;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let escaped = (b == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match escaped {
            Some(c) if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') => {
                out.push(char::from(c));
                i += 3;
            }
            Some(c) => {
                push_escaped(out, c);
                i += 3;
            }
            // A `%` that starts no escape is itself escaped: left bare, it could form one with
            // what follows once an escape before it is decoded (`%%358` → `%58` → `X`).
            None if b.is_ascii_graphic() && b != b'%' => {
                out.push(char::from(b));
                i += 1;
            }
            None => {
                push_escaped(out, b);
                i += 1;
            }
        }
    }
}

fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), RejectReason> {
    let port_sep = if authority.starts_with('[') {
        authority.find("]:").map(|i| i + 1)
    } else if authority.matches(':').count() == 1 {
        authority.find(':')
    } else {
        None
    };
    match port_sep {
        Some(i) => {
            let port = authority[i + 1..].parse::<u16>().map_err(|_| RejectReason::BadPort)?;
            if port == 0 {
                return Err(RejectReason::BadPort);
            }
            Ok((&authority[..i], Some(port)))
        }
        None => Ok((authority, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> (Kind, String) {
        let n = normalise(raw).unwrap_or_else(|e| panic!("{raw:?}: {e}"));
        (n.kind, n.value)
    }

    #[test]
    fn detects_and_canonicalises_each_kind() {
        assert_eq!(ok("Evil.Example."), (Kind::Domain, "evil.example".into()));
        assert_eq!(ok("*.evil.example"), (Kind::Domain, "evil.example".into()));
        assert_eq!(ok("evil[.]example"), (Kind::Domain, "evil.example".into()));
        assert_eq!(ok("bücher.example"), (Kind::Domain, "xn--bcher-kva.example".into()));
        assert_eq!(ok("203.0.113.7"), (Kind::Ipv4, "203.0.113.7".into()));
        assert_eq!(ok("::ffff:203.0.113.7"), (Kind::Ipv4, "203.0.113.7".into()));
        assert_eq!(ok("2001:DB8::1"), (Kind::Ipv6, "2001:db8::1".into()));
        assert_eq!(ok("10.1.2.3/16"), (Kind::Cidr, "10.1.0.0/16".into()));
        assert_eq!(ok("10.1.2.3/32"), (Kind::Ipv4, "10.1.2.3".into()));
        assert_eq!(ok("198.51.100.9:8443"), (Kind::IpPort, "198.51.100.9:8443".into()));
        assert_eq!(ok("[2001:db8::1]:443"), (Kind::IpPort, "[2001:db8::1]:443".into()));
        assert_eq!(ok("hxxp://Evil.Example/a/B.exe"), (Kind::Url, "evil.example/a/B.exe".into()));
        assert_eq!(ok("https://evil.example:443/x"), (Kind::Url, "evil.example/x".into()));
        assert_eq!(ok("https://evil.example:8443/x"), (Kind::Url, "evil.example:8443/x".into()));
        assert_eq!(ok("1.2.3.4/x.exe"), (Kind::Url, "1.2.3.4/x.exe".into()));
        assert_eq!(ok("evil.example/"), (Kind::Domain, "evil.example".into()));
        assert_eq!(ok("evil.example:8080"), (Kind::Url, "evil.example:8080/".into()));
        assert_eq!(ok("/gate/index.php"), (Kind::Url, "/gate/index.php".into()));
        assert_eq!(ok("http:///gate/index.php"), (Kind::Url, "/gate/index.php".into()));
        assert_eq!(ok("/ELVİN.apk"), (Kind::Url, "/ELV%C4%B0N.apk".into()));
        assert_eq!(ok("evil.example/a%7eb%2f c"), (Kind::Url, "evil.example/a~b%2F%20c".into()));
        // A bare `%` is escaped, so the canonical form is its own canonical form (found by
        // the indicator_text fuzz target: `%%358` became `%58`, then `X`).
        assert_eq!(ok("evil.example/3%%358%g"), (Kind::Url, "evil.example/3%2558%25g".into()));
        assert_eq!(ok("evil.example/3%2558%25g"), (Kind::Url, "evil.example/3%2558%25g".into()));
        assert_eq!(ok("https://evil.example:80/a"), (Kind::Url, "evil.example/a".into()));
        assert_eq!(ok("https://[2001:DB8::1]:8443/a"), (Kind::Url, "[2001:db8::1]:8443/a".into()));
        assert!(normalise("http://[0.0.2.0/x").is_err(), "an unclosed bracket is no host");
        assert!(normalise("http://[192.0.2.1]/x").is_err(), "brackets hold IPv6 only");
        assert_eq!(ok("http://2001:DB8::1/x"), (Kind::Url, "[2001:db8::1]/x".into()));
        // Nested defanging is undone whole (the fuzz target found `[[.]]` left as `[.]`).
        assert_eq!(ok("evil[[.]]example"), (Kind::Domain, "evil.example".into()));
        assert_eq!(ok("evil[(.)]example"), (Kind::Domain, "evil.example".into()));
        assert_eq!(ok("/\u{1}[[.[[.]]["), (Kind::Url, "/%01[[..[".into()));
        assert_eq!(ok("http://62.109.4.68"), (Kind::Url, "62.109.4.68/".into()));
        assert_eq!(
            ok("E7D705A3286E19EA42F587B344EE6865"),
            (Kind::Ja3, "e7d705a3286e19ea42f587b344ee6865".into())
        );
        assert_eq!(
            ok("t13d1516h2_8daaf6152771_02713d6af862"),
            (Kind::Ja4, "t13d1516h2_8daaf6152771_02713d6af862".into())
        );
    }

    #[test]
    fn rejects_what_cannot_be_an_indicator() {
        assert_eq!(normalise("  "), Err(RejectReason::Empty));
        assert!(matches!(normalise("localhost"), Err(RejectReason::BadDomain(_))));
        assert!(matches!(normalise("bad name.example"), Err(RejectReason::BadDomain(_))));
        assert!(matches!(normalise("1.2.3"), Err(RejectReason::BadDomain(_))));
        assert_eq!(normalise("10.0.0.0/33"), Err(RejectReason::BadCidr));
        assert_eq!(normalise("1.2.3.4:0"), Err(RejectReason::BadPort));
        assert_eq!(normalise("evil.example:99999"), Err(RejectReason::BadPort));
        assert!(matches!(normalise("gopher://evil.example/"), Err(RejectReason::BadScheme(_))));
        assert!(matches!(normalise(&"a".repeat(3000)), Err(RejectReason::TooLong { .. })));
        // 700 control bytes escape to 2,100 octets: too long once canonical.
        let escaped = format!("/{}", "\u{1}".repeat(700));
        assert!(matches!(normalise(&escaped), Err(RejectReason::TooLong { .. })));
        // Non-ASCII where the defang check looks (found in the real trails).
        assert!(normalise("hxxİ").is_err());
    }
}
