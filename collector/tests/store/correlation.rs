//! The incident semantics on both engines, case by case: opening, joining after the window,
//! waves, clock bounds, concurrent instances, false positives, campaigns and the top list.
//! (`oracle` checks the same on random streams.)

use super::*;

/// The analyst's case: two institutions open an incident, a third sees the indicator after the
/// first two have left the window — it joins (the union never shrinks), with an event.
pub(super) fn incidents_open_and_every_later_participant_joins(engine: &Engine) {
    let store = engine.open();
    let store = store.as_ref();
    assert!(ingest(store, "a", &[wire("1", "evil.example", 0)]).changes.is_empty());
    // b sees it 25 h later: a's sighting is outside the 24 h window, nothing opens.
    assert!(ingest(store, "b", &[wire("2", "evil.example", 25 * HOUR)]).changes.is_empty());
    // c within the window of b: it opens, with everyone who saw it in this wave, in order.
    let opened = ingest(store, "c", &[wire("3", "evil.example", 26 * HOUR)]).changes;
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].change, Change::Opened as i32);
    assert_eq!(opened[0].correlation.as_ref().unwrap().participants, ["a", "b", "c"]);
    assert_eq!(opened[0].joined, ["a", "b", "c"]);
    // A known participant again: no event, counts grow.
    assert!(ingest(store, "a", &[wire("4", "evil.example", 27 * HOUR)]).changes.is_empty());
    // d, three days on — outside anyone's window: it joins all the same.
    let joined = ingest(store, "d", &[wire("5", "evil.example", 100 * HOUR)]).changes;
    assert_eq!(
        (joined[0].change, joined[0].joined.clone()),
        (Change::Escalated as i32, vec!["d".to_owned()])
    );
    let c = &store.correlations(&all()).unwrap()[0];
    assert_eq!((c.participant_count, c.sightings, c.first_seen_unix_ms, c.wave), (4, 5, 0, 1));
    assert_eq!((c.kind, c.status.as_str()), (v1::IndicatorKind::Domain as i32, "open"));
    let filtered = CorrelationFilter { min_participants: 5, ..all() };
    assert!(store.correlations(&filtered).unwrap().is_empty());
    let by_kind = CorrelationFilter { kind: Some(Kind::Url), ..all() };
    assert!(store.correlations(&by_kind).unwrap().is_empty());
    let detail = store.indicator("evil.example").unwrap().unwrap();
    let names: Vec<&str> = detail.participants.iter().map(|p| p.participant.as_str()).collect();
    assert_eq!(names, ["a", "b", "c", "d"]);
    assert_eq!(detail.participants[0].vias, [v1::Via::DnsQuery as i32]);
    let members = detail.correlation.unwrap().members;
    let spread: Vec<(&str, i64, i64)> =
        members.iter().map(|m| (m.participant.as_str(), m.first_seen_unix_ms, m.joined_unix_ms)).collect();
    assert_eq!(
        spread,
        [
            ("a", 0, 26 * HOUR),
            ("b", 25 * HOUR, 26 * HOUR),
            ("c", 26 * HOUR, 26 * HOUR),
            ("d", 100 * HOUR, 100 * HOUR)
        ]
    );
}

/// Quiet for `close_after`: the sweep closes it; the next sighting begins wave 2, which opens
/// on its own participants. Clocks far off neither open nor keep an incident open.
pub(super) fn quiet_incidents_close_and_a_new_wave_begins(engine: &Engine) {
    let store = engine.open();
    let store = store.as_ref();
    ingest(store, "a", &[wire("1", "c2.example", 0)]);
    ingest(store, "b", &[wire("2", "c2.example", HOUR)]);
    assert!(store.close_quiet(HOUR + RULE.close_after_ms, 10).unwrap().is_empty(), "not quiet yet");
    let closed = store.close_quiet(2 * HOUR + RULE.close_after_ms, 10).unwrap();
    assert_eq!(closed[0].change, Change::Closed as i32);
    let c = closed[0].correlation.as_ref().unwrap();
    assert_eq!((c.status.as_str(), c.close_reason.as_str()), ("closed", "quiet"));
    // Ten months later: c alone begins wave 2 (nothing to show yet), then d opens it.
    let later = 300 * 24 * HOUR;
    assert!(ingest(store, "c", &[wire("3", "c2.example", later)]).changes.is_empty());
    let wave2 = ingest(store, "d", &[wire("4", "c2.example", later + HOUR)]).changes;
    let c = wave2[0].correlation.as_ref().unwrap();
    assert_eq!(
        (wave2[0].change, c.wave, c.participants.clone()),
        (Change::Opened as i32, 2, vec!["c".into(), "d".into()])
    );
    let listed: Vec<(u32, String)> =
        store.correlations(&all()).unwrap().into_iter().map(|c| (c.wave, c.status)).collect();
    assert_eq!(listed, [(2, "open".to_owned()), (1, "closed".to_owned())]);
    // An agent a year ahead: clamped to the collector's clock, counted.
    let now = later + 2 * HOUR;
    let ahead = ingest_at(store, "e", &[wire("5", "c2.example", now + 365 * 24 * HOUR)], now);
    assert_eq!((ahead.clamped_future, ahead.changes.len()), (1, 1), "e joins, at the collector's time");
    assert_eq!(store.correlations(&all()).unwrap()[0].last_seen_unix_ms, now);
    // An agent years behind: stored, not correlated.
    let behind = ingest_at(store, "f", &[wire("6", "c2.example", 0)], now);
    assert_eq!((behind.stored, behind.too_old_to_correlate, behind.changes.len()), (1, 1, 0));
    assert_eq!(store.correlations(&all()).unwrap()[0].participant_count, 3);
}

