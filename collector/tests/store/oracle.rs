//! The differential oracle: the incident semantics computed the slow, obvious way — from the
//! raw list of every sighting each wave holds, rescanned after every operation — against the
//! real store (both engines), on random streams of batches, duplicates, out-of-order and
//! skewed packet times, false-positive marks and sweeps. After every operation the events and
//! every visible incident (with its members) must be the same.
//!
//! It shares no code with the engines' path (`correlation::incident` over stored aggregates):
//! only the rule's numbers. `ZDN_ORACLE_STREAMS` sets how many streams (default 1000 on SQLite,
//! 150 on PostgreSQL); a failure prints the seed and the operation to replay.

use super::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, HashSet};

const DAY: i64 = 24 * HOUR;
const ORACLE_RULE: CorrelationRule = CorrelationRule {
    min_participants: 2,
    window_ms: 24 * HOUR,
    close_after_ms: 14 * DAY,
    max_future_ms: 10 * 60_000,
    max_age_ms: 30 * DAY,
};

/// One stored sighting as correlation sees it (times after the clock bounds).
#[derive(Clone, Debug)]
struct Raw {
    participant: String,
    /// When the collector received it.
    arrived: i64,
    indicator: String,
    first: i64,
    last: i64,
    count: i64,
}

#[derive(Clone, Debug, PartialEq)]
struct Wave {
    number: u32,
    status: &'static str,
    reason: &'static str,
    opened: i64,
    updated: i64,
    closed: i64,
    /// Indexes into the oracle's raw list.
    sightings: Vec<usize>,
    /// Participants in the order they first appeared in the wave.
    order: Vec<String>,
    /// Times when no sighting is left (a campaign emptied by false positives).
    kept_first: i64,
    kept_last: i64,
}

#[derive(Default)]
struct Oracle {
    raw: Vec<Raw>,
    ids: HashSet<String>,
    waves: BTreeMap<(String, String), Vec<Wave>>,
    withdrawn: BTreeSet<String>,
}

/// An event as compared: change, scope, subject, wave, status, participants, joined.
type Event = (i32, String, String, u32, String, Vec<String>, Vec<String>);
/// A member as compared: participant, first seen, last seen, sightings, joined.
type MemberState = (String, i64, i64, i64, i64);
/// A visible incident as compared.
type State = (String, String, u32, String, String, Vec<String>, i64, i64, i64, i64, i64, i64);

impl Oracle {
    fn members(&self, w: &Wave) -> Vec<(String, i64, i64, i64)> {
        w.order
            .iter()
            .filter_map(|p| {
                let mine: Vec<&Raw> =
                    w.sightings.iter().map(|&i| &self.raw[i]).filter(|r| &r.participant == p).collect();
                (!mine.is_empty()).then(|| {
                    let first = mine.iter().map(|r| r.first).min().unwrap();
                    let last = mine.iter().map(|r| r.last).max().unwrap();
                    (p.clone(), first, last, mine.iter().map(|r| r.count).sum())
                })
            })
            .collect()
    }

    fn first_last(&self, w: &Wave) -> (i64, i64) {
        if w.sightings.is_empty() {
            return (w.kept_first, w.kept_last);
        }
        let rows = w.sightings.iter().map(|&i| &self.raw[i]);
        (rows.clone().map(|r| r.first).min().unwrap(), rows.map(|r| r.last).max().unwrap())
    }

    fn event(&self, change: Change, key: &(String, String), w: &Wave, joined: Vec<String>) -> Event {
        let participants = self.members(w).into_iter().map(|m| m.0).collect();
        (change as i32, key.0.clone(), key.1.clone(), w.number, w.status.to_owned(), participants, joined)
    }

