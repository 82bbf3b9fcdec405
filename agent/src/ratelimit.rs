//! Rate limits on what leaves for the collector: per indicator and overall (governor's GCRA,
//! so bursts up to the quota pass and the long-run rate is bounded).
//!
//! A false positive that matches every host (a CDN address on a list, a popular domain) must
//! not flood the collector or the spool. Sightings over a limit are *held back*: counted,
//! written to the local alert log marked as held back, never silently lost. The per-indicator
//! state is pruned of idle indicators, so a flood of distinct indicators costs bounded memory.

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;

pub struct RateLimits {
    per_indicator: DefaultKeyedRateLimiter<String>,
    overall: DefaultDirectRateLimiter,
}

impl RateLimits {
    /// Limits of `per_indicator_per_minute` and `overall_per_second` (both at least 1).
    pub fn new(per_indicator_per_minute: u32, overall_per_second: u32) -> RateLimits {
        let nz = |n: u32| NonZeroU32::new(n.max(1)).expect("at least 1");
        RateLimits {
            per_indicator: RateLimiter::keyed(Quota::per_minute(nz(per_indicator_per_minute))),
            overall: RateLimiter::direct(Quota::per_second(nz(overall_per_second))),
        }
    }

    /// Whether one more sighting of `indicator` may go out now. An indicator's own limit is
    /// checked first, so a noisy indicator does not use up the overall budget of quiet ones.
    pub fn admit(&self, indicator: &str) -> bool {
        self.per_indicator.check_key(&indicator.to_owned()).is_ok() && self.overall.check().is_ok()
    }

    /// Forgets indicators whose limit has fully recovered (call now and then).
    pub fn prune(&self) {
        self.per_indicator.retain_recent();
        self.per_indicator.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_noisy_indicator_is_held_back_without_starving_others() {
        let limits = RateLimits::new(3, 1000);
        let admitted = (0..10).filter(|_| limits.admit("noisy.example")).count();
        assert_eq!(admitted, 3, "a burst of the per-minute quota, then nothing");
        assert!(limits.admit("quiet.example"));
        let overall = RateLimits::new(1000, 5);
        let admitted = (0..10).filter(|i| overall.admit(&format!("ind{i}"))).count();
        assert_eq!(admitted, 5, "the overall limit binds across indicators");
    }
}
