//! The dashboard's own statements: one read, and the actions a person takes.
//!
//! Like every statement in [`crate::sql`], each goes through [`Database`]
//! (one simple-protocol request, `SET LOCAL statement_timeout` first),
//! compares against the database's `now()`, and returns one JSON value.
//!
//! - [`live_read`]: what the checks do not already read (the workers list,
//!   the jobs processing for long, failed jobs grouped by `error_message`),
//!   each part bounded by a `LIMIT`. The dashboard sends it only while
//!   someone is looking, at most once per refresh interval per project.
//! - [`retry_failed_job`], [`retry_failed_group`], [`reset_processing_job`],
//!   [`mark_worker_offline`]: one atomic statement each, guarded so that it
//!   changes only rows still in the state the person saw (the same
//!   `updated_at`, `processing_started_at` or `last_heartbeat`): a row that
//!   moved on since the page showed it is left alone, and the answer says
//!   how many rows changed.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::database::{Database, DbError};
use crate::identifier::Identifier;
use crate::sql::{PROCESSING, literal, stage::seconds_since};

/// Workers listed (all those not offline first, trouble first; then the
/// ones gone offline in the last hour).
pub const WORKERS_LIMIT: u32 = 100;
/// Jobs processing for long listed, oldest first.
pub const LONG_JOBS_LIMIT: u32 = 50;
/// Groups of failed jobs listed, biggest first.
pub const FAILED_GROUPS_LIMIT: u32 = 20;
/// Most recent jobs shown in each group (each can be retried alone).
pub const JOBS_PER_GROUP: u32 = 3;
/// An `error_message` is shown up to this many characters.
pub const MESSAGE_MAX_CHARS: u32 = 500;
/// Jobs named in an action's answer (the count covers them all).
pub const ACTION_JOBS_LISTED: u32 = 10;
/// An offline worker stays in the list for this long after its last heartbeat.
pub const OFFLINE_LISTED_FOR: Duration = Duration::from_secs(3600);

/// What a job's group key is: the md5 of its `error_message`, or `null`.
/// A key rather than the message itself: messages can be long (stack
/// traces), and the key identifies the group exactly.
const GROUP_KEY: &str = "CASE WHEN error_message IS NULL THEN 'null' ELSE md5(error_message) END";

fn interval(d: Duration) -> String {
    format!("interval '{} milliseconds'", d.as_millis())
}

/// Thresholds the read judges by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judging {
    /// Heartbeat older than this: dead (the reaper takes it at its next run).
    pub dead_after: Duration,
    /// Heartbeat older than this (and not dead): stale.
    pub stale_after: Duration,
    /// Processing for longer than this: listed as long-processing.
    pub long_after: Duration,
    /// Processing for longer than this: stuck (the resetter's threshold).
    pub stuck_after: Duration,
}

/// Workers by health, over the whole `worker_status` table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerCounts {
    pub alive: u64,
    pub stale: u64,
    pub dead: u64,
    pub offline: u64,
}

/// A worker as the dashboard lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveWorker {
    pub id: String,
    pub status: Option<String>,
    /// `alive`, `stale`, `dead` (not yet marked offline) or `offline`.
    pub health: String,
    pub heartbeat_age_seconds: Option<i64>,
    /// Exactly as stored, the guard of "mark offline".
    pub last_heartbeat: Option<String>,
    pub current_job: Option<String>,
    pub jobs_completed: Option<i64>,
    pub jobs_failed: Option<i64>,
}

/// A job processing for long.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LongJob {
    pub id: String,
    pub worker: Option<String>,
    pub doc: String,
    pub seconds: i64,
    /// Exactly as stored, the guard of "reset now" (with the worker).
    pub started_at: Option<String>,
    /// Past the stuck threshold: the resetter takes it at its next run.
    pub stuck: bool,
}

/// A failed job shown in its group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedJob {
    pub id: String,
    pub doc: String,
    /// Exactly as stored, the guard of "retry".
    pub updated_at: String,
}

/// Failed jobs that share an `error_message`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedGroup {
    /// md5 of the message, or `null` (see [`GROUP_KEY`]).
    pub key: String,
    /// The message, cut at [`MESSAGE_MAX_CHARS`].
    pub message: Option<String>,
    pub count: u64,
    pub first_seen: String,
    /// Seconds since the first and the last failure (database clock).
    pub first_seen_ago: i64,
    pub last_seen_ago: i64,
    /// Exactly as stored: retrying the group retries the jobs failed up to
    /// this moment, not those that failed after the page was drawn.
    pub last_seen: String,
    /// The most recent ones; the first is the sample document.
    pub jobs: Vec<FailedJob>,
}

