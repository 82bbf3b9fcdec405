//! One subject's incident as a state machine: pure functions from the stored state (the
//! latest wave and its members) and what a batch brought to what to store and announce.
//! The semantics are the module comment of `correlation`; nothing here touches a database.

use super::CorrelationRule;
use zdn_proto::v1::correlation_event::Change;

/// Where a wave stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Seen, not (yet) by enough participants: not an incident, not shown.
    Pending,
    Open,
    Closed,
    FalsePositive,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Open => "open",
            Status::Closed => "closed",
            Status::FalsePositive => "false_positive",
        }
    }

    /// A stored status; anything unknown reads as closed, so it can never grow.
    pub fn parse(stored: &str) -> Status {
        match stored {
            "pending" => Status::Pending,
            "open" => Status::Open,
            "false_positive" => Status::FalsePositive,
            _ => Status::Closed,
        }
    }
}

/// Why a wave closed (`Incident::close_reason`).
pub const QUIET: &str = "quiet";
pub const BELOW_THRESHOLD: &str = "below_threshold";
pub const FALSE_POSITIVE: &str = "false_positive";

/// One wave of one subject, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    pub wave: u32,
    pub status: Status,
    /// "" unless closed: [`QUIET`], [`BELOW_THRESHOLD`] or [`FALSE_POSITIVE`].
    pub close_reason: String,
    /// The members in the order they arrived.
    pub participants: Vec<String>,
    /// Over the members: earliest first seen, latest last seen (packet time), summed count.
    pub first_seen: i64,
    pub last_seen: i64,
    pub sightings: i64,
    /// Collector clock: when it opened, last changed (opened, grew, shrank, closed), closed;
    /// 0 for what has not happened.
    pub opened: i64,
    pub updated: i64,
    pub closed: i64,
    /// The highest arrival number given out in this wave (the next member's is one more).
    pub last_seq: i64,
}

impl Incident {
    fn pending(wave: u32) -> Incident {
        Incident {
            wave,
            status: Status::Pending,
            close_reason: String::new(),
            participants: Vec::new(),
            first_seen: i64::MAX,
            last_seen: i64::MIN,
            sightings: 0,
            opened: 0,
            updated: 0,
            closed: 0,
            last_seq: 0,
        }
    }

    /// Whether it ever was an incident (pending waves are not shown anywhere).
    pub fn visible(&self) -> bool {
        self.opened > 0
    }

    fn close(mut self, status: Status, reason: &str, now: i64) -> Incident {
        self.status = status;
        self.close_reason = reason.to_owned();
        self.closed = now;
        self.updated = now;
        self
    }

    /// Participants, times and count from the members (times stay if none are left).
    fn summarise(&mut self, members: &[Member]) {
        let mut ordered: Vec<&Member> = members.iter().collect();
        ordered.sort_by_key(|m| m.seq);
        self.participants = ordered.iter().map(|m| m.participant.clone()).collect();
        self.sightings = members.iter().map(|m| m.sightings).sum();
        if !members.is_empty() {
            self.first_seen = members.iter().map(|m| m.first_seen).min().unwrap_or(self.first_seen);
            self.last_seen = members.iter().map(|m| m.last_seen).max().unwrap_or(self.last_seen);
        }
    }

    fn quiet_for(&self, rule: &CorrelationRule, next_first_seen: i64, now: i64) -> bool {
        let end = self.last_seen.saturating_add(rule.close_after_ms);
        end < next_first_seen || end < now
    }
}

/// One participant in the current wave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub participant: String,
    pub first_seen: i64,
    pub last_seen: i64,
    pub sightings: i64,
    /// Arrival order within the wave (1, 2, ...).
    pub seq: i64,
    /// When it arrived (collector clock); it joined the incident then, or at the opening.
    pub arrived: i64,
}

impl Member {
    /// When it joined the open incident `opened` at.
    pub fn joined(&self, opened: i64) -> i64 {
        self.arrived.max(opened)
    }
}

/// What one batch (one participant's) brought to one subject: its sightings that take part in
/// correlation, summed.
#[derive(Debug, Clone, Copy)]
pub struct Touch<'a> {
    pub participant: &'a str,
    pub first_seen: i64,
    pub last_seen: i64,
    pub sightings: i64,
}

/// What to store and announce after a batch touched a subject.
#[derive(Debug)]
pub struct Step {
    /// The previous wave, closed as quiet now (store it; announce it).
    pub closed: Option<Incident>,
    /// The current wave begins afresh: the members of an earlier wave go first.
    pub fresh: bool,
    pub incident: Incident,
    /// The batch's participant after the batch (its `seq` and `arrived` are what to store).
    pub member: Member,
    /// Opened or escalated, with who joined.
    pub change: Option<Change>,
    pub joined: Vec<String>,
}

