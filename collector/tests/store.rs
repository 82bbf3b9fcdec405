//! The store on its own, one suite run against both engines: idempotence, the correlation
//! window, escalation, paging, durability across reopen, and two instances writing at once.
//!
//! The PostgreSQL half needs `ZDN_TEST_POSTGRES` (see `zdn_collector::store::scratch`).

use std::sync::Arc;
use zdn_collector::correlation::CorrelationRule;
use zdn_collector::store::scratch::ScratchDatabase;
use zdn_collector::store::{self, CorrelationFilter, Location, NewSighting, SightingFilter, Store};
use zdn_indicators::{Kind, Via};
use zdn_proto::v1::{self, correlation_event::Change};

const HOUR: i64 = 3_600_000;
const RULE: CorrelationRule = CorrelationRule { min_participants: 2, window_ms: 24 * HOUR };

/// Where one test's store lives; dropping it removes the data.
enum Engine {
    Sqlite(tempfile::TempDir),
    Postgres(ScratchDatabase),
}

impl Engine {
    fn location(&self) -> Location {
        match self {
            Engine::Sqlite(dir) => Location::Sqlite(dir.path().join("zdn.sqlite")),
            Engine::Postgres(db) => Location::Postgres(db.url()),
        }
    }

    fn open(&self) -> Arc<dyn Store> {
        store::open(&self.location(), RULE).unwrap()
    }
}

/// Runs each test once per engine: `sqlite::name` always, `postgres::name` where a server is
/// configured.
macro_rules! on_both_engines {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $test() {
                super::$test(&super::Engine::Sqlite(tempfile::tempdir().unwrap()));
            })*
        }
        mod postgres {
            $(#[test]
            fn $test() {
                if let Some(db) = super::ScratchDatabase::create(stringify!($test)) {
                    super::$test(&super::Engine::Postgres(db));
                }
            })*
        }
    };
}

on_both_engines!(
    correlations_open_escalate_and_respect_the_window,
    retries_are_stored_once_and_survive_reopen,
    sightings_page_newest_first_without_gaps,
    heartbeats_and_audit_entries_round_trip,
    two_instances_writing_at_once_lose_no_correlation,
    a_false_positive_closes_and_stays_closed,
    retention_purges_each_class_by_its_own_cutoff,
    erasing_a_participant_removes_it_everywhere,
    campaigns_correlate_across_indicators_and_flag_hosts,
    top_indicators_rank_by_institutions_then_sightings,
    console_tokens_are_found_by_hash_revoked_with_their_sessions_and_purged,
);

fn wire(id: &str, indicator: &str, at: i64) -> v1::Sighting {
    v1::Sighting {
        id: id.into(),
        indicator: indicator.into(),
        kind: v1::IndicatorKind::Domain as i32,
        via: v1::Via::DnsQuery as i32,
        observed: indicator.into(),
        first_seen_unix_ms: at,
        last_seen_unix_ms: at,
        count: 1,
        src: "h-1".into(),
        dst_port: 53,
        ..Default::default()
    }
}

/// Ingests sightings of indicators of `campaign`.
fn ingest_campaign(
    store: &dyn Store,
    participant: &str,
    sightings: &[v1::Sighting],
    campaign: &str,
) -> store::Ingested {
    let batch: Vec<NewSighting<'_>> = sightings
        .iter()
        .map(|w| NewSighting { wire: w, kind: Kind::Domain, via: Via::DnsQuery, campaign: Some(campaign) })
        .collect();
    store.ingest(participant, "gw", &batch, 1).unwrap()
}

fn ingest(store: &dyn Store, participant: &str, sightings: &[v1::Sighting]) -> store::Ingested {
    ingest_at(store, participant, sightings, 1)
}

/// Ingests as if the collector received the batch at `now_ms`.
fn ingest_at(
    store: &dyn Store,
    participant: &str,
    sightings: &[v1::Sighting],
    now_ms: i64,
) -> store::Ingested {
    let batch: Vec<NewSighting<'_>> = sightings
        .iter()
        .map(|w| NewSighting { wire: w, kind: Kind::Domain, via: Via::DnsQuery, campaign: None })
        .collect();
    store.ingest(participant, "gw", &batch, now_ms).unwrap()
}

fn analyst(participant: &str) -> zdn_transport::Identity {
    zdn_transport::Identity {
        participant: participant.into(),
        role: zdn_transport::Role::Analyst,
        name: "ann".into(),
    }
}

