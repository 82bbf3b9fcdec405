//! Retention: how long each class of data is kept, enforced by a background job.
//!
//! The CERT is bound by the AVG/GDPR's storage limitation: sightings (which carry pseudonymised
//! hosts) are kept for `sightings_days`, the per-indicator aggregates and correlations built
//! from them (institutions, no hosts) for `correlations_days`, the audit log for `audit_days`,
//! agents that stopped reporting for `agents_days`; 0 keeps a class forever. Console tokens
//! and sessions go [`CONSOLE_TOKENS_AFTER_EXPIRY_DAYS`] after they expire (who used them stays
//! in the audit log). The job runs at
//! start and then every `interval_minutes`; it deletes in bounded batches, so ingest goes on.

use crate::store::{Cutoffs, Store};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const DAY_MS: i64 = 86_400_000;

/// Expired console tokens are kept this long, so an admin listing tokens still sees why a
/// recent sign-in failed.
pub const CONSOLE_TOKENS_AFTER_EXPIRY_DAYS: u32 = 30;

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    pub sightings_days: u32,
    pub correlations_days: u32,
    pub audit_days: u32,
    pub agents_days: u32,
    pub interval_minutes: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            sightings_days: 365,
            correlations_days: 730,
            audit_days: 730,
            agents_days: 90,
            interval_minutes: 60,
        }
    }
}

impl RetentionConfig {
    /// What is older than this at `now_ms` goes.
    pub fn cutoffs(&self, now_ms: i64) -> Cutoffs {
        let before = |days: u32| (days > 0).then(|| now_ms.saturating_sub(i64::from(days) * DAY_MS));
        Cutoffs {
            sightings: before(self.sightings_days),
            correlations: before(self.correlations_days),
            audit: before(self.audit_days),
            agents: before(self.agents_days),
            console_tokens: before(CONSOLE_TOKENS_AFTER_EXPIRY_DAYS),
        }
    }
}

/// Runs the purge now and every `interval_minutes` until the collector stops.
pub fn start(store: Arc<dyn Store>, config: RetentionConfig, stop: watch::Receiver<bool>) {
    let every = Duration::from_secs(u64::from(config.interval_minutes.max(1)) * 60);
    tokio::spawn(async move {
        loop {
            let store = store.clone();
            let cutoffs = config.cutoffs(zdn_timestamps::now_ms());
            match tokio::task::spawn_blocking(move || store.purge(&cutoffs)).await {
                Ok(Ok(purged)) if purged != Default::default() => tracing::info!(?purged, "retention purge"),
                Ok(Ok(_)) => tracing::debug!("retention purge: nothing to delete"),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "retention purge failed; retrying at the next interval")
                }
                Err(e) => tracing::error!(error = %e, "retention purge task failed"),
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = crate::shutdown::stopping(stop.clone()) => break,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoffs_follow_the_days_and_zero_keeps_forever() {
        let config = RetentionConfig { sightings_days: 1, audit_days: 0, ..RetentionConfig::default() };
        let c = config.cutoffs(10 * DAY_MS);
        assert_eq!(c.sightings, Some(9 * DAY_MS));
        assert_eq!(c.correlations, Some(10 * DAY_MS - 730 * DAY_MS));
        assert_eq!(c.audit, None);
        assert_eq!(c.agents, Some(-80 * DAY_MS));
    }
}
