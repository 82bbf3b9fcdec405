//! Incident rows in PostgreSQL, set-wise: the touched subjects' latest waves and members in
//! two reads, a batch's steps in three writes, whatever the batch's size (see
//! `store::incidents`). Withdrawal and the sweep reuse the same writes.

use crate::correlation::CorrelationRule;
use crate::correlation::incident::{self, Incident, Member, Step};
use crate::store::StoreError;
use crate::store::incidents::{INCIDENT_COLUMNS, IncidentRow, Scope, Stored, SubjectTouch, event};
use std::collections::{BTreeMap, HashMap};
use tokio_postgres::{GenericClient, Row, Transaction};
use zdn_proto::v1;

/// An `incidents` row, selected with [`INCIDENT_COLUMNS`].
pub(super) fn incident_row(r: &Row) -> IncidentRow {
    IncidentRow {
        scope: r.get(0),
        subject: r.get(1),
        kind: r.get(3),
        campaign: r.get(4),
        incident: IncidentRow::incident(
            i64::from(r.get::<_, i32>(2)),
            r.get(5),
            r.get(6),
            r.get(7),
            r.get(9),
            r.get(10),
            r.get(11),
            r.get(12),
            r.get(13),
            r.get(14),
            r.get(15),
        ),
    }
}

fn member_row(r: &Row, from: usize) -> Member {
    Member {
        participant: r.get(from),
        first_seen: r.get(from + 1),
        last_seen: r.get(from + 2),
        sightings: r.get(from + 3),
        seq: r.get(from + 4),
        arrived: r.get(from + 5),
    }
}

/// What [`incident::step`] needs of every subject a batch touched, in three reads: the latest
/// waves; all members of those that need them; `participant`'s row of the open waves that go
/// on (see `incident::needs_all_members`).
pub(super) async fn load(
    tx: &Transaction<'_>,
    rule: &CorrelationRule,
    touches: &BTreeMap<(Scope, &str), SubjectTouch<'_>>,
    participant: &str,
    now_ms: i64,
) -> Result<HashMap<(Scope, String), Stored>, StoreError> {
    let keys: Vec<(Scope, &str)> = touches.keys().copied().collect();
    let latest = tx
        .query(
            &format!(
                "SELECT DISTINCT ON (scope, subject) {INCIDENT_COLUMNS} FROM incidents
                 JOIN unnest($1::TEXT[], $2::TEXT[]) AS k(scope, subject) USING (scope, subject)
                 ORDER BY scope, subject, wave DESC"
            ),
            &[&scopes(&keys), &subjects(&keys)],
        )
        .await?;
    let mut latest: HashMap<(Scope, String), Incident> = latest
        .iter()
        .map(incident_row)
        .map(|row| ((Scope::parse(&row.scope), row.subject), row.incident))
        .collect();
    let mut out: HashMap<(Scope, String), Stored> = HashMap::new();
    let (mut all, mut own) = (Vec::new(), Vec::new());
    for (&(scope, subject), touch) in touches {
        let key = (scope, subject.to_owned());
        let Some(incident) = latest.remove(&key) else { continue };
        match incident::needs_all_members(rule, &incident, touch.first_seen, now_ms) {
            true => all.push((scope, subject)),
            false => own.push((scope, subject)),
        }
        out.entry(key).or_default().incident = Some(incident);
    }
    for (keys, only) in [(all, None), (own, Some(participant))] {
        if keys.is_empty() {
            continue;
        }
        let members = tx
            .query(
                "SELECT scope, subject, participant, min(first_seen), max(last_seen), sum(sightings)::BIGINT,
                        min(seq), min(arrived)
                 FROM incident_members JOIN unnest($1::TEXT[], $2::TEXT[]) AS k(scope, subject) USING (scope, subject)
                 WHERE $3::TEXT IS NULL OR participant = $3::TEXT
                 GROUP BY scope, subject, participant ORDER BY scope, subject, min(seq)",
                &[&scopes(&keys), &subjects(&keys), &only],
            )
            .await?;
        for row in &members {
            let key = (Scope::parse(row.get(0)), row.get::<_, String>(1));
            out.entry(key).or_default().members.push(member_row(row, 2));
        }
    }
    Ok(out)
}

fn scopes(keys: &[(Scope, &str)]) -> Vec<&'static str> {
    keys.iter().map(|k| k.0.as_str()).collect()
}

fn subjects<'a>(keys: &[(Scope, &'a str)]) -> Vec<&'a str> {
    keys.iter().map(|k| k.1).collect()
}

