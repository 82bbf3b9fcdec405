//! # zdn-timestamps
//!
//! Every time the project stores, sends or shows is a count of milliseconds since the Unix
//! epoch (UTC); people read and write them as RFC 3339 text or as an age before now
//! (`30m`, `24h`, `7d`). This crate is the one place that turns one into the other, so the
//! agent's alert log, the collector's exports, the HTTP API and the `zdn` CLI agree to the
//! character, and a bad time gets the same answer everywhere.
//!
//! It sits below both agent and collector and links only `time`.

#![forbid(unsafe_code)]

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Milliseconds since the Unix epoch now, by the system clock (0 before 1970, which a
/// working clock never reads).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// RFC 3339 in UTC with millisecond precision (`2026-01-15T09:00:00.000Z`); a time outside
/// what RFC 3339 can write prints as the epoch.
pub fn format_unix_ms(ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&format).unwrap_or_default()
}

/// Why a text is not a time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("{0:?} is not a time: expected RFC 3339 (2026-01-15T09:00:00Z) or an age like 30m, 24h, 7d")]
    Unreadable(String),
    #[error("{0:?}: an age's unit must be s, m, h or d")]
    Unit(String),
}

/// A time as people write it: RFC 3339, or an age (`30m`, `24h`, `7d`) before `now_ms`.
pub fn parse_time_or_age(text: &str, now_ms: i64) -> Result<i64, TimeError> {
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
            .map_err(|_| TimeError::Unreadable(text.to_owned()));
    }
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: i64 = number.parse().map_err(|_| TimeError::Unreadable(text.to_owned()))?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(TimeError::Unit(text.to_owned())),
    };
    Ok(now_ms - n.saturating_mul(unit_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_ages_are_read() {
        let now = 1_768_467_600_000;
        assert_eq!(parse_time_or_age("2026-01-15T09:00:00Z", 0), Ok(now));
        assert_eq!(parse_time_or_age("2h", now), Ok(now - 7_200_000));
        assert_eq!(parse_time_or_age("7d", now), Ok(now - 7 * 86_400_000));
        assert_eq!(parse_time_or_age("2w", now), Err(TimeError::Unit("2w".into())));
        assert_eq!(parse_time_or_age("yesterday", now), Err(TimeError::Unreadable("yesterday".into())));
        assert_eq!(parse_time_or_age("", now), Err(TimeError::Unreadable(String::new())));
    }

    #[test]
    fn formatting_is_rfc3339_with_milliseconds_and_reads_back() {
        assert_eq!(format_unix_ms(1_768_467_600_123), "2026-01-15T09:00:00.123Z");
        assert_eq!(format_unix_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_unix_ms(i64::MAX), "1970-01-01T00:00:00.000Z", "out of range: the epoch");
        let t = 1_700_000_000_456;
        assert_eq!(parse_time_or_age(&format_unix_ms(t), 0), Ok(t));
    }

    #[test]
    fn the_error_names_no_command_line_flag() {
        let message = parse_time_or_age("soon", 0).unwrap_err().to_string();
        assert!(message.contains("RFC 3339") && !message.contains("--"), "{message}");
    }
}