fn all() -> CorrelationFilter {
    CorrelationFilter {
        since_ms: None,
        min_participants: 0,
        kind: None,
        campaign: None,
        campaigns: false,
        limit: 100,
    }
}

fn correlations_open_escalate_and_respect_the_window(engine: &Engine) {
    let store = engine.open();
    let store = store.as_ref();
    assert!(ingest(store, "a", &[wire("1", "evil.example", 0)]).changes.is_empty());
    // b sees it 25 h later: a's sighting is outside the 24 h window, nothing opens.
    assert!(ingest(store, "b", &[wire("2", "evil.example", 25 * HOUR)]).changes.is_empty());
    // c within the window of b: opens with b and c.
    let opened = ingest(store, "c", &[wire("3", "evil.example", 26 * HOUR)]).changes;
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].change, Change::Opened as i32);
    assert_eq!(opened[0].correlation.as_ref().unwrap().participants, ["b", "c"]);
    // a again, now within the window: escalates to three.
    let escalated = ingest(store, "a", &[wire("4", "evil.example", 27 * HOUR)]).changes;
    assert_eq!(escalated[0].change, Change::Escalated as i32);
    let c = &store.correlations(&all()).unwrap()[0];
    assert_eq!((c.participant_count, c.sightings, c.first_seen_unix_ms), (3, 4, 0));
    assert_eq!(c.kind, v1::IndicatorKind::Domain as i32);
    // More from a known participant: no event, counts still grow.
    assert!(ingest(store, "c", &[wire("5", "evil.example", 28 * HOUR)]).changes.is_empty());
    assert_eq!(store.correlations(&all()).unwrap()[0].sightings, 5);
    let filtered = CorrelationFilter { min_participants: 4, ..all() };
    assert!(store.correlations(&filtered).unwrap().is_empty());
    let by_kind = CorrelationFilter { kind: Some(Kind::Url), ..all() };
    assert!(store.correlations(&by_kind).unwrap().is_empty());
    let detail = store.indicator("evil.example").unwrap().unwrap();
    let names: Vec<&str> = detail.participants.iter().map(|p| p.participant.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(detail.participants[0].vias, [v1::Via::DnsQuery as i32]);
    assert_eq!(detail.correlation.unwrap().participant_count, 3);
}

fn retries_are_stored_once_and_survive_reopen(engine: &Engine) {
    {
        let store = engine.open();
        let batch = [wire("x", "evil.example", 0), wire("y", "evil.example", 1)];
        let first = ingest(store.as_ref(), "a", &batch);
        let again = ingest(store.as_ref(), "a", &batch);
        assert_eq!((first.stored, first.duplicates, again.stored, again.duplicates), (2, 0, 0, 2));
        let detail = store.indicator("evil.example").unwrap().unwrap();
        assert_eq!(detail.sightings, 2, "duplicates must not count twice");
    }
    let reopened = engine.open();
    let detail = reopened.indicator("evil.example").unwrap().unwrap();
    assert_eq!((detail.participants.len(), detail.sightings), (1, 2));
    assert!(reopened.indicator("other.example").unwrap().is_none());
}

fn sightings_page_newest_first_without_gaps(engine: &Engine) {
    let store = engine.open();
    let batch: Vec<_> = (0..25).map(|i| wire(&format!("s{i:02}"), "evil.example", i)).collect();
    ingest(store.as_ref(), "a", &batch);
    let filter = |before_row, participant| SightingFilter {
        indicator: Some("evil.example"),
        participant: Some(participant),
        since_ms: None,
        until_ms: None,
        before_row,
        limit: 10,
    };
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let (page, next) = store.sightings(&filter(token, "a")).unwrap();
        seen.extend(page.into_iter().map(|s| s.sighting.unwrap().id));
        match next {
            Some(n) => token = Some(n),
            None => break,
        }
    }
    let expected: Vec<String> = (0..25).rev().map(|i| format!("s{i:02}")).collect();
    assert_eq!(seen, expected);
    assert!(store.sightings(&filter(None, "b")).unwrap().0.is_empty());
    let window = SightingFilter { since_ms: Some(10), until_ms: Some(12), ..filter(None, "a") };
    let (page, _) = store.sightings(&window).unwrap();
    let ids: Vec<String> = page.into_iter().map(|s| s.sighting.unwrap().id).collect();
    assert_eq!(ids, ["s12", "s11", "s10"]);
}

