//! # zdn-backoff
//!
//! Reconnect pacing: exponential backoff with full jitter ("Exponential Backoff and Jitter",
//! AWS Architecture Blog). Each failure doubles the ceiling up to a maximum, and the wait is
//! drawn uniformly below it, so a fleet of agents that lost the collector at the same moment
//! does not come back at the same moment.
//!
//! The agent paces its reconnects to the collector with it, the collector its webhook retries.

#![forbid(unsafe_code)]

use std::time::Duration;

/// The pacing of one sequence of attempts.
pub struct Backoff {
    first: Duration,
    max: Duration,
    ceiling: Duration,
}

impl Backoff {
    /// The first wait is drawn below `first` (at least 1 ms), no wait ever above `max`.
    pub fn new(first: Duration, max: Duration) -> Backoff {
        let first = first.max(Duration::from_millis(1));
        Backoff { first, max: max.max(first), ceiling: first }
    }

    /// The wait before the next attempt; doubles the ceiling for the one after.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.ceiling.mul_f64(rand::random::<f64>()).max(self.first / 2);
        self.ceiling = (self.ceiling * 2).min(self.max);
        wait
    }

    /// After a success: the next failure starts small again.
    pub fn reset(&mut self) {
        self.ceiling = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_to_the_ceiling_and_reset() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let waits: Vec<Duration> = (0..20).map(|_| b.next_wait()).collect();
        assert!(waits.iter().all(|w| *w >= Duration::from_millis(50) && *w <= Duration::from_secs(1)));
        assert!(waits[..2].iter().all(|w| *w <= Duration::from_millis(200)), "{waits:?}");
        assert_eq!(b.ceiling, Duration::from_secs(1));
        b.reset();
        assert!(b.next_wait() <= Duration::from_millis(100));
    }
}
