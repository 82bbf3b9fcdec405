//! The SQLite store on its own: idempotence, the correlation window, escalation, paging,
//! durability across reopen.

use zdn_collector::correlation::CorrelationRule;
use zdn_collector::store::{CorrelationFilter, NewSighting, SightingFilter, Store};
use zdn_indicators::{Kind, Via};
use zdn_proto::v1::{self, correlation_event::Change};

const HOUR: i64 = 3_600_000;

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
        ..Default::default()
    }
}

fn ingest(store: &Store, participant: &str, sightings: &[v1::Sighting]) -> zdn_collector::store::Ingested {
    let batch: Vec<NewSighting<'_>> =
        sightings.iter().map(|w| NewSighting { wire: w, kind: Kind::Domain, via: Via::DnsQuery }).collect();
    store.ingest(participant, "gw", &batch, 1).unwrap()
}

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(&dir.path().join("zdn.sqlite"), CorrelationRule { min_participants: 2, window_ms: 24 * HOUR })
        .unwrap()
}

fn all() -> CorrelationFilter {
    CorrelationFilter { since_ms: None, min_participants: 0, kind: None, limit: 100 }
}

#[test]
fn correlations_open_escalate_and_respect_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    assert!(ingest(&store, "a", &[wire("1", "evil.example", 0)]).changes.is_empty());
    // b sees it 25 h later: a's sighting is outside the 24 h window, nothing opens.
    assert!(ingest(&store, "b", &[wire("2", "evil.example", 25 * HOUR)]).changes.is_empty());
    // c within the window of b: opens with b and c.
    let opened = ingest(&store, "c", &[wire("3", "evil.example", 26 * HOUR)]).changes;
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].change, Change::Opened as i32);
    assert_eq!(opened[0].correlation.as_ref().unwrap().participants, ["b", "c"]);
    // a again, now within the window: escalates to three.
    let escalated = ingest(&store, "a", &[wire("4", "evil.example", 27 * HOUR)]).changes;
    assert_eq!(escalated[0].change, Change::Escalated as i32);
    let c = &store.correlations(&all()).unwrap()[0];
    assert_eq!((c.participant_count, c.sightings, c.first_seen_unix_ms), (3, 4, 0));
    // More from a known participant: no event, counts still grow.
    assert!(ingest(&store, "c", &[wire("5", "evil.example", 28 * HOUR)]).changes.is_empty());
    assert_eq!(store.correlations(&all()).unwrap()[0].sightings, 5);
    let filtered = CorrelationFilter { min_participants: 4, ..all() };
    assert!(store.correlations(&filtered).unwrap().is_empty());
}

#[test]
fn retries_are_stored_once_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(&dir);
        let batch = [wire("x", "evil.example", 0), wire("y", "evil.example", 1)];
        let first = ingest(&store, "a", &batch);
        let again = ingest(&store, "a", &batch);
        assert_eq!((first.stored, first.duplicates, again.stored, again.duplicates), (2, 0, 0, 2));
        let detail = store.indicator("evil.example").unwrap().unwrap();
        assert_eq!(detail.sightings, 2, "duplicates must not count twice");
    }
    let reopened = open(&dir);
    let detail = reopened.indicator("evil.example").unwrap().unwrap();
    assert_eq!((detail.participants.len(), detail.sightings), (1, 2));
    assert!(reopened.indicator("other.example").unwrap().is_none());
}

#[test]
fn sightings_page_newest_first_without_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let batch: Vec<_> = (0..25).map(|i| wire(&format!("s{i:02}"), "evil.example", i)).collect();
    ingest(&store, "a", &batch);
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let filter = SightingFilter {
            indicator: Some("evil.example"),
            participant: Some("a"),
            since_ms: None,
            until_ms: None,
            before_row: token,
            limit: 10,
        };
        let (page, next) = store.sightings(&filter).unwrap();
        seen.extend(page.into_iter().map(|s| s.sighting.unwrap().id));
        match next {
            Some(n) => token = Some(n),
            None => break,
        }
    }
    let expected: Vec<String> = (0..25).rev().map(|i| format!("s{i:02}")).collect();
    assert_eq!(seen, expected);
    let other = SightingFilter {
        indicator: None,
        participant: Some("b"),
        since_ms: None,
        until_ms: None,
        before_row: None,
        limit: 10,
    };
    assert!(store.sightings(&other).unwrap().0.is_empty());
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(&dir));
    let conn = rusqlite::Connection::open(dir.path().join("zdn.sqlite")).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err =
        Store::open(&dir.path().join("zdn.sqlite"), CorrelationRule { min_participants: 2, window_ms: 1 })
            .err()
            .unwrap();
    assert!(err.to_string().contains("newer than this collector knows"), "{err}");
}