fn heartbeats_and_audit_entries_round_trip(engine: &Engine) {
    let store = engine.open();
    let beat = v1::HeartbeatRequest {
        agent_version: "1.2.3".into(),
        indicator_version: 7,
        packets_seen: u64::MAX,
        sightings_held_back: 5,
        blind_spots: [("ech".to_owned(), 3)].into(),
        ..Default::default()
    };
    store.record_heartbeat("umc", "gw-1", &beat, 1_000).unwrap();
    store
        .record_heartbeat("umc", "gw-1", &v1::HeartbeatRequest { indicator_version: 8, ..beat }, 2_000)
        .unwrap();
    let fleet = store.fleet(400_000, 300_000).unwrap();
    assert_eq!(fleet.len(), 1, "a second heartbeat replaces the first");
    let agent = &fleet[0];
    assert_eq!((agent.indicator_version, agent.last_heartbeat_unix_ms, agent.stale), (8, 2_000, true));
    assert_eq!((agent.packets_seen, agent.sightings_held_back), (i64::MAX as u64, 5));
    assert_eq!(agent.blind_spots.get("ech"), Some(&3));
    assert!(!store.fleet(2_001, 300_000).unwrap()[0].stale);

    let who = zdn_transport::Identity {
        participant: "z-cert".into(),
        role: zdn_transport::Role::Analyst,
        name: "ann".into(),
    };
    store.audit(10, &who, "list_sightings", "first").unwrap();
    store.audit(20, &who, "get_indicator", "second").unwrap();
    let log = store.audit_log(0, 10).unwrap();
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["get_indicator", "list_sightings"]);
    assert_eq!((log[0].name.as_str(), log[0].role.as_str()), ("ann", "analyst"));
    assert_eq!(store.audit_log(15, 10).unwrap().len(), 1);
}

/// Eight participants report ten shared indicators through two store instances at once (two
/// collectors on one database). Each indicator must open exactly once, at two participants,
/// and escalate one participant at a time up to eight: a lost update would show as a
/// correlation that opens late or skips a step.
fn two_instances_writing_at_once_lose_no_correlation(engine: &Engine) {
    let instances = [engine.open(), engine.open()];
    let events: Vec<v1::CorrelationEvent> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|p| {
                let store = instances[p % 2].clone();
                scope.spawn(move || {
                    let mut events = Vec::new();
                    for round in 0..10 {
                        let batch: Vec<_> = (0..10)
                            .map(|i| {
                                wire(&format!("p{p}-r{round}-i{i}"), &format!("shared-{i}.example"), round)
                            })
                            .collect();
                        events.extend(ingest(store.as_ref(), &format!("p{p}"), &batch).changes);
                    }
                    events
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    for i in 0..10 {
        let indicator = format!("shared-{i}.example");
        let mut counts: Vec<(i32, u32)> = events
            .iter()
            .filter_map(|e| {
                let c = e.correlation.as_ref()?;
                (c.indicator == indicator).then_some((e.change, c.participant_count))
            })
            .collect();
        counts.sort_by_key(|c| c.1);
        let expected: Vec<(i32, u32)> = std::iter::once((Change::Opened as i32, 2))
            .chain((3..=8).map(|n| (Change::Escalated as i32, n)))
            .collect();
        assert_eq!(counts, expected, "{indicator}");
        let detail = instances[0].indicator(&indicator).unwrap().unwrap();
        assert_eq!((detail.participants.len(), detail.sightings), (8, 80));
    }
    let open = instances[1].correlations(&all()).unwrap();
    assert_eq!(open.len(), 10);
    assert!(open.iter().all(|c| c.participant_count == 8 && c.sightings == 80));
}

fn a_false_positive_closes_and_stays_closed(engine: &Engine) {
    let store = engine.open();
    let store = store.as_ref();
    let who = zdn_transport::Identity {
        participant: "z-cert".into(),
        role: zdn_transport::Role::Analyst,
        name: "ann".into(),
    };
    ingest(store, "a", &[wire("1", "cdn.example", 0)]);
    ingest(store, "b", &[wire("2", "cdn.example", 1)]);
    let closed = store.mark_false_positive("cdn.example", &who, "shared CDN", 50).unwrap().unwrap();
    assert_eq!(
        (closed.status.as_str(), closed.participant_count, closed.updated_unix_ms),
        ("false_positive", 2, 50)
    );
    assert!(store.mark_false_positive("cdn.example", &who, "again", 60).unwrap().is_none(), "already closed");
    assert!(ingest(store, "c", &[wire("3", "cdn.example", 2)]).changes.is_empty(), "no escalation");
    // Marked before it ever correlates: it never opens.
    store.mark_false_positive("quiet.example", &who, "vendor", 70).unwrap();
    ingest(store, "a", &[wire("4", "quiet.example", 0)]);
    assert!(ingest(store, "b", &[wire("5", "quiet.example", 0)]).changes.is_empty());
    let listed = store.correlations(&all()).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].status.as_str(), listed[0].participant_count), ("false_positive", 2));
    assert_eq!(store.false_positives().unwrap(), ["cdn.example", "quiet.example"]);
    assert_eq!(store.indicator("cdn.example").unwrap().unwrap().participants.len(), 3, "sightings are kept");
}

