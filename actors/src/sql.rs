//! Every statement the monitor sends, one function each.
//!
//! Each is a single statement (data-modifying CTEs where it both reads and
//! writes), so it is atomic; each compares against the database's `now()`,
//! so the monitor host's clock never matters; each returns one JSON value so
//! a simple-protocol request can carry it. Values are written into the text:
//! durations as whole milliseconds, strings through [`literal`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::database::{Database, DbError};

/// The `error_message` of a job the stuck-job rule put back in the queue.
pub const STUCK_RESET_MESSAGE: &str =
    "Auto-reset by health monitor - exceeded processing time limit";

/// A job put back in the queue, as logged (`id`, `worker`, `doc`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleasedJob {
    /// Full job id (logs show the first 8 characters).
    pub id: String,
    /// The worker that held it.
    pub worker: Option<String>,
    /// `document_source:document_number`.
    pub doc: String,
    /// How long it had been processing, in whole seconds.
    pub seconds: i64,
}

/// Outcome of [`reap_dead_workers`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Reaped {
    /// The database's `now()` when it ran (RFC 3339), passed to other
    /// projects so they free only jobs claimed before the death was seen.
    pub now: String,
    /// Workers newly marked offline, sorted.
    pub dead: Vec<String>,
    /// Jobs released: held by those workers or by the `foreign` ones.
    pub released: Vec<ReleasedJob>,
}

/// A worker found dead in another project, as passed to [`reap_dead_workers`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ForeignDeath {
    pub worker: String,
    /// That project's `now()` when it marked the worker offline.
    pub seen_at: String,
}

/// Outcome of [`health_counts`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCounts {
    pub active_workers: u64,
    pub pending_jobs: u64,
    pub processing_jobs: u64,
    pub error_jobs: u64,
}

/// A duration as an SQL interval literal, in whole milliseconds.
fn interval(d: Duration) -> String {
    format!("interval '{} milliseconds'", d.as_millis())
}

/// A string as an SQL literal that reads the same whatever
/// `standard_conforming_strings` says.
pub fn literal(s: &str) -> String {
    format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// The JSON of a released job, shared by the statements that release jobs.
const RELEASED_JOB_JSON: &str = "json_build_object('id', id, 'worker', worker, \
     'doc', concat(document_source, ':', document_number), 'seconds', seconds)";

/// Puts back in the queue (status 1) every job processing (status 2) for
/// longer than `stuck_after`, judged by `processing_started_at`, or by
/// `updated_at` when that is missing. Clears its worker and start time and
/// says why in `error_message`. Rows another transaction holds are left for
/// the next run rather than waited for.
pub async fn reset_stuck_jobs(
    db: &Database,
    stuck_after: Duration,
) -> Result<Vec<ReleasedJob>, DbError> {
    db.query_json(&reset_stuck_jobs_sql(stuck_after)).await
}

/// The text [`reset_stuck_jobs`] sends (after its `SET LOCAL`), public so
/// the benchmark measures exactly what the monitor runs.
pub fn reset_stuck_jobs_sql(stuck_after: Duration) -> String {
    format!(
        "WITH stuck AS (
            SELECT id, worker_id,
                   floor(extract(epoch FROM now() - coalesce(processing_started_at, updated_at)))::bigint AS seconds
            FROM extraction_queue
            WHERE status_id = 2
              AND coalesce(processing_started_at, updated_at) < now() - {threshold}
            FOR UPDATE SKIP LOCKED
        ), reset AS (
            UPDATE extraction_queue q
            SET status_id = 1, worker_id = NULL, processing_started_at = NULL,
                error_message = {message}, updated_at = now()
            FROM stuck
            WHERE q.id = stuck.id
            RETURNING q.id, stuck.worker_id AS worker, q.document_source, q.document_number, stuck.seconds
        )
        SELECT coalesce(json_agg({RELEASED_JOB_JSON} ORDER BY seconds DESC, id), '[]') FROM reset",
        threshold = interval(stuck_after),
        message = literal(STUCK_RESET_MESSAGE),
    )
}

