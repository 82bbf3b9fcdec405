//! Incidents in the store, engine-neutral: what a stored batch brings to each subject (its
//! indicators and their campaigns), the row shape both engines keep, and the events a step
//! announces. The engines load a subject's latest wave and members, call
//! `correlation::incident`, and write back what it returns.
//!
//! Tables (the same in both engines):
//! - `incidents`: one row per (scope, subject, wave); pending waves included (never shown).
//! - `incident_members`: the latest wave's members, one row per (participant, part), where a
//!   part is one indicator of a campaign (so a false positive's contribution can leave it) and
//!   "" for an indicator. A member is the sum of its parts.

use super::NewSighting;
use crate::correlation::incident::{self, Incident, Member, Status, Step, Touch};
use crate::correlation::{Admitted, CorrelationRule};
use std::collections::{BTreeMap, HashSet};
use zdn_proto::v1;

/// What an incident is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Scope {
    Indicator,
    Campaign,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Indicator => "indicator",
            Scope::Campaign => "campaign",
        }
    }

    /// A stored scope.
    pub fn parse(stored: &str) -> Scope {
        if stored == "campaign" { Scope::Campaign } else { Scope::Indicator }
    }
}

/// A batch's admitted sightings of one subject, summed, and per part.
#[derive(Debug)]
pub(crate) struct SubjectTouch<'a> {
    /// The indicator's kind; "" for a campaign.
    pub kind: &'static str,
    /// The indicator's campaign; the campaign itself for a campaign.
    pub campaign: &'a str,
    pub first_seen: i64,
    pub last_seen: i64,
    pub sightings: i64,
    /// Part → (first seen, last seen, count).
    pub parts: BTreeMap<&'a str, (i64, i64, i64)>,
}

impl SubjectTouch<'_> {
    pub fn touch<'p>(&self, participant: &'p str) -> Touch<'p> {
        Touch {
            participant,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            sightings: self.sightings,
        }
    }
}

/// What one stored batch brings to incidents.
#[derive(Debug, Default)]
pub(crate) struct BatchTouches<'a> {
    pub subjects: BTreeMap<(Scope, &'a str), SubjectTouch<'a>>,
    /// Stored sightings whose times were clamped to the collector's clock.
    pub clamped_future: u32,
    /// Stored sightings too old to take part.
    pub too_old: u32,
}

impl<'a> BatchTouches<'a> {
    /// Adds one stored sighting, as the rule admits it.
    pub fn add(&mut self, rule: &CorrelationRule, s: &NewSighting<'a>, now_ms: i64) {
        let w = s.wire;
        let (first, last) = match rule.admit(w.first_seen_unix_ms, w.last_seen_unix_ms, now_ms) {
            Admitted::AsStamped => (w.first_seen_unix_ms, w.last_seen_unix_ms),
            Admitted::Clamped { first_ms, last_ms } => {
                self.clamped_future += 1;
                (first_ms, last_ms)
            }
            Admitted::TooOld => {
                self.too_old += 1;
                return;
            }
        };
        let count = super::clamp(w.count);
        let campaign = s.campaign.unwrap_or_default();
        self.add_part((Scope::Indicator, &w.indicator), s.kind.as_str(), campaign, "", (first, last, count));
        if !campaign.is_empty() {
            self.add_part((Scope::Campaign, campaign), "", campaign, &w.indicator, (first, last, count));
        }
    }

    fn add_part(
        &mut self,
        key: (Scope, &'a str),
        kind: &'static str,
        campaign: &'a str,
        part: &'a str,
        (first, last, count): (i64, i64, i64),
    ) {
        let t = self.subjects.entry(key).or_insert_with(|| SubjectTouch {
            kind,
            campaign,
            first_seen: i64::MAX,
            last_seen: i64::MIN,
            sightings: 0,
            parts: BTreeMap::new(),
        });
        t.first_seen = t.first_seen.min(first);
        t.last_seen = t.last_seen.max(last);
        t.sightings = t.sightings.saturating_add(count);
        let p = t.parts.entry(part).or_insert((i64::MAX, i64::MIN, 0));
        *p = (p.0.min(first), p.1.max(last), p.2.saturating_add(count));
    }

    /// Takes false positives out: their own incidents never change, and their sightings do
    /// not count towards their campaigns.
    pub fn without(&mut self, withdrawn: &HashSet<String>) {
        if withdrawn.is_empty() {
            return;
        }
        self.subjects.retain(|(scope, subject), t| match scope {
            Scope::Indicator => !withdrawn.contains(*subject),
            Scope::Campaign => {
                t.parts.retain(|part, _| !withdrawn.contains(*part));
                if t.parts.is_empty() {
                    return false;
                }
                t.first_seen = t.parts.values().map(|p| p.0).min().unwrap_or(i64::MAX);
                t.last_seen = t.parts.values().map(|p| p.1).max().unwrap_or(i64::MIN);
                t.sightings = t.parts.values().map(|p| p.2).sum();
                true
            }
        });
    }

    /// The indicators of the batch (to look up which are false positives).
    pub fn indicators(&self) -> Vec<&'a str> {
        self.subjects.keys().filter(|(s, _)| *s == Scope::Indicator).map(|(_, i)| *i).collect()
    }
}