fn retention_purges_each_class_by_its_own_cutoff(engine: &Engine) {
    let store = engine.open();
    let store = store.as_ref();
    // Old: received at 1000, packet time 0; new: received at 5000, packet time 4000.
    ingest_at(store, "a", &[wire("old-a", "old.example", 0)], 1_000);
    ingest_at(store, "b", &[wire("old-b", "old.example", 0)], 1_000);
    let fresh: Vec<_> = (0..3).map(|i| wire(&format!("new-{i}"), "new.example", 4_000)).collect();
    ingest_at(store, "a", &fresh, 5_000);
    store.audit(1_000, &analyst("z-cert"), "old_call", "").unwrap();
    store.audit(5_000, &analyst("z-cert"), "new_call", "").unwrap();
    store.record_heartbeat("a", "gone", &v1::HeartbeatRequest::default(), 1_000).unwrap();
    store.record_heartbeat("a", "alive", &v1::HeartbeatRequest::default(), 5_000).unwrap();

    // Only sightings first: the aggregates and the correlation built from them stay.
    let cutoffs = store::Cutoffs { sightings: Some(2_000), ..Default::default() };
    assert_eq!(store.purge(&cutoffs).unwrap(), store::Purged { sightings: 2, ..Default::default() });
    assert_eq!(store.correlations(&all()).unwrap().len(), 1);
    let all_classes = store::Cutoffs {
        sightings: Some(2_000),
        correlations: Some(2_000),
        audit: Some(2_000),
        agents: Some(2_000),
        console_tokens: Some(2_000),
    };
    let purged = store.purge(&all_classes).unwrap();
    let expected =
        store::Purged { aggregates: 2, correlations: 1, audit: 1, agents: 1, ..Default::default() };
    assert_eq!(purged, expected);
    assert!(store.correlations(&all()).unwrap().is_empty());
    assert!(store.indicator("old.example").unwrap().is_none());
    assert_eq!(store.indicator("new.example").unwrap().unwrap().sightings, 3);
    let remaining = SightingFilter {
        indicator: None,
        participant: None,
        since_ms: None,
        until_ms: None,
        before_row: None,
        limit: 100,
    };
    assert_eq!(store.sightings(&remaining).unwrap().0.len(), 3);
    let actions: Vec<String> = store.audit_log(0, 10).unwrap().into_iter().map(|e| e.action).collect();
    assert_eq!(actions, ["new_call"]);
    assert_eq!(store.fleet(5_000, 1_000).unwrap()[0].agent, "alive");
    assert_eq!(store.purge(&all_classes).unwrap(), store::Purged::default(), "nothing left to purge");
}