/// The members of one subject's latest wave.
pub(super) async fn members(
    client: &impl GenericClient,
    scope: Scope,
    subject: &str,
) -> Result<Vec<Member>, StoreError> {
    let rows = client
        .query(
            "SELECT participant, min(first_seen), max(last_seen), sum(sightings)::BIGINT, min(seq), min(arrived)
             FROM incident_members WHERE scope = $1 AND subject = $2 GROUP BY participant ORDER BY min(seq)",
            &[&scope.as_str(), &subject],
        )
        .await?;
    Ok(rows.iter().map(|r| member_row(r, 0)).collect())
}

/// The latest wave of one subject.
pub(super) async fn latest(
    client: &impl GenericClient,
    scope: Scope,
    subject: &str,
) -> Result<Option<IncidentRow>, StoreError> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE scope = $1 AND subject = $2
                 ORDER BY wave DESC LIMIT 1"
            ),
            &[&scope.as_str(), &subject],
        )
        .await?;
    Ok(row.as_ref().map(incident_row))
}

/// One wave to write: scope, subject, kind, campaign, the wave.
pub(super) type Put<'a> = (Scope, &'a str, &'a str, &'a str, &'a Incident);

/// Inserts or replaces waves, in one statement.
pub(super) async fn put(tx: &Transaction<'_>, waves: &[Put<'_>]) -> Result<(), StoreError> {
    if waves.is_empty() {
        return Ok(());
    }
    let text = |f: fn(&Put<'_>) -> String| waves.iter().map(f).collect::<Vec<String>>();
    let number = |f: fn(&Put<'_>) -> i64| waves.iter().map(f).collect::<Vec<i64>>();
    let (scopes, subjects, kinds, campaigns) = (
        text(|w| w.0.as_str().to_owned()),
        text(|w| w.1.to_owned()),
        text(|w| w.2.to_owned()),
        text(|w| w.3.to_owned()),
    );
    let (statuses, reasons, participants) = (
        text(|w| w.4.status.as_str().to_owned()),
        text(|w| w.4.close_reason.clone()),
        text(|w| w.4.participants.join(",")),
    );
    let waves_: Vec<i32> = waves.iter().map(|w| i32::try_from(w.4.wave).unwrap_or(i32::MAX)).collect();
    let counts: Vec<i32> =
        waves.iter().map(|w| i32::try_from(w.4.participants.len()).unwrap_or(i32::MAX)).collect();
    let (firsts, lasts, sightings) =
        (number(|w| w.4.first_seen), number(|w| w.4.last_seen), number(|w| w.4.sightings));
    let (opened, updated, closed) = (number(|w| w.4.opened), number(|w| w.4.updated), number(|w| w.4.closed));
    let last_seqs = number(|w| w.4.last_seq);
    tx.execute(
        &format!(
            "INSERT INTO incidents ({INCIDENT_COLUMNS})
             SELECT * FROM unnest($1::TEXT[], $2::TEXT[], $3::INTEGER[], $4::TEXT[], $5::TEXT[], $6::TEXT[],
                                  $7::TEXT[], $8::TEXT[], $9::INTEGER[], $10::BIGINT[], $11::BIGINT[],
                                  $12::BIGINT[], $13::BIGINT[], $14::BIGINT[], $15::BIGINT[], $16::BIGINT[])
             ON CONFLICT (scope, subject, wave) DO UPDATE SET
               kind = excluded.kind, campaign = excluded.campaign, status = excluded.status,
               close_reason = excluded.close_reason, participants = excluded.participants,
               participant_count = excluded.participant_count, first_seen = excluded.first_seen,
               last_seen = excluded.last_seen, sightings = excluded.sightings, opened = excluded.opened,
               updated = excluded.updated, closed = excluded.closed, last_seq = excluded.last_seq"
        ),
        &[
            &scopes,
            &subjects,
            &waves_,
            &kinds,
            &campaigns,
            &statuses,
            &reasons,
            &participants,
            &counts,
            &firsts,
            &lasts,
            &sightings,
            &opened,
            &updated,
            &closed,
            &last_seqs,
        ],
    )
    .await?;
    Ok(())
}

/// One subject's step in a batch.
pub(super) type Planned<'a> = ((Scope, &'a str), &'a SubjectTouch<'a>, Step);

