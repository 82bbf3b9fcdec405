//! The SQLite schema, as the migrations that build it; `PRAGMA user_version` records how
//! many ran, and a database newer than this binary knows is refused.

use crate::store::StoreError;
use rusqlite::Connection;

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE sightings (
    id TEXT NOT NULL UNIQUE,
    participant TEXT NOT NULL,
    agent TEXT NOT NULL,
    indicator TEXT NOT NULL,
    kind TEXT NOT NULL,
    via TEXT NOT NULL,
    observed TEXT NOT NULL,
    indicator_id TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    count INTEGER NOT NULL,
    src TEXT NOT NULL,
    dst_ip TEXT NOT NULL,
    dst_port INTEGER NOT NULL,
    proto TEXT NOT NULL,
    received INTEGER NOT NULL
);
CREATE INDEX sightings_by_indicator ON sightings (indicator);
CREATE INDEX sightings_by_participant ON sightings (participant);
CREATE TABLE indicator_participants (
    indicator TEXT NOT NULL,
    participant TEXT NOT NULL,
    kind TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    sightings INTEGER NOT NULL,
    vias TEXT NOT NULL,
    PRIMARY KEY (indicator, participant)
) WITHOUT ROWID;
CREATE TABLE correlations (
    indicator TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    participants TEXT NOT NULL,
    participant_count INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    sightings INTEGER NOT NULL,
    opened INTEGER NOT NULL,
    updated INTEGER NOT NULL
);
CREATE INDEX correlations_by_updated ON correlations (updated);
CREATE TABLE agents (
    participant TEXT NOT NULL,
    agent TEXT NOT NULL,
    last_heartbeat INTEGER NOT NULL,
    agent_version TEXT NOT NULL,
    indicator_version INTEGER NOT NULL,
    indicator_count INTEGER NOT NULL,
    packets_seen INTEGER NOT NULL,
    packets_dropped_kernel INTEGER NOT NULL,
    sightings_sent INTEGER NOT NULL,
    blind_spots TEXT NOT NULL,
    cpu_percent REAL NOT NULL,
    rss_bytes INTEGER NOT NULL,
    PRIMARY KEY (participant, agent)
);
",
    r"
ALTER TABLE sightings ADD COLUMN resolved_name TEXT NOT NULL DEFAULT '';
",
    r"
ALTER TABLE agents ADD COLUMN sightings_queued INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN sightings_held_back INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN spool_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN uptime_seconds INTEGER NOT NULL DEFAULT 0;
",
    r"
