//! The size limits of a sighting: one definition for both sides of the contract. The agent
//! fits what it reports into them ([`fit`]); the collector refuses what still exceeds them.
//!
//! A match must never be lost to a length limit: a request for an indicator URL with a 3 KB
//! query string is still a hit. So the agent cuts the *observed* value (and the short fields)
//! at a character boundary and ends it with [`TRUNCATED`]; the indicator itself is never cut
//! — indicator sets refuse values over [`MAX_VALUE`] when they are compiled, so a matched
//! indicator always fits.

/// A sighting id (UUIDv7 text, 36 bytes).
pub const MAX_ID: usize = 64;
/// The indicator and the observed value (a URL, a name).
pub const MAX_VALUE: usize = zdn_indicators::MAX_VALUE_LEN;
/// `src`, `dst_ip`, `proto`, `indicator_id`, `resolved_name`.
pub const MAX_SHORT: usize = 256;
/// Ends a value that was cut to its limit.
pub const TRUNCATED: &str = "…";

/// Cuts the fields of `s` that exceed their limits (all but `id` and `indicator`, which the
/// agent makes and the set bounds); returns whether anything was cut.
pub fn fit(s: &mut crate::v1::Sighting) -> bool {
    let mut cut = truncate(&mut s.observed, MAX_VALUE);
    for field in [&mut s.src, &mut s.dst_ip, &mut s.proto, &mut s.indicator_id, &mut s.resolved_name] {
        cut |= truncate(field, MAX_SHORT);
    }
    cut
}

/// Cuts `value` to at most `limit` bytes, marker included, at a character boundary.
pub fn truncate(value: &mut String, limit: usize) -> bool {
    if value.len() <= limit {
        return false;
    }
    let mut end = limit - TRUNCATED.len();
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value.truncate(end);
    value.push_str(TRUNCATED);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_to_the_limit_at_a_character_boundary_and_marked() {
        let mut s = crate::v1::Sighting {
            observed: format!("http://evil.example/?q={}", "é".repeat(1_500)),
            resolved_name: "x".repeat(300),
            dst_ip: "192.0.2.1".into(),
            ..Default::default()
        };
        assert!(fit(&mut s));
        assert!(s.observed.len() <= MAX_VALUE && s.observed.len() > MAX_VALUE - 4, "{}", s.observed.len());
        assert!(s.observed.starts_with("http://evil.example/?q=é") && s.observed.ends_with(TRUNCATED));
        assert_eq!(s.resolved_name.len(), MAX_SHORT);
        assert_eq!(s.dst_ip, "192.0.2.1");
        assert!(!fit(&mut s), "what fits is left alone");
        let mut exact = "a".repeat(MAX_VALUE);
        assert!(!truncate(&mut exact, MAX_VALUE));
    }
}
