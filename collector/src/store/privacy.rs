//! The privacy operations' shared parts: retention cutoffs and the purge plan over every
//! table, what a purge and an erase report, and a correlation's participant list without one.

/// Rows older than these (collector clock, Unix ms) are purged; `None` keeps a class forever.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cutoffs {
    /// Sightings by when the collector received them.
    pub sightings: Option<i64>,
    /// Correlations by their last change, aggregates by their last sighting.
    pub correlations: Option<i64>,
    pub audit: Option<i64>,
    /// Console tokens and sessions by when they expire.
    pub console_tokens: Option<i64>,
    /// Agents by their last heartbeat.
    pub agents: Option<i64>,
}

/// Rows a purge deleted, per class.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub sightings: u64,
    pub aggregates: u64,
    pub correlations: u64,
    pub audit: u64,
    pub agents: u64,
    pub console_tokens: u64,
}

/// What an erase removed or changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Erased {
    pub sightings: u64,
    pub aggregates: u64,
    pub agents: u64,
    /// Correlations that lost the participant's name but stay open.
    pub correlations_changed: u64,
    /// Correlations removed because too few participants remain.
    pub correlations_removed: u64,
}

/// Rows deleted per statement by purges, so a long purge never holds the writer for long.
pub(crate) const PURGE_BATCH: i64 = 10_000;

/// One table the purge works through: its rows older than `cutoff` go, `PURGE_BATCH` at a
/// time, and count towards `counts_as` in [`Purged`].
pub(crate) struct PurgeClass {
    pub table: &'static str,
    /// How SQLite and PostgreSQL name a row of the table in `WHERE key IN (SELECT ...)`.
    pub sqlite_key: &'static str,
    pub postgres_key: &'static str,
    /// The column compared with the cutoff.
    pub column: &'static str,
    pub cutoff: fn(&Cutoffs) -> Option<i64>,
    pub counts_as: fn(&mut Purged) -> &mut u64,
}

impl PurgeClass {
    /// The statement deleting one batch, with the cutoff as `placeholder`.
    pub fn statement(&self, key: &str, placeholder: &str) -> String {
        let (table, column) = (self.table, self.column);
        let columns = key.trim_start_matches('(').trim_end_matches(')');
        format!(
            "DELETE FROM {table} WHERE {key} IN
             (SELECT {columns} FROM {table} WHERE {column} < {placeholder} LIMIT {PURGE_BATCH})"
        )
    }
}

/// Every table with a retention, by data class: campaign state follows its indicator
/// counterparts, suspect hosts are host data like sightings.
pub(crate) const PURGE_CLASSES: [PurgeClass; 8] = [
    PurgeClass {
        table: "sightings",
        sqlite_key: "rowid",
        postgres_key: "row_id",
        column: "received",
        cutoff: |c| c.sightings,
        counts_as: |p| &mut p.sightings,
    },
    PurgeClass {
        table: "suspect_hosts",
        sqlite_key: "rowid",
        postgres_key: "(participant, host, campaign)",
        column: "last_seen",
        cutoff: |c| c.sightings,
        counts_as: |p| &mut p.sightings,
    },
    PurgeClass {
        table: "indicator_participants",
        sqlite_key: "(indicator, participant)",
        postgres_key: "(indicator, participant)",
        column: "last_seen",
        cutoff: |c| c.correlations,
        counts_as: |p| &mut p.aggregates,
    },
    PurgeClass {
        table: "incident_members",
        sqlite_key: "rowid",
        postgres_key: "(scope, subject, participant, part)",
        column: "last_seen",
        cutoff: |c| c.correlations,
        counts_as: |p| &mut p.aggregates,
    },
    PurgeClass {
        table: "incidents",
        sqlite_key: "rowid",
        postgres_key: "(scope, subject, wave)",
        column: "updated",
        cutoff: |c| c.correlations,
        counts_as: |p| &mut p.correlations,
    },
    PurgeClass {
        table: "audit",
        sqlite_key: "rowid",
        postgres_key: "seq",
        column: "at",
        cutoff: |c| c.audit,
        counts_as: |p| &mut p.audit,
    },
    PurgeClass {
        table: "agents",
        sqlite_key: "rowid",
        postgres_key: "(participant, agent)",
        column: "last_heartbeat",
        cutoff: |c| c.agents,
        counts_as: |p| &mut p.agents,
    },
    PurgeClass {
        table: "console_tokens",
        sqlite_key: "id",
        postgres_key: "id",
        column: "expires",
        cutoff: |c| c.console_tokens,
        counts_as: |p| &mut p.console_tokens,
    },
];

/// A correlation's participant list without `participant`, and how many remain.
pub(crate) fn without_participant(participants: &str, participant: &str) -> (String, u32) {
    let kept: Vec<&str> = participants.split(',').filter(|p| !p.is_empty() && *p != participant).collect();
    (kept.join(","), u32::try_from(kept.len()).unwrap_or(u32::MAX))
}