CREATE TABLE audit (
    at INTEGER NOT NULL,
    participant TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_by_time ON audit (at);
",
    r"
ALTER TABLE correlations ADD COLUMN status TEXT NOT NULL DEFAULT 'open';
CREATE TABLE false_positives (
    indicator TEXT PRIMARY KEY,
    marked_at INTEGER NOT NULL,
    participant TEXT NOT NULL,
    name TEXT NOT NULL,
    reason TEXT NOT NULL
);
",
    r"
CREATE INDEX sightings_by_received ON sightings (received);
CREATE INDEX agents_by_heartbeat ON agents (last_heartbeat);
CREATE INDEX indicator_participants_by_participant ON indicator_participants (participant);
",
    r"
ALTER TABLE correlations ADD COLUMN campaign TEXT NOT NULL DEFAULT '';
CREATE INDEX correlations_by_campaign ON correlations (campaign);
CREATE TABLE campaign_participants (
    campaign TEXT NOT NULL,
    participant TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    sightings INTEGER NOT NULL,
    PRIMARY KEY (campaign, participant)
) WITHOUT ROWID;
CREATE INDEX campaign_participants_by_participant ON campaign_participants (participant);
CREATE TABLE campaigns (
    campaign TEXT PRIMARY KEY,
    participants TEXT NOT NULL,
    participant_count INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    sightings INTEGER NOT NULL,
    opened INTEGER NOT NULL,
    updated INTEGER NOT NULL
);
CREATE TABLE suspect_hosts (
    participant TEXT NOT NULL,
    host TEXT NOT NULL,
    campaign TEXT NOT NULL,
    indicators TEXT NOT NULL,
    indicator_count INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY (participant, host, campaign)
);
CREATE INDEX suspect_hosts_by_last_seen ON suspect_hosts (last_seen);
",
    r"
CREATE TABLE console_tokens (
    id TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    participant TEXT NOT NULL,
    role TEXT NOT NULL,
    name TEXT NOT NULL,
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    revoked INTEGER NOT NULL,
    issued_by TEXT NOT NULL,
    parent TEXT NOT NULL
);
CREATE INDEX console_tokens_by_parent ON console_tokens (parent);
CREATE INDEX console_tokens_by_expires ON console_tokens (expires);
",
    // Incidents (`store::incidents`) replace the correlations and campaigns tables: waves,
    // members in join order, closing. Open correlations become wave 1 with every participant
    // that saw the subject as a member (the new rule's union).
    r"
CREATE TABLE incidents (
    scope TEXT NOT NULL,
    subject TEXT NOT NULL,
    wave INTEGER NOT NULL,
    kind TEXT NOT NULL,
    campaign TEXT NOT NULL,
    status TEXT NOT NULL,
    close_reason TEXT NOT NULL,
    participants TEXT NOT NULL,
    participant_count INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    sightings INTEGER NOT NULL,
    opened INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    closed INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    PRIMARY KEY (scope, subject, wave)
);
CREATE INDEX incidents_by_updated ON incidents (scope, updated);
CREATE INDEX incidents_by_campaign ON incidents (campaign);
CREATE INDEX incidents_by_status ON incidents (status);
CREATE TABLE incident_members (
    scope TEXT NOT NULL,
    subject TEXT NOT NULL,
    participant TEXT NOT NULL,
    part TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    sightings INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    arrived INTEGER NOT NULL,
    PRIMARY KEY (scope, subject, participant, part)
);
CREATE INDEX incident_members_by_part ON incident_members (scope, part);
CREATE INDEX incident_members_by_participant ON incident_members (participant);
INSERT INTO incidents
  SELECT 'indicator', indicator, 1, kind, campaign, status,
         CASE status WHEN 'false_positive' THEN 'false_positive' ELSE '' END,
         participants, participant_count, first_seen, last_seen, sightings, opened, updated,
         CASE status WHEN 'open' THEN 0 ELSE updated END,
         (SELECT count(*) FROM indicator_participants p WHERE p.indicator = correlations.indicator)
  FROM correlations;
INSERT INTO incidents
  SELECT 'campaign', campaign, 1, '', campaign, 'open', '', participants, participant_count,
         first_seen, last_seen, sightings, opened, updated, 0,
         (SELECT count(*) FROM campaign_participants p WHERE p.campaign = campaigns.campaign)
  FROM campaigns;
INSERT INTO incident_members
  SELECT 'indicator', p.indicator, p.participant, '', p.first_seen, p.last_seen, p.sightings,
         row_number() OVER (PARTITION BY p.indicator ORDER BY p.first_seen, p.participant), c.opened
  FROM indicator_participants p JOIN correlations c ON c.indicator = p.indicator;
INSERT INTO incident_members
  SELECT 'campaign', p.campaign, p.participant, '', p.first_seen, p.last_seen, p.sightings,
         row_number() OVER (PARTITION BY p.campaign ORDER BY p.first_seen, p.participant), c.opened
  FROM campaign_participants p JOIN campaigns c ON c.campaign = p.campaign;
DROP TABLE correlations;
DROP TABLE campaigns;
DROP TABLE campaign_participants;
",
    r"
ALTER TABLE agents ADD COLUMN capture_workers TEXT NOT NULL DEFAULT '[]';
",
    r"
ALTER TABLE sightings ADD COLUMN retro INTEGER NOT NULL DEFAULT 0;
",
];

pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::TooNew { found: version, known });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