fn erasing_a_participant_removes_it_everywhere(engine: &Engine) {
    let store = engine.open();
    let store = store.as_ref();
    for p in ["a", "b", "c"] {
        let mut mine = wire(&format!("{p}-1"), "three.example", 0);
        mine.src = format!("h-{p}");
        let mut other_host = wire(&format!("{p}-2"), "three.example", 1);
        other_host.src = "h-other".into();
        ingest(store, p, &[mine, other_host]);
    }
    ingest(store, "a", &[wire("a-3", "two.example", 0)]);
    ingest(store, "b", &[wire("b-3", "two.example", 0)]);
    store.record_heartbeat("a", "gw", &v1::HeartbeatRequest::default(), 1).unwrap();
    store.audit(1, &analyst("a"), "list_sightings", "").unwrap();

    // One host of a: only its sightings go.
    let host = store.erase("a", Some("h-a")).unwrap();
    assert_eq!(host, store::Erased { sightings: 1, ..Default::default() });
    // All of a: sightings, aggregates, agents, and its name from both correlations; the one
    // left with a single participant is removed.
    let erased = store.erase("a", None).unwrap();
    assert_eq!(
        erased,
        store::Erased {
            sightings: 2,
            aggregates: 2,
            agents: 1,
            correlations_changed: 1,
            correlations_removed: 1
        }
    );
    let left = store.correlations(&all()).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(
        (left[0].participants.clone(), left[0].participant_count),
        (vec!["b".to_owned(), "c".to_owned()], 2)
    );
    assert!(store.timelines_of("a").unwrap().is_empty());
    assert_eq!(store.timelines_of("b").unwrap().len(), 2);
    let of_a = SightingFilter {
        indicator: None,
        participant: Some("a"),
        since_ms: None,
        until_ms: None,
        before_row: None,
        limit: 100,
    };
    assert!(store.sightings(&of_a).unwrap().0.is_empty());
    assert!(store.fleet(1, 1_000).unwrap().is_empty());
    assert_eq!(store.audit_of("a").unwrap().len(), 1, "the audit trail stays");
}

/// Two institutions see *different* indicators of one campaign: no indicator correlates, the
/// campaign does. A host that hit two of its indicators is flagged; one that hit one is not.
fn campaigns_correlate_across_indicators_and_flag_hosts(engine: &Engine) {
    let store = engine.open();
    let store = store.as_ref();
    let at_host =
        |id: &str, indicator: &str, host: &str| v1::Sighting { src: host.into(), ..wire(id, indicator, 0) };
    let first = ingest_campaign(
        store,
        "a",
        &[at_host("1", "dga-1.example", "h-1"), at_host("2", "dga-2.example", "h-1")],
        "emotet",
    );
    assert!(first.changes.is_empty());
    let second = ingest_campaign(store, "b", &[at_host("3", "dga-3.example", "h-9")], "emotet");
    assert_eq!(second.changes.len(), 1, "the campaign opens");
    let c = second.changes[0].correlation.as_ref().unwrap();
    assert_eq!(
        (c.indicator.as_str(), c.scope.as_str(), c.participants.clone()),
        ("emotet", "campaign", vec!["a".to_owned(), "b".to_owned()])
    );
    assert!(store.correlations(&all()).unwrap().is_empty(), "no single indicator correlates");
    let campaigns = store.correlations(&CorrelationFilter { campaigns: true, ..all() }).unwrap();
    assert_eq!((campaigns.len(), campaigns[0].participant_count, campaigns[0].sightings), (1, 2, 3));
    // A third institution escalates the campaign.
    let third = ingest_campaign(store, "c", &[at_host("4", "dga-1.example", "h-5")], "emotet");
    let changes: Vec<(&str, &str, i32)> = third
        .changes
        .iter()
        .map(|e| {
            let c = e.correlation.as_ref().unwrap();
            (c.scope.as_str(), c.indicator.as_str(), e.change)
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("indicator", "dga-1.example", Change::Opened as i32),
            ("campaign", "emotet", Change::Escalated as i32)
        ]
    );
    // Indicator correlations carry their campaign and can be filtered by it.
    let dga1 = store.correlations(&CorrelationFilter { campaign: Some("emotet".into()), ..all() }).unwrap();
    assert_eq!(
        (dga1.len(), dga1[0].indicator.as_str(), dga1[0].campaign.as_str()),
        (1, "dga-1.example", "emotet")
    );
    assert!(
        store
            .correlations(&CorrelationFilter { campaign: Some("other".into()), ..all() })
            .unwrap()
            .is_empty()
    );

    let hosts = store.suspect_hosts(None, 10).unwrap();
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    assert_eq!(
        (hosts[0].participant.as_str(), hosts[0].host.as_str(), hosts[0].campaign.as_str()),
        ("a", "h-1", "emotet")
    );
    assert_eq!(hosts[0].indicators, ["dga-1.example", "dga-2.example"]);
    assert!(store.suspect_hosts(Some("b"), 10).unwrap().is_empty());
    // h-9 of b becomes suspect when it hits a second indicator of the campaign later.
    ingest_campaign(store, "b", &[at_host("5", "dga-2.example", "h-9")], "emotet");
    assert_eq!(store.suspect_hosts(Some("b"), 10).unwrap()[0].indicators, ["dga-2.example", "dga-3.example"]);

    // Erasing a takes it out of the campaign and its hosts with it.
    store.erase("a", None).unwrap();
    assert!(store.suspect_hosts(Some("a"), 10).unwrap().is_empty());
    let campaigns = store.correlations(&CorrelationFilter { campaigns: true, ..all() }).unwrap();
    assert_eq!(campaigns[0].participants, ["b", "c"]);
}