/// A subject's stored state: its latest wave and that wave's members.
#[derive(Debug, Default)]
pub(crate) struct Stored {
    pub incident: Option<Incident>,
    pub members: Vec<Member>,
}

/// The columns of an incident row, in [`IncidentRow`]'s order.
pub(crate) const INCIDENT_COLUMNS: &str = "scope, subject, wave, kind, campaign, status, close_reason,
    participants, participant_count, first_seen, last_seen, sightings, opened, updated, closed, last_seq";

/// One row of `incidents`.
#[derive(Debug, Clone)]
pub(crate) struct IncidentRow {
    pub scope: String,
    pub subject: String,
    pub kind: String,
    pub campaign: String,
    pub incident: Incident,
}

impl IncidentRow {
    /// From the stored columns (after scope, subject, kind and campaign).
    #[allow(clippy::too_many_arguments)] // one argument per column, in column order
    pub fn incident(
        wave: i64,
        status: &str,
        close_reason: String,
        participants: &str,
        first_seen: i64,
        last_seen: i64,
        sightings: i64,
        opened: i64,
        updated: i64,
        closed: i64,
        last_seq: i64,
    ) -> Incident {
        Incident {
            wave: u32::try_from(wave).unwrap_or(u32::MAX),
            status: Status::parse(status),
            close_reason,
            participants: participants.split(',').filter(|p| !p.is_empty()).map(str::to_owned).collect(),
            first_seen,
            last_seen,
            sightings,
            opened,
            updated,
            closed,
            last_seq,
        }
    }

    /// The outward form (members are added by the detail views).
    pub fn into_wire(self) -> v1::Correlation {
        let i = self.incident;
        v1::Correlation {
            indicator: self.subject,
            kind: super::kind_wire(&self.kind),
            participant_count: u32::try_from(i.participants.len()).unwrap_or(u32::MAX),
            participants: i.participants,
            first_seen_unix_ms: i.first_seen,
            last_seen_unix_ms: i.last_seen,
            sightings: i.sightings.max(0) as u64,
            opened_unix_ms: i.opened,
            updated_unix_ms: i.updated,
            includes_caller: false,
            status: i.status.as_str().to_owned(),
            scope: self.scope,
            campaign: self.campaign,
            wave: i.wave,
            close_reason: i.close_reason,
            closed_unix_ms: i.closed,
            members: Vec::new(),
            other_join_times_unix_ms: Vec::new(),
        }
    }
}

/// A member as the detail views show it.
pub(crate) fn member_wire(m: &Member, opened: i64) -> v1::IncidentMember {
    v1::IncidentMember {
        participant: m.participant.clone(),
        first_seen_unix_ms: m.first_seen,
        last_seen_unix_ms: m.last_seen,
        sightings: m.sightings.max(0) as u64,
        joined_unix_ms: m.joined(opened),
    }
}

/// One incident's event.
pub(crate) fn event(
    scope: Scope,
    subject: &str,
    touch_kind: &str,
    campaign: &str,
    incident: &Incident,
    change: v1::correlation_event::Change,
    joined: Vec<String>,
) -> v1::CorrelationEvent {
    let row = IncidentRow {
        scope: scope.as_str().to_owned(),
        subject: subject.to_owned(),
        kind: touch_kind.to_owned(),
        campaign: campaign.to_owned(),
        incident: incident.clone(),
    };
    v1::CorrelationEvent {
        change: change as i32,
        correlation: Some(row.into_wire()),
        joined_count: u32::try_from(joined.len()).unwrap_or(u32::MAX),
        joined,
    }
}

/// The events of one step: the previous wave's closing, then the opening or the join.
pub(crate) fn step_events(
    key: (Scope, &str),
    touch: &SubjectTouch<'_>,
    step: &Step,
) -> Vec<v1::CorrelationEvent> {
    let (scope, subject) = key;
    let mut events = Vec::new();
    if let Some(closed) = &step.closed {
        let change = v1::correlation_event::Change::Closed;
        events.push(event(scope, subject, touch.kind, touch.campaign, closed, change, Vec::new()));
    }
    if let Some(change) = step.change {
        let joined = step.joined.clone();
        events.push(event(scope, subject, touch.kind, touch.campaign, &step.incident, change, joined));
    }
    events
}

/// The step for one subject, or `None` if it is a false positive.
pub(crate) fn step(
    rule: &CorrelationRule,
    participant: &str,
    touch: &SubjectTouch<'_>,
    stored: Stored,
    now_ms: i64,
) -> Option<Step> {
    incident::step(rule, stored.incident, stored.members, &touch.touch(participant), now_ms)
}
