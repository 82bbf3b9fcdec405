//! What the store keeps, on both engines: idempotent retries, paging, heartbeats and audit,
//! retention, erasure and console tokens.

use super::*;

pub(super) fn retries_are_stored_once_and_survive_reopen(engine: &Engine) {
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

pub(super) fn sightings_page_newest_first_without_gaps(engine: &Engine) {
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

/// The capture workers of the heartbeat in `heartbeats_and_audit_entries_round_trip`.
fn beat_workers() -> Vec<v1::CaptureWorker> {
    (0..2)
        .map(|worker| v1::CaptureWorker {
            interface: "eth1".into(),
            worker,
            method: "ring".into(),
            packets: 1_000 + u64::from(worker),
            kernel_drops: 7,
            queue_freezes: u64::from(worker),
        })
        .collect()
}

pub(super) fn heartbeats_and_audit_entries_round_trip(engine: &Engine) {
    let store = engine.open();
    let beat = v1::HeartbeatRequest {
        agent_version: "1.2.3".into(),
        indicator_version: 7,
        packets_seen: u64::MAX,
        sightings_held_back: 5,
        blind_spots: [("ech".to_owned(), 3)].into(),
        capture_workers: beat_workers(),
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
    assert_eq!(agent.capture_workers, beat_workers(), "each capture worker, as the agent reported it");
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

pub(super) fn retention_purges_each_class_by_its_own_cutoff(engine: &Engine) {
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
    // Aggregates: the two timelines of old.example and its incident's two members.
    let expected =
        store::Purged { aggregates: 4, correlations: 1, audit: 1, agents: 1, ..Default::default() };
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

pub(super) fn erasing_a_participant_removes_it_everywhere(engine: &Engine) {
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
            aggregates: 4, // two timelines, two incident memberships
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

pub(super) fn console_tokens_are_found_by_hash_revoked_with_their_sessions_and_purged(engine: &Engine) {
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
