//! The correlation rule: when does an indicator become "seen across institutions"?
//!
//! An indicator correlates when at least `min_participants` distinct participants saw it within
//! `window_ms` of packet time, counted back from its most recent sighting. A correlation opens
//! when the count first reaches the threshold and escalates each time it grows; it never
//! de-escalates (a correlation is a fact about what happened). The store evaluates the rule
//! incrementally, per indicator touched by an ingested batch, from the per-(indicator,
//! participant) aggregate it keeps up to date: no rescans of the sightings.

use zdn_proto::v1::correlation_event::Change;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CorrelationRule {
    pub min_participants: u32,
    pub window_ms: i64,
}

impl CorrelationRule {
    /// What happens to a correlation that had `before` participants (`None`: not open) now that
    /// `now` distinct participants fall in the window.
    pub fn change(&self, before: Option<u32>, now: u32) -> Option<Change> {
        match before {
            None if now >= self.min_participants => Some(Change::Opened),
            Some(b) if now > b => Some(Change::Escalated),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_at_the_threshold_and_escalates_only_upwards() {
        let rule = CorrelationRule { min_participants: 2, window_ms: 1 };
        assert_eq!(rule.change(None, 1), None);
        assert_eq!(rule.change(None, 2), Some(Change::Opened));
        assert_eq!(rule.change(None, 5), Some(Change::Opened));
        assert_eq!(rule.change(Some(2), 2), None);
        assert_eq!(rule.change(Some(2), 3), Some(Change::Escalated));
        assert_eq!(rule.change(Some(3), 2), None);
    }
}