/// Writes a batch's steps: fresh member lists, the waves, the participant's parts.
pub(super) async fn write_steps(
    tx: &Transaction<'_>,
    participant: &str,
    planned: &[Planned<'_>],
) -> Result<(), StoreError> {
    let fresh: Vec<&Planned<'_>> = planned.iter().filter(|p| p.2.fresh).collect();
    if !fresh.is_empty() {
        let scopes: Vec<&str> = fresh.iter().map(|p| p.0.0.as_str()).collect();
        let subjects: Vec<&str> = fresh.iter().map(|p| p.0.1).collect();
        tx.execute(
            "DELETE FROM incident_members m USING unnest($1::TEXT[], $2::TEXT[]) AS k(scope, subject)
             WHERE m.scope = k.scope AND m.subject = k.subject",
            &[&scopes, &subjects],
        )
        .await?;
    }
    let mut waves: Vec<Put<'_>> = Vec::new();
    for ((scope, subject), touch, step) in planned {
        if let Some(closed) = &step.closed {
            waves.push((*scope, subject, touch.kind, touch.campaign, closed));
        }
        waves.push((*scope, subject, touch.kind, touch.campaign, &step.incident));
    }
    put(tx, &waves).await?;
    let (mut scopes, mut subjects, mut parts) = (Vec::new(), Vec::new(), Vec::new());
    let (mut firsts, mut lasts, mut counts, mut seqs, mut arrived) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((scope, subject), touch, step) in planned {
        for (part, &(first, last, count)) in &touch.parts {
            scopes.push(scope.as_str());
            subjects.push(*subject);
            parts.push(*part);
            firsts.push(first);
            lasts.push(last);
            counts.push(count);
            seqs.push(step.member.seq);
            arrived.push(step.member.arrived);
        }
    }
    tx.execute(
        "INSERT INTO incident_members AS m (scope, subject, participant, part, first_seen, last_seen, sightings,
                                            seq, arrived)
         SELECT scope, subject, $1, part, first_seen, last_seen, sightings, seq, arrived
         FROM unnest($2::TEXT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[], $6::BIGINT[], $7::BIGINT[], $8::BIGINT[],
                     $9::BIGINT[]) AS u(scope, subject, part, first_seen, last_seen, sightings, seq, arrived)
         ON CONFLICT (scope, subject, participant, part) DO UPDATE SET
           first_seen = LEAST(m.first_seen, excluded.first_seen),
           last_seen = GREATEST(m.last_seen, excluded.last_seen),
           sightings = m.sightings + excluded.sightings",
        &[&participant, &scopes, &subjects, &parts, &firsts, &lasts, &counts, &seqs, &arrived],
    )
    .await?;
    Ok(())
}

/// A false positive: its incident closes as one, its parts leave its campaigns.
pub(super) async fn withdraw(
    tx: &Transaction<'_>,
    rule: &CorrelationRule,
    indicator: &str,
    now_ms: i64,
) -> Result<Vec<v1::CorrelationEvent>, StoreError> {
    let mut events = Vec::new();
    if let Some(row) = latest(tx, Scope::Indicator, indicator).await? {
        let (closed, change) = incident::withdraw(row.incident, now_ms);
        put(tx, &[(Scope::Indicator, indicator, &row.kind, &row.campaign, &closed)]).await?;
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
    let campaigns = tx
        .query(
            "DELETE FROM incident_members WHERE scope = 'campaign' AND part = $1 RETURNING subject",
            &[&indicator],
        )
        .await?;
    let mut campaigns: Vec<String> = campaigns.iter().map(|r| r.get(0)).collect();
    campaigns.sort();
    campaigns.dedup();
    for campaign in campaigns {
        let Some(row) = latest(tx, Scope::Campaign, &campaign).await? else { continue };
        let members = members(tx, Scope::Campaign, &campaign).await?;
        let (after, change) = incident::recompute(rule, row.incident, &members, now_ms);
        put(tx, &[(Scope::Campaign, &campaign, "", &campaign, &after)]).await?;
        if let Some(change) = change {
            events.push(event(Scope::Campaign, &campaign, "", &campaign, &after, change, Vec::new()));
        }
    }
    Ok(events)
}

/// Closes open waves quiet for `close_after` by `now_ms`, at most `limit` per call.
pub(super) async fn close_quiet(
    tx: &Transaction<'_>,
    rule: &CorrelationRule,
    now_ms: i64,
    limit: u32,
) -> Result<Vec<v1::CorrelationEvent>, StoreError> {
    let rows = tx
        .query(
            &format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE status = 'open' AND last_seen < $1 LIMIT $2"
            ),
            &[&now_ms.saturating_sub(rule.close_after_ms), &i64::from(limit)],
        )
        .await?;
    let rows: Vec<IncidentRow> = rows.iter().map(incident_row).collect();
    let mut closed: Vec<(IncidentRow, Incident)> = Vec::new();
    for row in rows {
        if let Some(c) = incident::close_if_quiet(rule, &row.incident, now_ms) {
            closed.push((row, c));
        }
    }
    let waves: Vec<Put<'_>> = closed
        .iter()
        .map(|(r, c)| (Scope::parse(&r.scope), r.subject.as_str(), r.kind.as_str(), r.campaign.as_str(), c))
        .collect();
    put(tx, &waves).await?;
    let change = v1::correlation_event::Change::Closed;
    Ok(closed
        .iter()
        .map(|(r, c)| event(Scope::parse(&r.scope), &r.subject, &r.kind, &r.campaign, c, change, Vec::new()))
        .collect())
}