/// Whether [`step`] needs every member of `current`'s wave, or only the batch participant's:
/// an open wave that goes on moves on from its own row (members only join it), which spares
/// the engines reading a large incident's members for every batch.
pub fn needs_all_members(
    rule: &CorrelationRule,
    current: &Incident,
    touch_first_seen: i64,
    now: i64,
) -> bool {
    current.status != Status::Open || current.quiet_for(rule, touch_first_seen, now)
}

impl Step {
    /// An open wave that goes on with the members it had: only its times and count moved.
    pub fn moved_on(&self) -> bool {
        self.closed.is_none() && !self.fresh && self.change.is_none() && self.incident.status == Status::Open
    }
}

/// Applies a batch's `touch` to a subject whose latest wave is `current`. `members` are that
/// wave's members: all of them, or — where [`needs_all_members`] says no — at least the
/// batch participant's, if it is one. `None` when the subject is a false positive: nothing
/// changes, ever.
pub fn step(
    rule: &CorrelationRule,
    current: Option<Incident>,
    mut members: Vec<Member>,
    touch: &Touch<'_>,
    now: i64,
) -> Option<Step> {
    let mut closed = None;
    let mut fresh = false;
    let mut incident = match current {
        Some(i) if i.status == Status::FalsePositive => return None,
        Some(i) if i.status == Status::Closed || i.quiet_for(rule, touch.first_seen, now) => {
            fresh = true;
            members.clear();
            let wave = if i.status == Status::Pending { i.wave } else { i.wave + 1 };
            if i.status == Status::Open {
                closed = Some(i.close(Status::Closed, QUIET, now));
            }
            Incident::pending(wave)
        }
        Some(i) => i,
        None => {
            fresh = true;
            Incident::pending(1)
        }
    };
    let position = members.iter().position(|m| m.participant == touch.participant);
    let newcomer = position.is_none();
    let index = position.unwrap_or_else(|| {
        let seq = members.iter().map(|m| m.seq).max().unwrap_or(0).max(incident.last_seq) + 1;
        members.push(Member {
            participant: touch.participant.to_owned(),
            first_seen: i64::MAX,
            last_seen: i64::MIN,
            sightings: 0,
            seq,
            arrived: now,
        });
        members.len() - 1
    });
    let m = &mut members[index];
    m.first_seen = m.first_seen.min(touch.first_seen);
    m.last_seen = m.last_seen.max(touch.last_seen);
    m.sightings = m.sightings.saturating_add(touch.sightings);
    let member = m.clone();
    incident.last_seq = incident.last_seq.max(member.seq);
    let (mut change, mut joined) = (None, Vec::new());
    if incident.status == Status::Open {
        // Members only join an open wave: its row moves on by this batch alone.
        incident.first_seen = incident.first_seen.min(touch.first_seen);
        incident.last_seen = incident.last_seen.max(touch.last_seen);
        incident.sightings = incident.sightings.saturating_add(touch.sightings);
        if newcomer {
            incident.participants.push(touch.participant.to_owned());
            incident.updated = now;
            change = Some(Change::Escalated);
            joined = vec![touch.participant.to_owned()];
        }
    } else {
        incident.summarise(&members);
        // A pending wave's last change is its last sighting's arrival (retention goes by it).
        incident.updated = now;
        if opens(rule, &members) {
            incident.status = Status::Open;
            incident.opened = now;
            change = Some(Change::Opened);
            joined = incident.participants.clone();
        }
    }
    Some(Step { closed, fresh, incident, member, change, joined })
}

/// The opening rule: `min_participants` members whose latest sighting lies within the window
/// before the wave's latest sighting.
fn opens(rule: &CorrelationRule, members: &[Member]) -> bool {
    let latest = members.iter().map(|m| m.last_seen).max().unwrap_or(i64::MIN);
    let from = latest.saturating_sub(rule.window_ms);
    let within = members.iter().filter(|m| m.last_seen >= from).count();
    within >= rule.min_participants as usize
}

/// An indicator marked as a false positive: its latest wave, whatever its state, becomes a
/// false positive; announced if it was open.
pub fn withdraw(current: Incident, now: i64) -> (Incident, Option<Change>) {
    let was_open = current.status == Status::Open;
    let incident = current.close(Status::FalsePositive, FALSE_POSITIVE, now);
    (incident, was_open.then_some(Change::ClosedFalsePositive))
}

/// A campaign's latest wave after a withdrawn indicator's contribution left its `members`: an
/// open incident closes below the threshold, or shrinks (announced when a participant left).
pub fn recompute(
    rule: &CorrelationRule,
    current: Incident,
    members: &[Member],
    now: i64,
) -> (Incident, Option<Change>) {
    let mut incident = current;
    if incident.status == Status::FalsePositive {
        return (incident, None);
    }
    // A closed wave is recomputed too (its story must not name an institution that saw only
    // the false positive), but only an open one changes state or is announced.
    let before = incident.participants.len();
    incident.summarise(members);
    if incident.status != Status::Open {
        return (incident, None);
    }
    if (members.len() as u64) < u64::from(rule.min_participants) {
        return (incident.close(Status::Closed, BELOW_THRESHOLD, now), Some(Change::Closed));
    }
    if incident.participants.len() < before {
        incident.updated = now;
        return (incident, Some(Change::Reduced));
    }
    (incident, None)
}