/// Marks `offline` every worker not already offline whose heartbeat is older
/// than `dead_after`, and releases every processing job those workers hold
/// (not only their `current_job_id`), plus the processing jobs of `foreign`
/// workers (found dead in another project) claimed before their death was
/// seen. A worker already offline is never returned again.
pub async fn reap_dead_workers(
    db: &Database,
    dead_after: Duration,
    foreign: &[ForeignDeath],
) -> Result<Reaped, DbError> {
    db.query_json(&reap_dead_workers_sql(dead_after, foreign))
        .await
}

/// The text [`reap_dead_workers`] sends (after its `SET LOCAL`).
pub fn reap_dead_workers_sql(dead_after: Duration, foreign: &[ForeignDeath]) -> String {
    let foreign_rows = if foreign.is_empty() {
        "SELECT NULL::text, NULL::timestamptz WHERE false".to_string()
    } else {
        let rows: Vec<String> = foreign
            .iter()
            .map(|f| {
                format!(
                    "({}, {}::timestamptz)",
                    literal(&f.worker),
                    literal(&f.seen_at)
                )
            })
            .collect();
        format!("VALUES {}", rows.join(", "))
    };
    format!(
        "WITH dead AS (
            UPDATE worker_status
            SET status = 'offline', current_job_id = NULL
            WHERE status IS DISTINCT FROM 'offline'
              AND coalesce(last_heartbeat, '-infinity') < now() - {threshold}
            RETURNING worker_id
        ), foreign_dead (worker_id, seen_at) AS (
            {foreign_rows}
        ), suspects AS (
            SELECT array(SELECT worker_id FROM dead UNION SELECT worker_id FROM foreign_dead) AS ids
        ), held AS (
            SELECT q.id, q.worker_id,
                   floor(extract(epoch FROM now() - coalesce(q.processing_started_at, q.updated_at)))::bigint AS seconds
            FROM extraction_queue q
            WHERE q.status_id = 2
              -- Implied by the condition below; there so that no queue row
              -- is read when nobody died (a one-time filter), and only the
              -- suspects' jobs when someone did (an index condition).
              AND (SELECT cardinality(ids) FROM suspects) > 0
              AND q.worker_id = ANY ((SELECT ids FROM suspects)::text[])
              AND (q.worker_id IN (SELECT worker_id FROM dead)
                   OR EXISTS (SELECT 1 FROM foreign_dead f
                              WHERE f.worker_id = q.worker_id
                                AND coalesce(q.processing_started_at, q.updated_at) <= f.seen_at))
            FOR UPDATE SKIP LOCKED
        ), released AS (
            UPDATE extraction_queue q
            SET status_id = 1, worker_id = NULL, processing_started_at = NULL,
                error_message = 'Released by health monitor - worker ' || held.worker_id || ' is dead',
                updated_at = now()
            FROM held
            WHERE q.id = held.id
            RETURNING q.id, held.worker_id AS worker, q.document_source, q.document_number, held.seconds
        )
        SELECT json_build_object(
            'now', now(),
            'dead', (SELECT coalesce(json_agg(worker_id ORDER BY worker_id), '[]') FROM dead),
            'released', (SELECT coalesce(json_agg({RELEASED_JOB_JSON} ORDER BY worker, id), '[]') FROM released))",
        threshold = interval(dead_after),
    )
}

/// Active workers (not offline, heartbeat within `dead_after`) and the
/// pending, processing and failed job counts, in one statement that reads
/// only the rows of those three statuses.
pub async fn health_counts(db: &Database, dead_after: Duration) -> Result<HealthCounts, DbError> {
    db.query_json(&health_counts_sql(dead_after)).await
}

/// The text [`health_counts`] sends (after its `SET LOCAL`).
pub fn health_counts_sql(dead_after: Duration) -> String {
    format!(
        "SELECT json_build_object(
            'activeWorkers', (SELECT count(*) FROM worker_status
                              WHERE status IS DISTINCT FROM 'offline'
                                AND last_heartbeat >= now() - {threshold}),
            'pendingJobs', count(*) FILTER (WHERE status_id = 1),
            'processingJobs', count(*) FILTER (WHERE status_id = 2),
            'errorJobs', count(*) FILTER (WHERE status_id = 4))
        FROM extraction_queue
        WHERE status_id IN (1, 2, 4)",
        threshold = interval(dead_after),
    )
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