/// Outcome of [`live_read`]: one snapshot of a project.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveRead {
    /// The database's clock.
    pub now: String,
    pub worker_counts: WorkerCounts,
    pub workers: Vec<LiveWorker>,
    pub long_jobs: Vec<LongJob>,
    pub long_jobs_count: u64,
    pub failed_groups: Vec<FailedGroup>,
    pub failed_groups_count: u64,
    pub failed_total: u64,
}

/// The text of [`live_read`].
pub fn live_read_sql(j: &Judging) -> String {
    let health = format!(
        "CASE WHEN status = 'offline' THEN 'offline'
              WHEN last_heartbeat IS NULL OR last_heartbeat < now() - {dead} THEN 'dead'
              WHEN last_heartbeat < now() - {stale} THEN 'stale'
              ELSE 'alive' END",
        dead = interval(j.dead_after),
        stale = interval(j.stale_after),
    );
    let long = format!(
        "status_id = 2 AND coalesce(processing_started_at, updated_at) < now() - {}",
        interval(j.long_after)
    );
    format!(
        "WITH w AS (
            SELECT worker_id, status, current_job_id, last_heartbeat, jobs_completed, jobs_failed,
                   {age} AS age,
                   {health} AS health
            FROM worker_status
        ), ranked AS (
            SELECT *, CASE health WHEN 'dead' THEN 0 WHEN 'stale' THEN 1
                                  WHEN 'alive' THEN CASE WHEN status = 'error' THEN 2 ELSE 3 END
                                  ELSE 4 END AS rank
            FROM w
            WHERE health <> 'offline' OR last_heartbeat >= now() - {offline_listed}
            ORDER BY rank, CASE WHEN health = 'offline' THEN age ELSE -age END NULLS FIRST, worker_id
            LIMIT {WORKERS_LIMIT}
        ), long_jobs AS (
            SELECT id, worker_id, document_source, document_number, processing_started_at,
                   {seconds} AS seconds
            FROM extraction_queue
            WHERE {long}
            ORDER BY coalesce(processing_started_at, updated_at), id
            LIMIT {LONG_JOBS_LIMIT}
        ), failed AS (
            SELECT id, document_source, document_number, updated_at, error_message,
                   {GROUP_KEY} AS key,
                   row_number() OVER (PARTITION BY error_message ORDER BY updated_at DESC, id) AS rn,
                   count(*) OVER (PARTITION BY error_message) AS n,
                   min(updated_at) OVER (PARTITION BY error_message) AS first_seen,
                   max(updated_at) OVER (PARTITION BY error_message) AS last_seen
            FROM extraction_queue
            WHERE status_id = 4
        ), groups AS (
            SELECT key, left(min(error_message), {MESSAGE_MAX_CHARS}) AS message, n, first_seen, last_seen,
                   json_agg(json_build_object('id', id,
                                              'doc', concat(document_source, ':', document_number),
                                              'updatedAt', updated_at) ORDER BY rn) AS jobs
            FROM failed
            WHERE rn <= {JOBS_PER_GROUP}
            GROUP BY key, n, first_seen, last_seen
            ORDER BY n DESC, last_seen DESC, key
            LIMIT {FAILED_GROUPS_LIMIT}
        )
        SELECT json_build_object(
            'now', now(),
            'workerCounts', (SELECT json_build_object(
                    'alive', count(*) FILTER (WHERE health = 'alive'),
                    'stale', count(*) FILTER (WHERE health = 'stale'),
                    'dead', count(*) FILTER (WHERE health = 'dead'),
                    'offline', count(*) FILTER (WHERE health = 'offline')) FROM w),
            'workers', (SELECT coalesce(json_agg(json_build_object(
                    'id', worker_id, 'status', status, 'health', health,
                    'heartbeatAgeSeconds', age, 'lastHeartbeat', last_heartbeat,
                    'currentJob', current_job_id, 'jobsCompleted', jobs_completed,
                    'jobsFailed', jobs_failed)
                  ORDER BY rank, CASE WHEN health = 'offline' THEN age ELSE -age END NULLS FIRST, worker_id), '[]')
                FROM ranked),
            'longJobs', (SELECT coalesce(json_agg(json_build_object(
                    'id', id, 'worker', worker_id, 'doc', concat(document_source, ':', document_number),
                    'seconds', seconds, 'startedAt', processing_started_at,
                    'stuck', seconds * 1000 >= {stuck_ms})
                  ORDER BY seconds DESC, id), '[]')
                FROM long_jobs),
            'longJobsCount', (SELECT count(*) FROM extraction_queue WHERE {long}),
            'failedGroups', (SELECT coalesce(json_agg(json_build_object(
                    'key', key, 'message', message, 'count', n,
                    'firstSeen', first_seen, 'lastSeen', last_seen, 'jobs', jobs,
                    'firstSeenAgo', coalesce({first_ago}, 0),
                    'lastSeenAgo', coalesce({last_ago}, 0))
                  ORDER BY n DESC, last_seen DESC, key), '[]')
                FROM groups),
            'failedGroupsCount', (SELECT count(DISTINCT key) FROM failed),
            'failedTotal', (SELECT count(*) FROM failed))",
        offline_listed = interval(OFFLINE_LISTED_FOR),
        age = seconds_since("last_heartbeat"),
        seconds = PROCESSING.seconds(""), // as the resetter judges it
        first_ago = seconds_since("first_seen"),
        last_ago = seconds_since("last_seen"),
        stuck_ms = j.stuck_after.as_millis(),
    )
}