    fn batch(
        &mut self,
        participant: &str,
        sightings: &[(v1::Sighting, Option<&str>)],
        now: i64,
    ) -> (Vec<Event>, u32, u32) {
        let (mut clamped, mut old) = (0, 0);
        let mut touched: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
        for (w, campaign) in sightings {
            if !self.ids.insert(w.id.clone()) {
                continue;
            }
            let (mut first, mut last) = (w.first_seen_unix_ms, w.last_seen_unix_ms);
            if last < now - ORACLE_RULE.max_age_ms {
                old += 1;
                continue;
            }
            if last > now + ORACLE_RULE.max_future_ms {
                clamped += 1;
                (first, last) = (first.min(now), now);
            }
            let index = self.raw.len();
            let indicator = w.indicator.clone();
            self.raw.push(Raw {
                participant: participant.into(),
                arrived: now,
                indicator: indicator.clone(),
                first,
                last,
                count: w.count as i64,
            });
            if self.withdrawn.contains(&indicator) {
                continue;
            }
            touched.entry(("indicator".into(), indicator)).or_default().push(index);
            if let Some(c) = campaign {
                touched.entry(("campaign".into(), (*c).into())).or_default().push(index);
            }
        }
        let mut events = Vec::new();
        for (key, new) in touched {
            let batch_first = new.iter().map(|&i| self.raw[i].first).min().unwrap();
            let mut waves = self.waves.remove(&key).unwrap_or_default();
            let quiet = |o: &Oracle, w: &Wave| {
                let end = o.first_last(w).1 + ORACLE_RULE.close_after_ms;
                end < batch_first || end < now
            };
            let begin = match waves.last() {
                None => Some(1),
                Some(w) if w.status == "closed" || quiet(self, w) => {
                    Some(if w.status == "pending" { w.number } else { w.number + 1 })
                }
                Some(_) => None,
            };
            if let Some(number) = begin {
                if let Some(last) = waves.last_mut().filter(|w| w.status == "open") {
                    (last.status, last.reason, last.closed, last.updated) = ("closed", "quiet", now, now);
                    events.push(self.event(Change::Closed, &key, last, Vec::new()));
                }
                if waves.last().is_some_and(|w| w.status == "pending") {
                    waves.pop();
                }
                waves.push(Wave {
                    number,
                    status: "pending",
                    reason: "",
                    opened: 0,
                    updated: 0,
                    closed: 0,
                    sightings: Vec::new(),
                    order: Vec::new(),
                    kept_first: 0,
                    kept_last: 0,
                });
            }
            let w = waves.last_mut().unwrap();
            w.sightings.extend(&new);
            let newcomer = !w.order.iter().any(|p| p == participant);
            if newcomer {
                w.order.push(participant.into());
            }
            let w = w.clone();
            let mut w2 = w.clone();
            if w.status == "pending" {
                let members = self.members(&w);
                let latest = members.iter().map(|m| m.2).max().unwrap();
                let within = members.iter().filter(|m| m.2 >= latest - ORACLE_RULE.window_ms).count();
                if within >= ORACLE_RULE.min_participants as usize {
                    (w2.status, w2.opened, w2.updated) = ("open", now, now);
                    let joined = members.into_iter().map(|m| m.0).collect();
                    events.push(self.event(Change::Opened, &key, &w2, joined));
                }
            } else if newcomer {
                w2.updated = now;
                events.push(self.event(Change::Escalated, &key, &w2, vec![participant.into()]));
            }
            *waves.last_mut().unwrap() = w2;
            self.waves.insert(key, waves);
        }
        (events, clamped, old)
    }

