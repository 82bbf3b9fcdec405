//! The store on its own, one suite run against both engines: idempotence, the correlation
//! window, escalation, paging, durability across reopen, and two instances writing at once.
//!
//! The PostgreSQL half needs `ZDN_TEST_POSTGRES` (see `zdn_scratch_postgres`).
//! Layout: the engines, the helpers and the engine-specific tests here; the suite in
//! `correlation` (rules, campaigns, false positives) and `records` (what is kept and purged).

use std::sync::Arc;
use zdn_collector::correlation::CorrelationRule;
use zdn_collector::store::{self, CorrelationFilter, Location, NewSighting, SightingFilter, Store};
use zdn_indicators::{Kind, Via};
use zdn_proto::v1::{self, correlation_event::Change};
use zdn_scratch_postgres::ScratchDatabase;

mod correlation;
mod oracle;
mod records;

use correlation::*;
use oracle::*;
use records::*;

const HOUR: i64 = 3_600_000;
const RULE: CorrelationRule = CorrelationRule::new(2, 24 * HOUR);

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
    incidents_open_and_every_later_participant_joins,
    quiet_incidents_close_and_a_new_wave_begins,
    a_false_positive_leaves_its_campaign,
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
    the_store_agrees_with_the_oracle_on_random_streams,
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
    store.ingest(participant, "gw", &batch, received(sightings)).unwrap()
}

/// As if the collector received the batch as soon as its last packet was seen (the
/// collector's clock is Unix time: never 0, which means "not yet").
fn received(sightings: &[v1::Sighting]) -> i64 {
    sightings.iter().map(|s| s.last_seen_unix_ms).max().unwrap_or(0).max(1)
}

fn ingest(store: &dyn Store, participant: &str, sightings: &[v1::Sighting]) -> store::Ingested {
    ingest_at(store, participant, sightings, received(sightings))
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

/// A failing statement is reported with what the server said, not "db error".
#[test]
fn a_postgres_error_carries_the_servers_sqlstate_and_message() {
    let Some(db) = ScratchDatabase::create("sqlstate") else { return };
    let store = store::open(&Location::Postgres(db.url()), RULE).unwrap();
    // The schema broken under the running store, as an operator's mistake would.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client.batch_execute("DROP TABLE incident_members").await.unwrap();
    });
    let w = wire("1", "evil.example", 5);
    let batch = [NewSighting { wire: &w, kind: Kind::Domain, via: Via::DnsQuery, campaign: None }];
    let err = store.ingest("a", "gw", &batch, 5).err().unwrap().to_string();
    assert!(err.contains("SQLSTATE 42P01") && err.contains("\"incident_members\" does not exist"), "{err}");
}