/// The sweep: an open wave quiet for `close_after` by `now` closes.
pub fn close_if_quiet(rule: &CorrelationRule, current: &Incident, now: i64) -> Option<Incident> {
    (current.status == Status::Open && current.quiet_for(rule, i64::MIN, now))
        .then(|| current.clone().close(Status::Closed, QUIET, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;
    const RULE: CorrelationRule = CorrelationRule::new(2, 24 * HOUR);

    fn touch(participant: &str, at: i64) -> Touch<'_> {
        Touch { participant, first_seen: at, last_seen: at, sightings: 1 }
    }

    /// The latest wave, its members and the events so far.
    type Run = (Option<Incident>, Vec<Member>, Vec<(Change, Vec<String>)>);

    /// Applies touches in order, carrying the state as an engine would.
    fn run(touches: &[(&str, i64)]) -> Run {
        let (mut current, mut members, mut events) = (None, Vec::new(), Vec::new());
        for &(p, at) in touches {
            let step = step(&RULE, current.take(), members.clone(), &touch(p, at), at).unwrap();
            if step.fresh {
                members.clear();
            }
            members.retain(|m: &Member| m.participant != p);
            members.push(step.member.clone());
            if let Some(closed) = step.closed {
                events.push((Change::Closed, closed.participants));
            }
            if let Some(change) = step.change {
                events.push((change, step.joined));
            }
            current = Some(step.incident);
        }
        (current, members, events)
    }

    #[test]
    fn a_latecomer_after_the_window_joins_the_open_incident() {
        let (incident, _, events) = run(&[("a", 0), ("b", HOUR), ("c", 50 * HOUR)]);
        let incident = incident.unwrap();
        assert_eq!(incident.status, Status::Open);
        assert_eq!(incident.participants, ["a", "b", "c"], "the union, in the order they joined");
        assert_eq!(
            events,
            [(Change::Opened, vec!["a".into(), "b".into()]), (Change::Escalated, vec!["c".into()])]
        );
    }

    #[test]
    fn two_outside_the_window_of_each_other_do_not_open() {
        let (incident, members, events) = run(&[("a", 0), ("b", 30 * HOUR)]);
        assert_eq!(incident.unwrap().status, Status::Pending);
        assert_eq!(members.len(), 2);
        assert!(events.is_empty());
    }

    #[test]
    fn after_a_quiet_period_the_next_sighting_begins_wave_two() {
        let later = RULE.close_after_ms + 10 * HOUR;
        let (incident, members, events) = run(&[("a", 0), ("b", HOUR), ("c", HOUR + later)]);
        let incident = incident.unwrap();
        assert_eq!((incident.wave, incident.status), (2, Status::Pending));
        assert_eq!(members.len(), 1, "wave two starts with its own members");
        assert_eq!(events.last().unwrap().0, Change::Closed);
        let (incident, _, _) = run(&[("a", 0), ("b", HOUR), ("c", HOUR + later), ("a", 2 * HOUR + later)]);
        assert_eq!((incident.as_ref().unwrap().wave, incident.unwrap().status), (2, Status::Open));
    }

    #[test]
    fn a_false_positive_never_changes_again_and_a_campaign_shrinks_or_closes() {
        let (open, members, _) = run(&[("a", 0), ("b", HOUR), ("c", 2 * HOUR)]);
        let (fp, change) = withdraw(open.clone().unwrap(), 5);
        assert_eq!((fp.status, change), (Status::FalsePositive, Some(Change::ClosedFalsePositive)));
        assert!(step(&RULE, Some(fp), Vec::new(), &touch("d", 3 * HOUR), 3 * HOUR).is_none());
        let (shrunk, change) = recompute(&RULE, open.clone().unwrap(), &members[..2], 9);
        assert_eq!((shrunk.participants.len(), change, shrunk.updated), (2, Some(Change::Reduced), 9));
        let (below, change) = recompute(&RULE, open.unwrap(), &members[..1], 9);
        assert_eq!(
            (below.status, below.close_reason.as_str(), change),
            (Status::Closed, BELOW_THRESHOLD, Some(Change::Closed))
        );
    }

    #[test]
    fn the_sweep_closes_only_open_quiet_waves() {
        let (open, _, _) = run(&[("a", 0), ("b", HOUR)]);
        let open = open.unwrap();
        assert!(close_if_quiet(&RULE, &open, HOUR + RULE.close_after_ms).is_none());
        let closed = close_if_quiet(&RULE, &open, 2 * HOUR + RULE.close_after_ms).unwrap();
        assert_eq!((closed.status, closed.close_reason.as_str()), (Status::Closed, QUIET));
    }
}
