//! The dashboard's own statements: one read, and the actions a person takes.
//!
//! Like every statement in [`crate::sql`], each goes through
//! [`Database`](crate::Database) (one simple-protocol request,
//! `SET LOCAL statement_timeout` first), compares against the database's
//! `now()`, and returns one JSON value.
//!
//! - [`read`]: [`live_read`], what the checks do not already read, each part
//!   bounded. The dashboard sends it only while someone is looking, at most
//!   once per refresh interval per project.
//! - [`actions`]: [`retry_failed_job`], [`retry_failed_group`],
//!   [`reset_processing_job`], [`mark_worker_offline`], each changing only
//!   rows still as the person saw them.

pub mod actions;
pub mod read;

pub use actions::{
    ACTION_JOBS_LISTED, Changed, ChangedJob, mark_worker_offline, mark_worker_offline_sql,
    reset_processing_job, reset_processing_job_sql, retry_failed_group, retry_failed_group_sql,
    retry_failed_job, retry_failed_job_sql,
};
pub use read::{
    FAILED_GROUPS_LIMIT, FailedGroup, FailedJob, JOBS_PER_GROUP, Judging, LONG_JOBS_LIMIT,
    LiveRead, LiveWorker, LongJob, OFFLINE_LISTED_FOR, WORKERS_LIMIT, WorkerCounts, live_read,
    live_read_sql,
};

/// An `error_message` is shown up to this many characters.
pub const MESSAGE_MAX_CHARS: u32 = 500;

/// What a job's group key is: the md5 of its `error_message`, or `null`.
/// A key rather than the message itself: messages can be long (stack
/// traces), and the key identifies the group exactly.
const GROUP_KEY: &str = "CASE WHEN error_message IS NULL THEN 'null' ELSE md5(error_message) END";

/// How long a processing job has been at it, in whole seconds, as
/// `sql::reset_stuck` judges it (clamped: an infinite time is no error).
fn processing_seconds() -> String {
    crate::sql::PROCESSING.seconds("")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::identifier::Identifier;

    #[test]
    fn values_are_quoted_and_limits_present() {
        let attempts = Identifier::from_static("attemtps");
        let sql = retry_failed_job_sql("x'; DROP TABLE y; --", "2026-01-01", Some(&attempts));
        assert!(sql.contains("E'x''; DROP TABLE y; --'::uuid"), "{sql}");
        assert!(sql.contains("\"attemtps\" = 0"), "{sql}");
        assert!(!retry_failed_group_sql("k", "t", None).contains("attemtps"));
        let read = live_read_sql(&Judging {
            dead_after: Duration::from_secs(120),
            stale_after: Duration::from_secs(60),
            long_after: Duration::from_secs(90),
            stuck_after: Duration::from_secs(180),
        });
        for limit in [
            format!("LIMIT {WORKERS_LIMIT}"),
            format!("LIMIT {LONG_JOBS_LIMIT}"),
            format!("LIMIT {FAILED_GROUPS_LIMIT}"),
        ] {
            assert!(read.contains(&limit), "{limit}");
        }
        assert!(
            mark_worker_offline_sql("w", None).contains("IS NOT DISTINCT FROM NULL::timestamptz")
        );
    }
}