fn top_indicators_rank_by_institutions_then_sightings(engine: &Engine) {
    let store = engine.open();
    let store = store.as_ref();
    ingest(
        store,
        "a",
        &[wire("1", "wide.example", 10), wire("2", "busy.example", 10), wire("3", "busy.example", 11)],
    );
    ingest(store, "b", &[wire("4", "wide.example", 12), wire("5", "busy.example", 12)]);
    ingest(store, "c", &[wire("6", "wide.example", 13), wire("7", "old.example", 1)]);
    let top = store.top_indicators(i64::MIN, 10).unwrap();
    let ranking: Vec<(&str, u32, u64)> =
        top.iter().map(|t| (t.indicator.as_str(), t.participant_count, t.sightings)).collect();
    assert_eq!(ranking, [("wide.example", 3, 3), ("busy.example", 2, 3), ("old.example", 1, 1)]);
    assert_eq!(top[0].last_seen_unix_ms, 13);
    assert_eq!(store.top_indicators(5, 10).unwrap().len(), 2, "old.example was last seen before 5");
    assert_eq!(store.top_indicators(i64::MIN, 1).unwrap().len(), 1);
}

fn console_tokens_are_found_by_hash_revoked_with_their_sessions_and_purged(engine: &Engine) {
    let store = engine.open();
    let record = |id: &str, kind: &str, parent: &str, expires: i64| v1::ConsoleToken {
        id: id.into(),
        kind: kind.into(),
        participant: "umc".into(),
        role: "analyst".into(),
        name: "Uma".into(),
        created_unix_ms: 1_000,
        expires_unix_ms: expires,
        revoked_unix_ms: 0,
        issued_by: "z-cert/admin (root)".into(),
        parent: parent.into(),
    };
    store.put_console_token(&record("t1", "token", "", 9_000), "hash-t1").unwrap();
    store.put_console_token(&record("s1", "session", "t1", 5_000), "hash-s1").unwrap();
    store.put_console_token(&record("s2", "session", "", 1_500), "hash-s2").unwrap();
    assert!(store.put_console_token(&record("t1", "token", "", 9_000), "other").is_err(), "ids are unique");
    assert_eq!(store.console_token("hash-s1").unwrap(), Some(record("s1", "session", "t1", 5_000)));
    assert_eq!(store.console_token("nothing").unwrap(), None);
    assert_eq!(store.console_tokens().unwrap().len(), 3);

    // Revoking the token revokes its session too, once; the other session is untouched.
    assert_eq!(store.revoke_console_token("t1", 2_000).unwrap(), 2);
    assert_eq!(store.revoke_console_token("t1", 3_000).unwrap(), 0);
    assert_eq!(store.console_token("hash-s1").unwrap().unwrap().revoked_unix_ms, 2_000);
    assert_eq!(store.console_token("hash-s2").unwrap().unwrap().revoked_unix_ms, 0);

    // The purge removes what expired before the cutoff.
    let purged = store.purge(&store::Cutoffs { console_tokens: Some(6_000), ..Default::default() }).unwrap();
    assert_eq!(purged, store::Purged { console_tokens: 2, ..Default::default() });
    let left: Vec<String> = store.console_tokens().unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(left, ["t1"]);
}

#[test]
fn a_newer_sqlite_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::Sqlite(dir);
    drop(engine.open());
    let Engine::Sqlite(dir) = &engine else { unreachable!() };
    let conn = rusqlite::Connection::open(dir.path().join("zdn.sqlite")).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = store::open(&engine.location(), RULE).err().unwrap();
    assert!(err.to_string().contains("newer than this collector knows"), "{err}");
}

#[test]
fn an_unreachable_postgres_server_is_a_clear_error() {
    // Port 1 on loopback: nothing listens there.
    let location = Location::Postgres("postgres://zdn:secret@127.0.0.1:1/zdn".into());
    let err = store::open(&location, RULE).err().unwrap().to_string();
    assert!(err.contains("postgres") && !err.contains("secret"), "{err}");
}