/// Eight participants report ten shared indicators through two store instances at once (two
/// collectors on one database). Each indicator must open exactly once, at two participants,
/// and escalate one participant at a time up to eight: a lost update would show as a
/// correlation that opens late or skips a step.
pub(super) fn two_instances_writing_at_once_lose_no_correlation(engine: &Engine) {
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

pub(super) fn a_false_positive_closes_and_stays_closed(engine: &Engine) {
    let store = engine.open();
    let store = store.as_ref();
    let who = zdn_transport::Identity {
        participant: "z-cert".into(),
        role: zdn_transport::Role::Analyst,
        name: "ann".into(),
    };
    ingest(store, "a", &[wire("1", "cdn.example", 0)]);
    ingest(store, "b", &[wire("2", "cdn.example", 1)]);
    let closed = store.mark_false_positive("cdn.example", &who, "shared CDN", 50).unwrap();
    assert_eq!(closed[0].change, Change::ClosedFalsePositive as i32);
    let closed = closed[0].correlation.as_ref().unwrap();
    assert_eq!(
        (closed.status.as_str(), closed.participant_count, closed.updated_unix_ms),
        ("false_positive", 2, 50)
    );
    assert!(
        store.mark_false_positive("cdn.example", &who, "again", 60).unwrap().is_empty(),
        "already closed"
    );
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

/// Two institutions see *different* indicators of one campaign: no indicator correlates, the
/// campaign does. A host that hit two of its indicators is flagged; one that hit one is not.
pub(super) fn campaigns_correlate_across_indicators_and_flag_hosts(engine: &Engine) {
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

/// A false positive's sightings leave its campaign: an institution that saw only the withdrawn
/// indicator no longer counts, and a campaign left below the threshold closes, for good.
pub(super) fn a_false_positive_leaves_its_campaign(engine: &Engine) {
    let store = engine.open();
    let store = store.as_ref();
    ingest_campaign(store, "a", &[wire("1", "x1.example", 0)], "kraken");
    assert_eq!(ingest_campaign(store, "b", &[wire("2", "x2.example", 1)], "kraken").changes.len(), 1);
    ingest_campaign(store, "c", &[wire("3", "x2.example", 2)], "kraken");
    let campaign = |store: &dyn Store| {
        store.correlations(&CorrelationFilter { campaigns: true, ..all() }).unwrap().remove(0)
    };
    assert_eq!(campaign(store).participants, ["a", "b", "c"]);
    let events = store.mark_false_positive("x2.example", &analyst("z-cert"), "sinkhole", 10).unwrap();
    let changes: Vec<(i32, &str, &str)> = events
        .iter()
        .map(|e| {
            let c = e.correlation.as_ref().unwrap();
            (e.change, c.indicator.as_str(), c.close_reason.as_str())
        })
        .collect();
    assert_eq!(
        changes,
        [
            (Change::ClosedFalsePositive as i32, "x2.example", "false_positive"),
            (Change::Closed as i32, "kraken", "below_threshold")
        ]
    );
    let closed = campaign(store);
    assert_eq!((closed.status.as_str(), closed.participants.clone()), ("closed", vec!["a".to_owned()]));
    // A reload shows the same; later sightings of the withdrawn indicator do not count.
    let reopened = engine.open();
    assert_eq!(campaign(reopened.as_ref()).status, "closed");
    assert!(ingest_campaign(store, "d", &[wire("4", "x2.example", 11)], "kraken").changes.is_empty());
    let waves = store.correlations(&CorrelationFilter { campaigns: true, ..all() }).unwrap();
    assert_eq!(waves.len(), 1, "no new wave from a withdrawn indicator");
}

pub(super) fn top_indicators_rank_by_institutions_then_sightings(engine: &Engine) {
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