    fn mark(&mut self, indicator: &str, now: i64) -> Vec<Event> {
        self.withdrawn.insert(indicator.into());
        let mut events = Vec::new();
        let key = ("indicator".to_owned(), indicator.to_owned());
        if let Some(mut waves) = self.waves.remove(&key) {
            let w = waves.last_mut().unwrap();
            let was_open = w.status == "open";
            (w.status, w.reason, w.closed, w.updated) = ("false_positive", "false_positive", now, now);
            if was_open {
                events.push(self.event(Change::ClosedFalsePositive, &key, w, Vec::new()));
            }
            self.waves.insert(key, waves);
        }
        let campaigns: Vec<(String, String)> =
            self.waves.keys().filter(|k| k.0 == "campaign").cloned().collect();
        for key in campaigns {
            let mut waves = self.waves.remove(&key).unwrap();
            let w = waves.last_mut().unwrap();
            if w.sightings.iter().any(|&i| self.raw[i].indicator == indicator) {
                let before = self.members(w).len();
                (w.kept_first, w.kept_last) = self.first_last(w);
                w.sightings.retain(|&i| self.raw[i].indicator != indicator);
                let after = self.members(w).len();
                w.order.retain(|p| w.sightings.iter().any(|&i| &self.raw[i].participant == p));
                if w.status == "open" && after < ORACLE_RULE.min_participants as usize {
                    (w.status, w.reason, w.closed, w.updated) = ("closed", "below_threshold", now, now);
                    events.push(self.event(Change::Closed, &key, w, Vec::new()));
                } else if w.status == "open" && after < before {
                    w.updated = now;
                    events.push(self.event(Change::Reduced, &key, w, Vec::new()));
                }
            }
            self.waves.insert(key, waves);
        }
        events
    }

    fn sweep(&mut self, now: i64) -> Vec<Event> {
        let mut events = Vec::new();
        let keys: Vec<(String, String)> = self.waves.keys().cloned().collect();
        for key in keys {
            let mut waves = self.waves.remove(&key).unwrap();
            let w = waves.last_mut().unwrap();
            if w.status == "open" && self.first_last(w).1 + ORACLE_RULE.close_after_ms < now {
                (w.status, w.reason, w.closed, w.updated) = ("closed", "quiet", now, now);
                events.push(self.event(Change::Closed, &key, w, Vec::new()));
            }
            self.waves.insert(key, waves);
        }
        events
    }

    /// Every wave that ever opened, and the current members of the open or closed latest.
    fn state(&self) -> (Vec<State>, BTreeMap<String, Vec<MemberState>>) {
        let mut states = Vec::new();
        let mut members = BTreeMap::new();
        for (key, waves) in &self.waves {
            for w in waves.iter().filter(|w| w.opened > 0) {
                let ms = self.members(w);
                let (first, last) = self.first_last(w);
                let sightings = ms.iter().map(|m| m.3).sum();
                let names = ms.iter().map(|m| m.0.clone()).collect();
                states.push((
                    key.0.clone(),
                    key.1.clone(),
                    w.number,
                    w.status.to_owned(),
                    w.reason.to_owned(),
                    names,
                    first,
                    last,
                    sightings,
                    w.opened,
                    w.updated,
                    w.closed,
                ));
            }
            if let Some(w) = waves.last().filter(|w| w.opened > 0 && key.0 == "indicator") {
                let arrived = |p: &str| {
                    // A member's join time: when it arrived, or the opening if it was there before.
                    self.arrivals(w, p).max(w.opened)
                };
                let ms = self
                    .members(w)
                    .into_iter()
                    .map(|m| (m.0.clone(), m.1, m.2, m.3, arrived(&m.0)))
                    .collect();
                members.insert(key.1.clone(), ms);
            }
        }
        states.sort();
        (states, members)
    }

    fn arrivals(&self, w: &Wave, participant: &str) -> i64 {
        w.sightings
            .iter()
            .position(|&i| self.raw[i].participant == participant)
            .map_or(0, |pos| self.raw[w.sightings[pos]].arrived)
    }
}

/// One operation of a stream.
#[derive(Debug, Clone)]
enum Op {
    Batch { participant: String, sightings: Vec<(v1::Sighting, Option<String>)>, now: i64 },
    Mark { indicator: String, now: i64 },
    Sweep { now: i64 },
}

