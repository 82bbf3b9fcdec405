//! Incident rows in SQLite: load a subject's latest wave and members, write a step back, and
//! the withdrawal and sweep that change incidents outside ingest (see `store::incidents`).

use crate::correlation::CorrelationRule;
use crate::correlation::incident::{self, Incident, Member, Step};
use crate::store::StoreError;
use crate::store::incidents::{INCIDENT_COLUMNS, IncidentRow, Scope, Stored, SubjectTouch, event};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use zdn_proto::v1;

/// An `incidents` row, selected with [`INCIDENT_COLUMNS`].
pub(super) fn incident_row(r: &Row<'_>) -> rusqlite::Result<IncidentRow> {
    Ok(IncidentRow {
        scope: r.get(0)?,
        subject: r.get(1)?,
        kind: r.get(3)?,
        campaign: r.get(4)?,
        incident: IncidentRow::incident(
            r.get(2)?,
            &r.get::<_, String>(5)?,
            r.get(6)?,
            &r.get::<_, String>(7)?,
            r.get(9)?,
            r.get(10)?,
            r.get(11)?,
            r.get(12)?,
            r.get(13)?,
            r.get(14)?,
            r.get(15)?,
        ),
    })
}

/// A member, selected as participant, min(first_seen), max(last_seen), sum(sightings),
/// min(seq), min(arrived): the sum of its parts.
fn member_row(r: &Row<'_>) -> rusqlite::Result<Member> {
    Ok(Member {
        participant: r.get(0)?,
        first_seen: r.get(1)?,
        last_seen: r.get(2)?,
        sightings: r.get(3)?,
        seq: r.get(4)?,
        arrived: r.get(5)?,
    })
}

/// The latest wave of a subject.
pub(super) fn latest(
    conn: &Connection,
    scope: Scope,
    subject: &str,
) -> Result<Option<IncidentRow>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE scope = ?1 AND subject = ?2 ORDER BY wave DESC LIMIT 1"
        ))?
        .query_row(params![scope.as_str(), subject], incident_row)
        .optional()?)
}

/// The members of a subject's latest wave, each the sum of its parts.
pub(super) fn members(conn: &Connection, scope: Scope, subject: &str) -> Result<Vec<Member>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT participant, min(first_seen), max(last_seen), sum(sightings), min(seq), min(arrived)
         FROM incident_members WHERE scope = ?1 AND subject = ?2 GROUP BY participant ORDER BY min(seq)",
    )?;
    let rows = stmt.query_map(params![scope.as_str(), subject], member_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// What [`incident::step`] needs of a subject: its latest wave, and all its members — or,
/// for an open wave that goes on, only `participant`'s row.
pub(super) fn stored(
    conn: &Connection,
    rule: &CorrelationRule,
    (scope, subject): (Scope, &str),
    touch: &SubjectTouch<'_>,
    participant: &str,
    now_ms: i64,
) -> Result<Stored, StoreError> {
    let Some(incident) = latest(conn, scope, subject)?.map(|r| r.incident) else {
        return Ok(Stored::default());
    };
    let members = if incident::needs_all_members(rule, &incident, touch.first_seen, now_ms) {
        members(conn, scope, subject)?
    } else {
        member(conn, scope, subject, participant)?.into_iter().collect()
    };
    Ok(Stored { incident: Some(incident), members })
}

/// One participant's membership of a subject's latest wave, the sum of its parts.
fn member(
    conn: &Connection,
    scope: Scope,
    subject: &str,
    participant: &str,
) -> Result<Option<Member>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT participant, min(first_seen), max(last_seen), sum(sightings), min(seq), min(arrived)
             FROM incident_members WHERE scope = ?1 AND subject = ?2 AND participant = ?3 GROUP BY participant",
        )?
        .query_row(params![scope.as_str(), subject, participant], member_row)
        .optional()?)
}

/// Writes one wave (inserted or updated in place: only the indexes whose columns changed move).
pub(super) fn put(
    tx: &Transaction<'_>,
    scope: Scope,
    subject: &str,
    kind: &str,
    campaign: &str,
    i: &Incident,
) -> Result<(), StoreError> {
    tx.prepare_cached(&format!(
        "INSERT INTO incidents ({INCIDENT_COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
         ON CONFLICT (scope, subject, wave) DO UPDATE SET
           kind = excluded.kind, campaign = excluded.campaign, status = excluded.status,
           close_reason = excluded.close_reason, participants = excluded.participants,
           participant_count = excluded.participant_count, first_seen = excluded.first_seen,
           last_seen = excluded.last_seen, sightings = excluded.sightings, opened = excluded.opened,
           updated = excluded.updated, closed = excluded.closed, last_seq = excluded.last_seq"
    ))?
    .execute(params![
        scope.as_str(),
        subject,
        i.wave,
        kind,
        campaign,
        i.status.as_str(),
        i.close_reason,
        i.participants.join(","),
        i.participants.len() as i64,
        i.first_seen,
        i.last_seen,
        i.sightings,
        i.opened,
        i.updated,
        i.closed,
        i.last_seq
    ])?;
    Ok(())
}

