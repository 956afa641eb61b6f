//! The dead-worker rule's statements (the `WorkerReaper`): read the live
//! worker rows, mark the dead ones offline, free the jobs dead workers
//! hold, and find the holders of jobs that have no live row.
//!
//! Liveness itself is judged by the [`Fleet`](crate::fleet::Fleet) from
//! successive reads, not by comparing a worker-written heartbeat with the
//! database's clock; every write here is guarded so that it changes only
//! what is still as judged, skips rows another session holds (they are
//! retried on the next run, never waited for), and handles a bounded batch.

use serde::Deserialize;

use super::params::Params;
use super::stage::{AttemptColumns, PROCESSING, ReleasedJob, released_json};
use crate::database::{Database, DbError};

/// One worker row as read ([`read_workers`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WorkerRow {
    pub id: String,
    /// `last_heartbeat` as epoch seconds, exactly as printed.
    pub hb: Option<String>,
}

/// A read of a project's live worker rows, stamped by its database.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct WorkerRead {
    /// The database's `now()`, epoch seconds.
    pub now: f64,
    pub rows: Vec<WorkerRow>,
}

/// Most workers (or jobs) one statement handles: each finishes well within
/// a statement timeout, and an incident of any size progresses by batches.
pub const BATCH: usize = 1000;

/// Most holders one sweep returns.
pub const MAX_HOLDERS: usize = 10_000;

/// The text of [`read_workers`].
pub fn read_workers_sql() -> String {
    "SELECT json_build_object(
        'now', extract(epoch FROM now()),
        'rows', coalesce((
            SELECT json_agg(json_build_object(
                'id', worker_id, 'hb', extract(epoch FROM last_heartbeat)::text))
            FROM worker_status
            WHERE status IS DISTINCT FROM 'offline' AND worker_id IS NOT NULL), '[]'))"
        .to_string()
}

/// Every worker row not `offline`, with its heartbeat as written, and the
/// database's `now()`.
pub async fn read_workers(db: &Database) -> Result<WorkerRead, DbError> {
    db.query_json_prepared(&read_workers_sql()).await
}

/// The text and parameters of [`mark_offline`].
pub fn mark_offline_sql(judged: &[(String, Option<String>)]) -> (String, Params) {
    let mut params = Params::default();
    let ids = params.array(judged.iter().map(|(id, _)| Some(id.as_str())));
    let heartbeats = params.array(judged.iter().map(|(_, hb)| hb.as_deref()));
    let sql = format!(
        "WITH judged (worker_id, hb) AS (
            SELECT * FROM unnest({ids}::text[], {heartbeats}::text[])
        ), free AS (
            SELECT w.worker_id FROM worker_status w JOIN judged j ON j.worker_id = w.worker_id
            WHERE w.status IS DISTINCT FROM 'offline'
              AND extract(epoch FROM w.last_heartbeat)::text IS NOT DISTINCT FROM j.hb
            FOR UPDATE OF w SKIP LOCKED
        ), marked AS (
            UPDATE worker_status w SET status = 'offline', current_job_id = NULL
            FROM free f WHERE w.worker_id = f.worker_id
            RETURNING w.worker_id
        )
        SELECT coalesce(json_agg(worker_id ORDER BY worker_id), '[]') FROM marked"
    );
    (sql, params)
}

/// Marks `offline` the rows of workers judged dead (at most [`BATCH`]),
/// each only if its heartbeat is still the one it was judged on and no
/// other session holds it. Returns the workers marked.
pub async fn mark_offline(
    db: &Database,
    judged: &[(String, Option<String>)],
) -> Result<Vec<String>, DbError> {
    if judged.is_empty() {
        return Ok(Vec::new());
    }
    let (sql, params) = mark_offline_sql(judged);
    db.write_redoable(&sql, params.values()).await
}

/// Outcome of [`release_jobs_of`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Released {
    /// Jobs put back (or failed, out of attempts).
    pub released: Vec<ReleasedJob>,
    /// Workers of the batch still holding processing jobs (locked by
    /// another session, or beyond this statement's batch).
    pub remaining: Vec<String>,
}