/// Workers, long-processing jobs and failed-job groups, in one read-only
/// statement (one snapshot), each part bounded.
pub async fn live_read(db: &Database, judging: &Judging) -> Result<LiveRead, DbError> {
    db.query_json(&live_read_sql(judging)).await
}

/// A job an action changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangedJob {
    pub id: String,
    pub doc: String,
    /// The worker that held it, for a job taken from a worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// How long it had been processing, for a job taken from a worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<i64>,
}

/// What an action changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Changed {
    /// Rows of `extraction_queue` changed.
    pub count: u64,
    /// The first [`ACTION_JOBS_LISTED`] of them.
    pub jobs: Vec<ChangedJob>,
    /// For "mark offline": the worker, when it was still as seen.
    #[serde(default)]
    pub worker: Option<String>,
    /// The database's `now()` when it ran.
    pub now: String,
}

/// The `SET` of a failed job put back in the queue by a person: waiting,
/// attempts from zero (when the column exists), its last error kept after
/// a prefix that says what happened.
fn retry_set(attempts_column: Option<&Identifier>) -> String {
    let attempts = attempts_column.map_or(String::new(), |c| format!("{c} = 0, "));
    format!(
        "status_id = 1, {attempts}worker_id = NULL, processing_started_at = NULL,
         error_message = 'Retried from the dashboard; last error: ' || left(coalesce(error_message, 'none'), {MESSAGE_MAX_CHARS}),
         updated_at = now()"
    )
}

/// The JSON of a [`Changed`] from the `changed` CTE (`id`, `doc`, and
/// maybe `worker` and `seconds`).
fn changed_json(extra: &str) -> String {
    format!(
        "SELECT json_build_object(
            'count', (SELECT count(*) FROM changed),
            'jobs', (SELECT coalesce(json_agg(json_build_object('id', id, 'doc', doc{extra}) ORDER BY id), '[]')
                     FROM (SELECT * FROM changed ORDER BY id LIMIT {ACTION_JOBS_LISTED}) c),
            'now', now()"
    )
}

/// The text of [`retry_failed_job`].
pub fn retry_failed_job_sql(
    id: &str,
    seen_updated_at: &str,
    attempts_column: Option<&Identifier>,
) -> String {
    format!(
        "WITH changed AS (
            UPDATE extraction_queue SET {set}
            WHERE id = {id}::uuid AND status_id = 4 AND updated_at = {seen}::timestamptz
            RETURNING id, concat(document_source, ':', document_number) AS doc
        )
        {json})",
        set = retry_set(attempts_column),
        id = literal(id),
        seen = literal(seen_updated_at),
        json = changed_json(""),
    )
}

/// Puts one failed job back in the queue, attempts from zero, if it is
/// still failed and unchanged since `seen_updated_at`.
pub async fn retry_failed_job(
    db: &Database,
    id: &str,
    seen_updated_at: &str,
    attempts_column: Option<&Identifier>,
) -> Result<Changed, DbError> {
    db.query_json(&retry_failed_job_sql(id, seen_updated_at, attempts_column))
        .await
}