/// Writes what a batch's step did to one subject: a closed previous wave, a fresh member list,
/// the wave, and the participant's parts.
pub(super) fn write_step(
    tx: &Transaction<'_>,
    (scope, subject): (Scope, &str),
    touch: &SubjectTouch<'_>,
    participant: &str,
    step: &Step,
) -> Result<(), StoreError> {
    if let Some(closed) = &step.closed {
        put(tx, scope, subject, touch.kind, touch.campaign, closed)?;
    }
    if step.fresh {
        tx.prepare_cached("DELETE FROM incident_members WHERE scope = ?1 AND subject = ?2")?
            .execute(params![scope.as_str(), subject])?;
    }
    let i = &step.incident;
    if step.moved_on() {
        // The common case: an open wave that only moves its times and count on.
        tx.prepare_cached(
            "UPDATE incidents SET first_seen = ?4, last_seen = ?5, sightings = ?6
             WHERE scope = ?1 AND subject = ?2 AND wave = ?3",
        )?
        .execute(params![
            scope.as_str(),
            subject,
            i.wave,
            i.first_seen,
            i.last_seen,
            i.sightings
        ])?;
    } else {
        put(tx, scope, subject, touch.kind, touch.campaign, i)?;
    }
    let mut part = tx.prepare_cached(
        "INSERT INTO incident_members (scope, subject, participant, part, first_seen, last_seen, sightings, seq, arrived)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (scope, subject, participant, part) DO UPDATE SET
           first_seen = min(first_seen, excluded.first_seen), last_seen = max(last_seen, excluded.last_seen),
           sightings = sightings + excluded.sightings",
    )?;
    for (name, &(first, last, count)) in &touch.parts {
        part.execute(params![
            scope.as_str(),
            subject,
            participant,
            name,
            first,
            last,
            count,
            step.member.seq,
            step.member.arrived
        ])?;
    }
    Ok(())
}

/// A false positive: its incident closes as one, its parts leave its campaigns.
pub(super) fn withdraw(
    tx: &Transaction<'_>,
    rule: &CorrelationRule,
    indicator: &str,
    now_ms: i64,
) -> Result<Vec<v1::CorrelationEvent>, StoreError> {
    let mut events = Vec::new();
    if let Some(row) = latest(tx, Scope::Indicator, indicator)? {
        let (closed, change) = incident::withdraw(row.incident, now_ms);
        put(tx, Scope::Indicator, indicator, &row.kind, &row.campaign, &closed)?;
        if let Some(change) = change {
            events.push(event(
                Scope::Indicator,
                indicator,
                &row.kind,
                &row.campaign,
                &closed,
                change,
                Vec::new(),
            ));
        }
    }
    let campaigns: Vec<String> = tx
        .prepare_cached(
            "SELECT DISTINCT subject FROM incident_members WHERE scope = 'campaign' AND part = ?1",
        )?
        .query_map([indicator], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for campaign in campaigns {
        tx.prepare_cached(
            "DELETE FROM incident_members WHERE scope = 'campaign' AND subject = ?1 AND part = ?2",
        )?
        .execute(params![campaign, indicator])?;
        let Some(row) = latest(tx, Scope::Campaign, &campaign)? else { continue };
        let members = members(tx, Scope::Campaign, &campaign)?;
        let (after, change) = incident::recompute(rule, row.incident, &members, now_ms);
        put(tx, Scope::Campaign, &campaign, "", &campaign, &after)?;
        if let Some(change) = change {
            events.push(event(Scope::Campaign, &campaign, "", &campaign, &after, change, Vec::new()));
        }
    }
    Ok(events)
}

/// Closes open waves quiet for `close_after` by `now_ms`, at most `limit` per call.
pub(super) fn close_quiet(
    tx: &Transaction<'_>,
    rule: &CorrelationRule,
    now_ms: i64,
    limit: u32,
) -> Result<Vec<v1::CorrelationEvent>, StoreError> {
    let rows: Vec<IncidentRow> = tx
        .prepare_cached(&format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE status = 'open' AND last_seen < ?1 LIMIT ?2"
        ))?
        .query_map(params![now_ms.saturating_sub(rule.close_after_ms), limit], incident_row)?
        .collect::<Result<_, _>>()?;
    let mut events = Vec::new();
    for row in rows {
        let Some(closed) = incident::close_if_quiet(rule, &row.incident, now_ms) else { continue };
        let scope = Scope::parse(&row.scope);
        put(tx, scope, &row.subject, &row.kind, &row.campaign, &closed)?;
        let change = v1::correlation_event::Change::Closed;
        events.push(event(scope, &row.subject, &row.kind, &row.campaign, &closed, change, Vec::new()));
    }
    Ok(events)
}
