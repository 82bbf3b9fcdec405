//! Sign-in attempts per client address (governor's GCRA, keyed by IP).
//!
//! Tokens are 256 random bits, so guessing one is hopeless; the limit keeps a flood of
//! attempts from filling the log and the store with lookups. An analyst typing a token never
//! meets it. The table is pruned when it grows past [`MAX_TRACKED`] addresses.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

/// Attempts per minute per address, which is also the burst.
pub const PER_MINUTE: u32 = 30;

const MAX_TRACKED: usize = 10_000;

pub struct SignInLimit {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl Default for SignInLimit {
    fn default() -> Self {
        let quota = Quota::per_minute(NonZeroU32::new(PER_MINUTE).expect("non-zero"));
        SignInLimit { limiter: RateLimiter::keyed(quota), clock: DefaultClock::default() }
    }
}

impl SignInLimit {
    /// Admits one attempt from `ip`, or says how long it must wait.
    pub fn admit(&self, ip: IpAddr) -> Result<(), Duration> {
        if self.limiter.len() > MAX_TRACKED {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&ip).map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_from_one_address_waits_and_others_do_not() {
        let limit = SignInLimit::default();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        for _ in 0..PER_MINUTE {
            assert!(limit.admit(a).is_ok());
        }
        let wait = limit.admit(a).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(60 / u64::from(PER_MINUTE)), "{wait:?}");
        assert!(limit.admit(b).is_ok());
    }
}