/// The campaign of each of a stream's four indicators.
fn campaign_of(prefix: &str, i: usize) -> Option<String> {
    match i {
        0 | 1 => Some(format!("{prefix}c0")),
        2 => Some(format!("{prefix}c1")),
        _ => None,
    }
}

/// A stream's clock starts at `start`; streams run one after another on one store, each on a
/// clock of its own, so a stream's incidents are those changed since its start.
fn random_stream(rng: &mut StdRng, prefix: &str, start: i64) -> Vec<Op> {
    let participants = ["a", "b", "c", "d"];
    let mut now = start;
    let mut ops: Vec<Op> = Vec::new();
    let mut next_id = 0;
    for _ in 0..rng.random_range(15..30) {
        now += match rng.random_range(0..10) {
            0..7 => rng.random_range(0..6 * HOUR),
            7..9 => rng.random_range(6 * HOUR..3 * DAY),
            _ => rng.random_range(10 * DAY..20 * DAY),
        };
        let roll = rng.random_range(0..100);
        if roll < 8 {
            let i = rng.random_range(0..4);
            ops.push(Op::Mark { indicator: format!("{prefix}i{i}"), now });
            continue;
        }
        if roll < 15 {
            ops.push(Op::Sweep { now });
            continue;
        }
        let earlier: Vec<&Op> = ops.iter().filter(|o| matches!(o, Op::Batch { .. })).collect();
        if roll < 25 && !earlier.is_empty() {
            // A retried batch: the same sightings again, later.
            let Op::Batch { participant, sightings, .. } =
                earlier[rng.random_range(0..earlier.len())].clone()
            else {
                unreachable!()
            };
            ops.push(Op::Batch { participant, sightings, now });
            continue;
        }
        let participant = participants[rng.random_range(0..participants.len())].to_owned();
        let sightings = (0..rng.random_range(1..5))
            .map(|_| {
                let i = rng.random_range(0..4);
                let at = match rng.random_range(0..20) {
                    0 => now + rng.random_range(HOUR..2 * DAY),
                    1 => now - rng.random_range(31 * DAY..60 * DAY),
                    _ => now - rng.random_range(0..36 * HOUR),
                };
                next_id += 1;
                let w = v1::Sighting {
                    first_seen_unix_ms: at - rng.random_range(0..HOUR),
                    count: rng.random_range(1..4),
                    ..wire(&format!("{prefix}{next_id}"), &format!("{prefix}i{i}"), at)
                };
                (w, campaign_of(prefix, i))
            })
            .collect();
        ops.push(Op::Batch { participant, sightings, now });
    }
    ops
}

fn engine_events(events: Vec<v1::CorrelationEvent>) -> Vec<Event> {
    let mut out: Vec<Event> = events
        .into_iter()
        .map(|e| {
            let c = e.correlation.unwrap();
            (e.change, c.scope, c.indicator, c.wave, c.status, c.participants, e.joined)
        })
        .collect();
    out.sort();
    out
}

fn engine_state(store: &dyn Store, prefix: &str, start: i64) -> Vec<State> {
    let mut states: Vec<State> = [false, true]
        .into_iter()
        .flat_map(|campaigns| {
            let filter = CorrelationFilter { campaigns, since_ms: Some(start), limit: 100_000, ..all() };
            store.correlations(&filter).unwrap()
        })
        .filter(|c| c.indicator.starts_with(prefix))
        .map(|c| {
            (
                c.scope,
                c.indicator,
                c.wave,
                c.status,
                c.close_reason,
                c.participants,
                c.first_seen_unix_ms,
                c.last_seen_unix_ms,
                c.sightings as i64,
                c.opened_unix_ms,
                c.updated_unix_ms,
                c.closed_unix_ms,
            )
        })
        .collect();
    states.sort();
    states
}

