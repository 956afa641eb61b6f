//! The actions a person takes from the dashboard: one atomic statement
//! each, guarded so that it changes only rows still in the state the person
//! saw (the same `updated_at`, `processing_started_at` or
//! `last_heartbeat`): a row that moved on since the page showed it is left
//! alone, and the answer ([`Changed`]) says how many rows changed.

use serde::{Deserialize, Serialize};

use super::{GROUP_KEY, MESSAGE_MAX_CHARS, processing_seconds};
use crate::database::{Database, DbError};
use crate::identifier::Identifier;
use crate::sql::literal;

/// Jobs named in an action's answer (the count covers them all).
pub const ACTION_JOBS_LISTED: u32 = 10;

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

/// A moment as the page saw it, as an SQL `timestamptz` (`NULL` when the
/// page saw none, which `IS NOT DISTINCT FROM` then matches).
fn timestamp_or_null(seen: Option<&str>) -> String {
    seen.map_or("NULL::timestamptz".to_string(), |s| {
        format!("{}::timestamptz", literal(s))
    })
}

/// The statement that puts back in the queue the failed jobs `chosen`
/// picks (a condition on `extraction_queue`), as [`retry_set`] says.
fn retry_sql(chosen: &str, attempts_column: Option<&Identifier>) -> String {
    format!(
        "WITH changed AS (
            UPDATE extraction_queue SET {set}
            WHERE {chosen}
            RETURNING id, concat(document_source, ':', document_number) AS doc
        )
        {json})",
        set = retry_set(attempts_column),
        json = changed_json(""),
    )
}

/// The text of [`retry_failed_job`].
pub fn retry_failed_job_sql(
    id: &str,
    seen_updated_at: &str,
    attempts_column: Option<&Identifier>,
) -> String {
    let chosen = format!(
        "id = {}::uuid AND status_id = 4 AND updated_at = {}::timestamptz",
        literal(id),
        literal(seen_updated_at)
    );
    retry_sql(&chosen, attempts_column)
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
    let chosen = format!(
        "status_id = 4 AND {GROUP_KEY} = {} AND updated_at <= {}::timestamptz",
        literal(key),
        literal(last_seen)
    );
    retry_sql(&chosen, attempts_column)
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
    let started = timestamp_or_null(started_at);
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
        seconds = processing_seconds(),
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
    let seen = timestamp_or_null(seen_heartbeat);
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
        q_seconds = crate::sql::PROCESSING.seconds("q."),
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
