//! Every statement the monitor sends, one function each, grouped by the
//! rule it serves.
//!
//! Each is a single statement (data-modifying CTEs where it both reads and
//! writes), so it is atomic; each compares against the database's `now()`,
//! so the monitor host's clock never matters; each returns one JSON value so
//! a simple-protocol request can carry it. Settings are written into the
//! text: durations as whole milliseconds, strings through [`literal`],
//! configured names as quoted [`Identifier`](crate::identifier::Identifier)s.
//! What varies from run to run (lists of ids, workers, clock offsets) goes
//! as [`params`], so that a text stays the same and the server keeps it
//! planned.
//!
//! Parts: [`stage`] (the two stages a job can be stuck in, their columns,
//! and how a job is put back), [`stuck`] (stuck jobs, with what the fleet
//! knows of the workers as conditions) and [`candidates`] (the look before
//! it), [`workers`] (the dead-worker rule), [`params`] (the values a
//! statement is given),
//! [`mod@leadership`] (the election's lock), [`lease`] (its lease, where
//! the opt-in table exists), [`health`] (the counts),
//! [`columns`] (the schema probes), [`mod@diagnose`] (the operator's snapshot),
//! [`dashboard`] (the dashboard's read and a person's actions).

pub mod candidates;
pub mod columns;
pub mod dashboard;
pub mod diagnose;
mod fleet_conditions;
pub mod health;
pub mod leadership;
pub mod lease;
pub mod params;
pub mod stage;
pub mod stuck;
pub mod workers;

use std::time::Duration;

pub use candidates::{CANDIDATES, may_be_stuck_condition, stuck_candidates, stuck_candidates_sql};
pub use columns::{
    ColumnType, Columns, OPTIONAL_COLUMNS, can_write, probe_columns, probe_columns_sql,
    schema_columns,
};
pub use diagnose::{Diagnosis, StatusCount, WorkerRow, diagnose};
pub use health::{
    HealthCounts, HealthProbe, PassListed, health_counts, health_counts_and_look,
    health_counts_sql, health_probe, health_probe_sql,
};
pub use leadership::{LEADER_LOCK, Leadership, leadership, leadership_sql, session_pid};
pub use lease::{LEASE_TABLE, Lease, Probed, claim_lease, claim_lease_sql, probe_schema};
pub use stage::{
    AttemptColumns, DEFAULT_MAX_ATTEMPTS, OCR, OCR_RESET_MESSAGE, PROCESSING, ReleasedJob,
    STUCK_FAILED_MESSAGE, STUCK_RESET_MESSAGE, Stage,
};
pub use stuck::{
    LiveGrace, OcrRule, StuckResets, StuckRules, find_stuck_jobs, reset_stuck, reset_stuck_ids,
    reset_stuck_jobs, reset_stuck_sql,
};
pub use workers::{
    BATCH, Released, holders_without_live_row, mark_offline, read_workers, release_jobs_of,
    release_listed,
};

/// A duration as an SQL interval literal, in whole milliseconds.
pub(crate) fn interval(d: Duration) -> String {
    format!("interval '{} milliseconds'", d.as_millis())
}

/// A string as an SQL literal that reads the same whatever
/// `standard_conforming_strings` says.
pub fn literal(s: &str) -> String {
    format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_escapes_quotes_and_backslashes() {
        assert_eq!(literal("worker-1"), "E'worker-1'");
        assert_eq!(literal(r"a'b\c"), r"E'a''b\\c'");
    }

    #[test]
    fn interval_is_whole_milliseconds() {
        assert_eq!(
            interval(Duration::from_millis(1500)),
            "interval '1500 milliseconds'"
        );
    }
}