/// The text and parameters of [`release_jobs_of`]; with `among`, only the
/// jobs of those ids are released and counted as still held (by primary
/// key, where the index on the workers' jobs is missing).
pub fn release_jobs_of_sql(
    workers: &[String],
    attempts: Option<&AttemptColumns>,
    among: Option<&[String]>,
) -> (String, Params) {
    let mut params = Params::default();
    let workers = params.text_set(workers);
    let among = among.map_or_else(String::new, |among| {
        format!(" AND q.id = ANY ({})", params.strings(among))
    });
    let message = "'Released by health monitor - worker ' || held.worker_id || ' is dead'";
    let (set, returning) = PROCESSING.put_back(attempts, message);
    let sql = format!(
        "WITH held AS (
            SELECT q.id, q.worker_id, {seconds} AS seconds
            FROM extraction_queue q
            WHERE q.status_id = {status} AND q.worker_id IN {workers}{among}
            ORDER BY q.id
            LIMIT {BATCH}
            FOR UPDATE SKIP LOCKED
        ), released AS (
            UPDATE extraction_queue q
            SET {set}, worker_id = NULL, processing_started_at = NULL, updated_at = now()
            FROM held
            WHERE q.id = held.id
            RETURNING q.id, held.worker_id AS worker, q.document_source, q.document_number, held.seconds{returning}
        ), holding AS (
            SELECT q.worker_id, count(*) AS n
            FROM extraction_queue q
            WHERE q.status_id = {status} AND q.worker_id IN {workers}{among}
            GROUP BY q.worker_id
        )
        SELECT json_build_object(
            'released', (SELECT coalesce(json_agg({released} ORDER BY worker, id), '[]') FROM released),
            'remaining', (SELECT coalesce(json_agg(h.worker_id ORDER BY h.worker_id), '[]') FROM holding h
                          WHERE h.n > (SELECT count(*) FROM released r WHERE r.worker = h.worker_id)))",
        seconds = PROCESSING.seconds("q."),
        status = PROCESSING.status,
        released = released_json(attempts.is_some()),
    );
    (sql, params)
}

/// Puts back in the queue (or fails, out of attempts) the processing jobs
/// of these dead workers (at most [`BATCH`] workers and jobs), skipping
/// jobs another session holds; says which workers still hold some.
/// Without the index on the workers' jobs (`indexed` false), finding them
/// is a pass over the table: it is made read-only first (parallel workers
/// may share it, and nobody died holding a job costs no write), then the
/// write reaches them by primary key.
pub async fn release_jobs_of(
    db: &Database,
    workers: &[String],
    attempts: Option<&AttemptColumns>,
    indexed: bool,
) -> Result<Released, DbError> {
    if workers.is_empty() {
        return Ok(Released::default());
    }
    if indexed {
        let (sql, params) = release_jobs_of_sql(workers, attempts, None);
        return db.write_redoable(&sql, params.values()).await;
    }
    let (sql, params) = held_jobs_sql(workers);
    let held: Vec<String> = db.query_json_prepared_with(&sql, params.values()).await?;
    release_listed(db, workers, attempts, &held).await
}

/// [`release_jobs_of`] without the index on the workers' jobs, when `held`
/// lists them already (at most [`BATCH`] + 1 ids; others' jobs among them
/// are left alone): the write reaches them by primary key.
pub async fn release_listed(
    db: &Database,
    workers: &[String],
    attempts: Option<&AttemptColumns>,
    held: &[String],
) -> Result<Released, DbError> {
    if workers.is_empty() || held.is_empty() {
        return Ok(Released::default());
    }
    let among = &held[..held.len().min(BATCH)];
    let (sql, params) = release_jobs_of_sql(workers, attempts, Some(among));
    let mut r: Released = db.write_redoable(&sql, params.values()).await?;
    if held.len() > BATCH {
        // More jobs than one batch: any of these workers may hold some.
        r.remaining = workers.to_vec();
    }
    Ok(r)
}

/// The ids of the processing jobs `workers` hold, at most [`BATCH`] + 1,
/// read-only.
fn held_jobs_sql(workers: &[String]) -> (String, Params) {
    let mut params = Params::default();
    let sql = format!(
        "SELECT coalesce(json_agg(id::text), '[]') FROM (
            SELECT id FROM extraction_queue
            WHERE status_id = {status} AND worker_id IN {workers}
            LIMIT {limit}) held",
        status = PROCESSING.status,
        workers = params.text_set(workers),
        limit = BATCH + 1,
    );
    (sql, params)
}

/// The text of [`holders_without_live_row`].
pub fn holders_without_live_row_sql() -> String {
    format!(
        "SELECT coalesce(json_agg(worker_id ORDER BY worker_id), '[]') FROM (
            SELECT DISTINCT q.worker_id FROM extraction_queue q
            WHERE q.status_id = {status} AND q.worker_id IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM worker_status w
                              WHERE w.worker_id = q.worker_id AND w.status IS DISTINCT FROM 'offline')
            LIMIT {MAX_HOLDERS}) holders",
        status = PROCESSING.status,
    )
}

/// The workers holding processing jobs here without a live row here
/// (offline, or never registered in this project), at most [`MAX_HOLDERS`].
pub async fn holders_without_live_row(db: &Database) -> Result<Vec<String>, DbError> {
    db.query_json_prepared(&holders_without_live_row_sql())
        .await
}