/// Runs one stream against `store` and the oracle, comparing after every operation.
fn check_stream(store: &dyn Store, seed: u64, prefix: &str, start: i64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let ops = random_stream(&mut rng, prefix, start);
    let mut oracle = Oracle::default();
    let who = analyst("z-cert");
    for (n, op) in ops.iter().enumerate() {
        let context = || format!("seed {seed}, operation {n}: {op:?}\nall: {ops:#?}");
        let (got, expected) = match op {
            Op::Batch { participant, sightings, now } => {
                let batch: Vec<NewSighting<'_>> = sightings
                    .iter()
                    .map(|(w, c)| NewSighting {
                        wire: w,
                        kind: Kind::Domain,
                        via: Via::DnsQuery,
                        campaign: c.as_deref(),
                    })
                    .collect();
                let stored = store.ingest(participant, "gw", &batch, *now).unwrap();
                let with_campaigns: Vec<(v1::Sighting, Option<&str>)> =
                    sightings.iter().map(|(w, c)| (w.clone(), c.as_deref())).collect();
                let (events, clamped, old) = oracle.batch(participant, &with_campaigns, *now);
                assert_eq!(
                    (stored.clamped_future, stored.too_old_to_correlate),
                    (clamped, old),
                    "{}",
                    context()
                );
                (stored.changes, events)
            }
            Op::Mark { indicator, now } => (
                store.mark_false_positive(indicator, &who, "oracle", *now).unwrap(),
                oracle.mark(indicator, *now),
            ),
            Op::Sweep { now } => {
                let mine = store.close_quiet(*now, 100_000).unwrap();
                let mine = mine
                    .into_iter()
                    .filter(|e| e.correlation.as_ref().unwrap().indicator.starts_with(prefix));
                (mine.collect(), oracle.sweep(*now))
            }
        };
        let mut expected = expected;
        expected.sort();
        assert_eq!(engine_events(got), expected, "events differ at {}", context());
        let (states, members) = oracle.state();
        assert_eq!(engine_state(store, prefix, start), states, "incidents differ at {}", context());
        for i in 0..4 {
            let indicator = format!("{prefix}i{i}");
            let Some(detail) = store.indicator(&indicator).unwrap() else { continue };
            let got: Vec<MemberState> = detail
                .correlation
                .map(|c| c.members)
                .unwrap_or_default()
                .into_iter()
                .map(|m| {
                    (
                        m.participant,
                        m.first_seen_unix_ms,
                        m.last_seen_unix_ms,
                        m.sightings as i64,
                        m.joined_unix_ms,
                    )
                })
                .collect();
            let expected = members.get(&indicator).cloned().unwrap_or_default();
            assert_eq!(got, expected, "members of {indicator} differ at {}", context());
        }
    }
}

/// How many streams: `ZDN_ORACLE_STREAMS`, or the engine's default.
fn streams(default: u64) -> u64 {
    std::env::var("ZDN_ORACLE_STREAMS").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

pub(super) fn the_store_agrees_with_the_oracle_on_random_streams(engine: &Engine) {
    let count = streams(if matches!(engine, Engine::Sqlite(_)) { 1000 } else { 150 });
    let base: u64 = std::env::var("ZDN_ORACLE_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x2d_c3e7);
    // SQLite's file goes to memory where it can: this test is about semantics, and a thousand
    // streams of fsyncs would be most of its time (durability has tests of its own).
    let in_memory = std::path::Path::new("/dev/shm");
    let scratch = (matches!(engine, Engine::Sqlite(_)) && in_memory.is_dir())
        .then(|| tempfile::tempdir_in(in_memory).unwrap());
    let location = match &scratch {
        Some(dir) => Location::Sqlite(dir.path().join("oracle.sqlite")),
        None => engine.location(),
    };
    let store = store::open(&location, ORACLE_RULE).unwrap();
    for stream in 0..count {
        let start = 400 * DAY + stream as i64 * 2000 * DAY;
        check_stream(store.as_ref(), base + stream, &format!("s{stream}-"), start);
    }
}
