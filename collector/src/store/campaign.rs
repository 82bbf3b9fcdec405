//! Likely compromised hosts, from the event or campaign the published indicator set gives each
//! indicator (MISP event, STIX campaign, Maltrail family). (Campaigns correlate as incidents of
//! their own: `store::incidents`.)
//!
//! Within one participant, a pseudonymised host that hit two or more distinct indicators of
//! one campaign is flagged as likely compromised — one hit may be a stray lookup, several
//! indicators of the same operation rarely are. This module groups a stored batch (one
//! participant's) by (host, campaign); each engine writes the groups.

use super::NewSighting;
use std::collections::{BTreeMap, BTreeSet};

/// Distinct indicators of one campaign at which a host is flagged.
pub const SUSPECT_AT: usize = 2;

/// A host's sightings of one campaign in a batch.
#[derive(Debug)]
pub(crate) struct CampaignTouch<'a> {
    pub first_seen: i64,
    pub last_seen: i64,
    pub sightings: i64,
    pub indicators: BTreeSet<&'a str>,
}

/// The groups of one stored batch.
#[derive(Debug, Default)]
pub(crate) struct CampaignBatch<'a> {
    /// (host, campaign) → the campaign's indicators the host hit, first and last seen.
    pub hosts: BTreeMap<(&'a str, &'a str), CampaignTouch<'a>>,
}

impl<'a> CampaignBatch<'a> {
    /// Adds a stored sighting; sightings of indicators without a campaign are not grouped.
    pub fn add(&mut self, s: &NewSighting<'a>) {
        let Some(campaign) = s.campaign.filter(|c| !c.is_empty()) else { return };
        let w = s.wire;
        let count = super::clamp(w.count);
        let touch = |t: &mut CampaignTouch<'a>| {
            t.first_seen = t.first_seen.min(w.first_seen_unix_ms);
            t.last_seen = t.last_seen.max(w.last_seen_unix_ms);
            t.sightings = t.sightings.saturating_add(count);
            t.indicators.insert(w.indicator.as_str());
        };
        let empty = || CampaignTouch {
            first_seen: i64::MAX,
            last_seen: i64::MIN,
            sightings: 0,
            indicators: BTreeSet::new(),
        };
        if !w.src.is_empty() {
            touch(self.hosts.entry((w.src.as_str(), campaign)).or_insert_with(empty));
        }
    }
}

/// `known` (comma-separated) with `more` added, and how many distinct there are.
pub(crate) fn merge_indicators(known: &str, more: &BTreeSet<&str>) -> (String, usize) {
    let mut all: BTreeSet<&str> = known.split(',').filter(|i| !i.is_empty()).collect();
    all.extend(more.iter().copied());
    let count = all.len();
    (all.into_iter().collect::<Vec<_>>().join(","), count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zdn_indicators::{Kind, Via};
    use zdn_proto::v1;

    #[test]
    fn a_batch_groups_by_host_and_campaign() {
        let wire = |indicator: &str, src: &str| v1::Sighting {
            indicator: indicator.into(),
            src: src.into(),
            count: 1,
            first_seen_unix_ms: 5,
            last_seen_unix_ms: 7,
            ..Default::default()
        };
        let sightings = [
            wire("a.example", "h-1"),
            wire("b.example", "h-1"),
            wire("c.example", "h-2"),
            wire("d.example", "h-1"),
        ];
        let campaigns = [Some("emotet"), Some("emotet"), Some("emotet"), None];
        let mut batch = CampaignBatch::default();
        for (w, campaign) in sightings.iter().zip(campaigns) {
            batch.add(&NewSighting { wire: w, kind: Kind::Domain, via: Via::DnsQuery, campaign });
        }
        assert_eq!(batch.hosts.len(), 2, "d.example has no campaign");
        assert_eq!(batch.hosts[&("h-1", "emotet")].indicators.len(), 2);
        assert_eq!(batch.hosts[&("h-2", "emotet")].indicators.len(), 1);
        let (merged, count) =
            merge_indicators("b.example,z.example", &batch.hosts[&("h-1", "emotet")].indicators);
        assert_eq!((merged.as_str(), count), ("a.example,b.example,z.example", 3));
    }
}
