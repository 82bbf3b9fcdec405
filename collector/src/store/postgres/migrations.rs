//! The PostgreSQL schema, as the migrations that build it; `zdn_schema` records how many ran.
//! They run under a session advisory lock, so instances starting together migrate once.

use crate::store::StoreError;

const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE sightings (
    row_id BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    participant TEXT NOT NULL,
    agent TEXT NOT NULL,
    indicator TEXT NOT NULL,
    kind TEXT NOT NULL,
    via TEXT NOT NULL,
    observed TEXT NOT NULL,
    indicator_id TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    count BIGINT NOT NULL,
    src TEXT NOT NULL,
    dst_ip TEXT NOT NULL,
    dst_port INTEGER NOT NULL,
    proto TEXT NOT NULL,
    received BIGINT NOT NULL,
    resolved_name TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sightings_by_indicator ON sightings (indicator, row_id);
CREATE INDEX sightings_by_participant ON sightings (participant, row_id);
CREATE TABLE indicator_participants (
    indicator TEXT NOT NULL,
    participant TEXT NOT NULL,
    kind TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    sightings BIGINT NOT NULL,
    vias TEXT NOT NULL,
    PRIMARY KEY (indicator, participant)
);
CREATE TABLE correlations (
    indicator TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    participants TEXT NOT NULL,
    participant_count INTEGER NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    sightings BIGINT NOT NULL,
    opened BIGINT NOT NULL,
    updated BIGINT NOT NULL
);
CREATE INDEX correlations_by_updated ON correlations (updated);
CREATE TABLE agents (
    participant TEXT NOT NULL,
    agent TEXT NOT NULL,
    last_heartbeat BIGINT NOT NULL,
    agent_version TEXT NOT NULL,
    indicator_version BIGINT NOT NULL,
    indicator_count BIGINT NOT NULL,
    packets_seen BIGINT NOT NULL,
    packets_dropped_kernel BIGINT NOT NULL,
    sightings_sent BIGINT NOT NULL,
    blind_spots TEXT NOT NULL,
    cpu_percent DOUBLE PRECISION NOT NULL,
    rss_bytes BIGINT NOT NULL,
    sightings_queued BIGINT NOT NULL,
    sightings_held_back BIGINT NOT NULL,
    spool_bytes BIGINT NOT NULL,
    uptime_seconds BIGINT NOT NULL,
    PRIMARY KEY (participant, agent)
);
CREATE TABLE audit (
    seq BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
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
    marked_at BIGINT NOT NULL,
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
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    sightings BIGINT NOT NULL,
    PRIMARY KEY (campaign, participant)
);
CREATE INDEX campaign_participants_by_participant ON campaign_participants (participant);
CREATE TABLE campaigns (
    campaign TEXT PRIMARY KEY,
    participants TEXT NOT NULL,
    participant_count INTEGER NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    sightings BIGINT NOT NULL,
    opened BIGINT NOT NULL,
    updated BIGINT NOT NULL
);
CREATE TABLE suspect_hosts (
    participant TEXT NOT NULL,
    host TEXT NOT NULL,
    campaign TEXT NOT NULL,
    indicators TEXT NOT NULL,
    indicator_count INTEGER NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
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
    created BIGINT NOT NULL,
    expires BIGINT NOT NULL,
    revoked BIGINT NOT NULL,
    issued_by TEXT NOT NULL,
    parent TEXT NOT NULL
);
CREATE INDEX console_tokens_by_parent ON console_tokens (parent);
CREATE INDEX console_tokens_by_expires ON console_tokens (expires);
",
    // Incidents (`store::incidents`) replace the correlations and campaigns tables, as in
    // SQLite's migration 9.
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
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    sightings BIGINT NOT NULL,
    opened BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    closed BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
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
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    sightings BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    arrived BIGINT NOT NULL,
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
ALTER TABLE sightings ADD COLUMN retro BOOLEAN NOT NULL DEFAULT FALSE;
",
];

/// Session advisory lock key held while migrating ("zdn" in ASCII).
const MIGRATION_LOCK: i64 = 0x7a_646e;

pub(super) async fn migrate(client: &mut deadpool_postgres::Client) -> Result<(), StoreError> {
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await?;
    let result = async {
        client.batch_execute("CREATE TABLE IF NOT EXISTS zdn_schema (version INTEGER NOT NULL)").await?;
        let version: i32 =
            client.query_opt("SELECT version FROM zdn_schema", &[]).await?.map_or(0, |r| r.get(0));
        let known = MIGRATIONS.len() as i64;
        if i64::from(version) > known {
            return Err(StoreError::TooNew { found: version.into(), known });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
            let tx = client.transaction().await?;
            tx.batch_execute(sql).await?;
            tx.execute("DELETE FROM zdn_schema", &[]).await?;
            tx.execute("INSERT INTO zdn_schema (version) VALUES ($1)", &[&(i as i32 + 1)]).await?;
            tx.commit().await?;
        }
        Ok(())
    }
    .await;
    client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await?;
    result
}
