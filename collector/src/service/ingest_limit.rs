//! Per-agent ingest rate limits (governor's GCRA keyed by agent identity).
//!
//! One misbehaving or compromised agent must not starve the others or fill the disk. A batch
//! that would exceed its agent's rate is refused whole with `RESOURCE_EXHAUSTED` and the time
//! to wait; the agent keeps the batch in its spool and sends it again after backing off, so a
//! refusal delays sightings but loses none. Keys are authenticated identities (one per issued
//! certificate), so the table is bounded by the PKI, not by what clients send.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use tonic::Status;
use zdn_transport::Identity;

pub struct IngestLimits {
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
    per_second: u32,
}

impl IngestLimits {
    /// `per_second` sightings per agent in the long run, bursts up to `burst` (both >= 1).
    pub fn new(per_second: u32, burst: u32) -> IngestLimits {
        let nz = |n: u32| NonZeroU32::new(n.max(1)).expect("at least 1");
        let quota = Quota::per_second(nz(per_second)).allow_burst(nz(burst));
        IngestLimits { limiter: RateLimiter::keyed(quota), clock: DefaultClock::default(), per_second }
    }

    /// Admits a batch of `sightings` from `agent`, or says how long to wait.
    pub fn admit(&self, agent: &Identity, sightings: usize) -> Result<(), Status> {
        let Some(n) = NonZeroU32::new(u32::try_from(sightings).unwrap_or(u32::MAX)) else { return Ok(()) };
        let key = format!("{}/{}", agent.participant, agent.name);
        match self.limiter.check_key_n(&key, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => {
                let wait_ms = not_until.wait_time_from(self.clock.now()).as_millis().max(1);
                let mut refused = Status::resource_exhausted(format!(
                    "agent {agent} is over its ingest rate of {} sightings/s; retry in {wait_ms} ms",
                    self.per_second
                ));
                // The agent's delivery waits at least this long before it sends again.
                if let Ok(value) = wait_ms.to_string().parse() {
                    refused.metadata_mut().insert(zdn_proto::RETRY_AFTER, value);
                }
                Err(refused)
            }
            Err(insufficient) => Err(Status::invalid_argument(format!(
                "a batch of {sightings} sightings is larger than the ingest burst ({insufficient})"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zdn_transport::Role;

    fn agent(name: &str) -> Identity {
        Identity { participant: "umc".into(), role: Role::Agent, name: name.into() }
    }

    #[test]
    fn a_busy_agent_is_told_to_wait_and_others_are_not() {
        let limits = IngestLimits::new(10, 100);
        assert!(limits.admit(&agent("gw-1"), 100).is_ok(), "a burst passes");
        let refused = limits.admit(&agent("gw-1"), 50).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.message().contains("retry in"), "{}", refused.message());
        let hint: u64 = refused.metadata().get("retry-after-ms").unwrap().to_str().unwrap().parse().unwrap();
        assert!((1..=10_000).contains(&hint), "{hint}");
        assert!(limits.admit(&agent("gw-2"), 100).is_ok(), "limits are per agent");
        assert_eq!(limits.admit(&agent("gw-3"), 101).unwrap_err().code(), tonic::Code::InvalidArgument);
        assert!(limits.admit(&agent("gw-1"), 0).is_ok());
    }
}
