//! Correlation: when is an indicator (or a campaign) an incident across institutions?
//!
//! The semantics, in full (docs/CORRELATION.md says the same for analysts):
//!
//! - A **subject** is one indicator, or one campaign (the participants that saw *any* of its
//!   indicators). Each subject has a sequence of **waves**; each wave is at most one incident.
//! - A wave begins with the first sighting of the subject, or with the first after the previous
//!   wave went quiet. While it is *pending* it collects **members**: each participant that saw
//!   the subject, with its own first seen, last seen and count (packet time), in the order
//!   they arrived.
//! - It **opens** when at least `min_participants` members have their latest sighting within
//!   `window_ms` before the wave's latest sighting. All members join it then; while it is open,
//!   **every** participant that sees the subject joins it (one `escalated` event each). The
//!   member list only grows.
//! - It **closes** when `close_after_ms` passes without a sighting — by packet time (a
//!   sighting that starts that long after the wave's last) or by the collector's clock (the
//!   sweep, or the next batch) — or as a false positive. The next sighting begins the next
//!   wave: "seen again, ten months later" is an incident of its own, wave 2.
//! - A false positive closes its indicator's incident for good, and its sightings leave its
//!   campaign's: the campaign is recomputed without them and closes `below_threshold` when
//!   fewer than `min_participants` remain.
//! - Agents' clocks are not trusted blindly: a sighting stamped more than `max_future_ms` ahead
//!   of the collector counts as seen now; one older than `max_age_ms` on arrival is stored but
//!   takes no part in incidents (both counted in the batch's answer).
//!
//! [`incident`] is this state machine, as pure functions over one subject's stored state; both
//! store engines load that state, call it, and write back what it returns, so they cannot
//! disagree on the semantics. The store's property test checks both against a brute-force
//! replay over the raw sightings.

pub mod incident;

pub use incident::{Incident, Member, Status, Step, Touch};

/// The correlation settings (`[correlation]` in `collector.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CorrelationRule {
    pub min_participants: u32,
    pub window_ms: i64,
    /// A wave without a sighting for this long is closed.
    pub close_after_ms: i64,
    /// Packet times further ahead of the collector's clock than this are clamped to it.
    pub max_future_ms: i64,
    /// Sightings older than this on arrival take no part in incidents.
    pub max_age_ms: i64,
}

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

impl CorrelationRule {
    /// A rule with the default quiet period (14 days) and clock bounds (10 minutes ahead,
    /// 30 days behind).
    pub const fn new(min_participants: u32, window_ms: i64) -> CorrelationRule {
        CorrelationRule {
            min_participants,
            window_ms,
            close_after_ms: 14 * DAY_MS,
            max_future_ms: 10 * 60_000,
            max_age_ms: 30 * DAY_MS,
        }
    }

    /// What correlation makes of a sighting's packet times, received at `now_ms`.
    pub fn admit(&self, first_ms: i64, last_ms: i64, now_ms: i64) -> Admitted {
        if last_ms < now_ms.saturating_sub(self.max_age_ms) {
            return Admitted::TooOld;
        }
        let limit = now_ms.saturating_add(self.max_future_ms);
        if last_ms > limit {
            return Admitted::Clamped { first_ms: first_ms.min(now_ms), last_ms: now_ms };
        }
        Admitted::AsStamped
    }
}

/// The verdict of [`CorrelationRule::admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    AsStamped,
    /// The agent's clock is ahead: these times count instead.
    Clamped {
        first_ms: i64,
        last_ms: i64,
    },
    /// Older than `max_age_ms`: history only.
    TooOld,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_far_off_are_clamped_or_kept_out() {
        let rule = CorrelationRule::new(2, HOUR_MS);
        let now = 100 * DAY_MS;
        assert_eq!(rule.admit(now - 5, now, now), Admitted::AsStamped);
        assert_eq!(rule.admit(now, now + 60_000, now), Admitted::AsStamped, "a minute ahead is fine");
        assert_eq!(
            rule.admit(now + DAY_MS, now + 2 * DAY_MS, now),
            Admitted::Clamped { first_ms: now, last_ms: now }
        );
        assert_eq!(rule.admit(now - 31 * DAY_MS, now - 31 * DAY_MS, now), Admitted::TooOld);
        assert_eq!(rule.admit(now - 40 * DAY_MS, now - 29 * DAY_MS, now), Admitted::AsStamped);
    }
}