/// The text of [`retry_failed_group`].
pub fn retry_failed_group_sql(
    key: &str,
    last_seen: &str,
    attempts_column: Option<&Identifier>,
) -> String {
    format!(
        "WITH changed AS (
            UPDATE extraction_queue SET {set}
            WHERE status_id = 4 AND {GROUP_KEY} = {key} AND updated_at <= {seen}::timestamptz
            RETURNING id, concat(document_source, ':', document_number) AS doc
        )
        {json})",
        set = retry_set(attempts_column),
        key = literal(key),
        seen = literal(last_seen),
        json = changed_json(""),
    )
}

/// Puts back in the queue, attempts from zero, every job still failed with
/// the group's message (`key`) that failed no later than `last_seen`: jobs
/// failed since the page was drawn are not in what the person saw.
pub async fn retry_failed_group(
    db: &Database,
    key: &str,
    last_seen: &str,
    attempts_column: Option<&Identifier>,
) -> Result<Changed, DbError> {
    db.query_json(&retry_failed_group_sql(key, last_seen, attempts_column))
        .await
}

/// The text of [`reset_processing_job`].
pub fn reset_processing_job_sql(
    id: &str,
    worker: Option<&str>,
    started_at: Option<&str>,
) -> String {
    let worker = worker.map_or("NULL".to_string(), literal);
    let started = started_at.map_or("NULL::timestamptz".to_string(), |s| {
        format!("{}::timestamptz", literal(s))
    });
    format!(
        "WITH target AS (
            SELECT id, worker_id, {seconds} AS seconds
            FROM extraction_queue
            WHERE id = {id}::uuid AND status_id = 2
              AND worker_id IS NOT DISTINCT FROM {worker}
              AND processing_started_at IS NOT DISTINCT FROM {started}
            FOR UPDATE
        ), changed AS (
            UPDATE extraction_queue q
            SET status_id = 1, worker_id = NULL, processing_started_at = NULL,
                error_message = 'Reset from the dashboard - processing for ' || t.seconds || ' s',
                updated_at = now()
            FROM target t
            WHERE q.id = t.id
            RETURNING q.id, concat(q.document_source, ':', q.document_number) AS doc,
                      t.worker_id AS worker, t.seconds
        )
        {json})",
        id = literal(id),
        seconds = PROCESSING.seconds(""), // as the resetter judges it
        json = changed_json(", 'worker', worker, 'seconds', seconds"),
    )
}

/// Puts one processing job back in the queue now, if the same worker still
/// holds it since the same `started_at` (attempts unchanged).
pub async fn reset_processing_job(
    db: &Database,
    id: &str,
    worker: Option<&str>,
    started_at: Option<&str>,
) -> Result<Changed, DbError> {
    db.query_json(&reset_processing_job_sql(id, worker, started_at))
        .await
}

/// The text of [`mark_worker_offline`].
pub fn mark_worker_offline_sql(worker: &str, seen_heartbeat: Option<&str>) -> String {
    let seen = seen_heartbeat.map_or("NULL::timestamptz".to_string(), |s| {
        format!("{}::timestamptz", literal(s))
    });
    format!(
        "WITH gone AS (
            UPDATE worker_status SET status = 'offline', current_job_id = NULL
            WHERE worker_id = {worker} AND status IS DISTINCT FROM 'offline'
              AND last_heartbeat IS NOT DISTINCT FROM {seen}
            RETURNING worker_id
        ), held AS (
            SELECT q.id, q.worker_id, {q_seconds} AS seconds
            FROM extraction_queue q
            WHERE q.status_id = 2 AND q.worker_id IN (SELECT worker_id FROM gone)
            FOR UPDATE
        ), changed AS (
            UPDATE extraction_queue q
            SET status_id = 1, worker_id = NULL, processing_started_at = NULL,
                error_message = 'Released from the dashboard - worker ' || held.worker_id || ' marked offline',
                updated_at = now()
            FROM held
            WHERE q.id = held.id
            RETURNING q.id, concat(q.document_source, ':', q.document_number) AS doc,
                      held.worker_id AS worker, held.seconds
        )
        {json},
            'worker', (SELECT worker_id FROM gone))",
        worker = literal(worker),
        q_seconds = PROCESSING.seconds("q."),
        json = changed_json(", 'worker', worker, 'seconds', seconds"),
    )
}

/// Marks a worker offline and puts every job it holds here back in the
/// queue (attempts unchanged), if its heartbeat is still `seen_heartbeat`:
/// a worker that heartbeated since is alive after all and left alone.
pub async fn mark_worker_offline(
    db: &Database,
    worker: &str,
    seen_heartbeat: Option<&str>,
) -> Result<Changed, DbError> {
    db.query_json(&mark_worker_offline_sql(worker, seen_heartbeat))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

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
