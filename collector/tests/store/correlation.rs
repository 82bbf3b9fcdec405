//! The correlation rules on both engines: opening, escalation and the window, concurrent
//! instances, false positives, campaigns and the top list.

use super::*;

pub(super) fn correlations_open_escalate_and_respect_the_window(engine: &Engine) {
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
