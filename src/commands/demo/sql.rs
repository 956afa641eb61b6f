//! The statements the monitor never sends: the simulated workers' own
//! (claim, heartbeat, finish, as the real extraction workers send them, so
//! that what the monitor heals is the queue exactly as a real fleet leaves
//! it), the demo's progress figures, and the scratch database's DDL.

use registre_actors::identifier::Identifier;
use registre_actors::sql::literal;
use registre_actors::{Database, DbError};
use serde::Deserialize;

/// A job a worker took ([`claim_job`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimedJob {
    pub id: String,
    /// When the monitor last put this job back in the queue (database clock,
    /// seconds since the epoch), if the job came back that way.
    pub released_at: Option<f64>,
}

/// The time as a worker whose clock is `offset_ms` off writes it (real
/// workers write `last_heartbeat` and `processing_started_at` with their
/// own clocks).
fn worker_clock(offset_ms: i64) -> String {
    if offset_ms == 0 {
        "now()".to_string()
    } else {
        format!("(now() + interval '{offset_ms} milliseconds')")
    }
}

/// Registers a worker: its `worker_status` row, idle, heartbeat now by its
/// clock (an upsert, so a restarted worker can reuse its id).
pub async fn register_worker(db: &Database, worker: &str, offset_ms: i64) -> Result<(), DbError> {
    let sql = format!(
        "WITH up AS (
            INSERT INTO worker_status (worker_id, status, current_job_id, last_heartbeat, started_at)
            VALUES ({me}, 'idle', NULL, {now}, {now})
            ON CONFLICT (worker_id) DO UPDATE
            SET status = 'idle', current_job_id = NULL, last_heartbeat = {now}, started_at = {now}
            RETURNING 1)
         SELECT to_json(count(*)) FROM up",
        me = literal(worker),
        now = worker_clock(offset_ms),
    );
    db.query_json::<i64>(&sql).await.map(drop)
}

/// A worker's heartbeat: its `last_heartbeat` is now by its clock.
/// Returns whether its row exists.
pub async fn heartbeat(db: &Database, worker: &str, offset_ms: i64) -> Result<bool, DbError> {
    let sql = format!(
        "WITH hb AS (UPDATE worker_status SET last_heartbeat = {now} WHERE worker_id = {me} RETURNING 1)
         SELECT to_json(count(*) > 0) FROM hb",
        me = literal(worker),
        now = worker_clock(offset_ms),
    );
    db.query_json(&sql).await
}

/// Takes the oldest waiting job, as the real workers do: a conditional
/// update of the first unlocked waiting row (`FOR UPDATE SKIP LOCKED`, so
/// workers never wait on each other), and marks the worker busy with it.
/// `None` when nothing waits.
pub async fn claim_job(
    db: &Database,
    worker: &str,
    offset_ms: i64,
) -> Result<Option<ClaimedJob>, DbError> {
    let sql = format!(
        "WITH claimed AS (
            UPDATE extraction_queue SET status_id = 2, worker_id = {me}, processing_started_at = {now}
            WHERE id = (SELECT id FROM extraction_queue WHERE status_id = 1
                        ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
              AND status_id = 1
            RETURNING id, error_message, updated_at
        ), busy AS (
            UPDATE worker_status SET status = 'busy', current_job_id = (SELECT id FROM claimed)
            WHERE worker_id = {me} AND EXISTS (SELECT 1 FROM claimed)
        )
        SELECT coalesce((SELECT json_build_object('id', id,
                   'releasedAt', CASE WHEN error_message LIKE '%by health monitor%'
                                      THEN extract(epoch FROM updated_at)::float8 END)
                         FROM claimed), 'null')",
        me = literal(worker),
        now = worker_clock(offset_ms),
    );
    db.query_json(&sql).await
}

/// Finishes a job the worker holds: `Complété` (3) on success; on failure
/// one more attempt counted, and back to waiting (1) or `Erreur` (4) once
/// `max_attempts` is reached. Guarded by `worker_id = me AND status_id = 2`:
/// a job the monitor took back meanwhile is left alone (`None`). Updates the
/// worker's row (idle, its counters).
pub async fn finish_job(
    db: &Database,
    worker: &str,
    job: &str,
    failure: Option<&str>,
    offset_ms: i64,
) -> Result<Option<i32>, DbError> {
    let ok = if failure.is_none() { "true" } else { "false" };
    let error = failure.map_or("NULL".to_string(), literal);
    let sql = format!(
        "WITH target AS (
            SELECT id, CASE WHEN {ok} THEN 3 WHEN attemtps + 1 >= coalesce(max_attempts, 3) THEN 4 ELSE 1 END AS next
            FROM extraction_queue
            WHERE id = {job}::uuid AND worker_id = {me} AND status_id = 2
            FOR UPDATE
        ), done AS (
            UPDATE extraction_queue q
            SET status_id = t.next,
                attemtps = q.attemtps + CASE WHEN {ok} THEN 0 ELSE 1 END,
                worker_id = CASE WHEN t.next = 1 THEN NULL ELSE q.worker_id END,
                processing_started_at = CASE WHEN t.next = 1 THEN NULL ELSE q.processing_started_at END,
                error_message = {error}, updated_at = now()
            FROM target t WHERE q.id = t.id
            RETURNING q.status_id
        ), me AS (
            UPDATE worker_status
            SET status = 'idle', current_job_id = NULL, last_heartbeat = {now},
                jobs_completed = jobs_completed + (SELECT count(*) FROM done WHERE status_id = 3),
                jobs_failed = jobs_failed + (SELECT count(*) FROM done WHERE status_id <> 3)
            WHERE worker_id = {me}
        )
        SELECT coalesce((SELECT to_json(status_id) FROM done), 'null')",
        job = literal(job),
        me = literal(worker),
        now = worker_clock(offset_ms),
    );
    db.query_json(&sql).await
}

/// Adds `count` waiting jobs, documents cycling through the three sources,
/// one microsecond apart so they are taken in order. Returns how many.
pub async fn enqueue_jobs(db: &Database, count: u32) -> Result<i64, DbError> {
    let sql = format!(
        "WITH added AS (
            INSERT INTO extraction_queue (status_id, document_source, document_number, created_at)
            SELECT 1, (ARRAY['acte', 'index', 'plan_cadastraux'])[1 + i % 3], (100000 + i)::text,
                   now() + i * interval '1 microsecond'
            FROM generate_series(1, {count}) AS i
            RETURNING 1)
         SELECT to_json(count(*)) FROM added"
    );
    db.query_json(&sql).await
}

/// The queue by stage, for a progress line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct QueueProgress {
    pub waiting: i64,
    pub processing: i64,
    pub done: i64,
    pub failed: i64,
    pub total: i64,
}

/// Waiting (1), processing (2), done (3) and failed (4) jobs, and all jobs.
pub async fn queue_progress(db: &Database) -> Result<QueueProgress, DbError> {
    db.query_json(
        "SELECT json_build_object(
            'waiting', count(*) FILTER (WHERE status_id = 1),
            'processing', count(*) FILTER (WHERE status_id = 2),
            'done', count(*) FILTER (WHERE status_id = 3),
            'failed', count(*) FILTER (WHERE status_id = 4),
            'total', count(*))
         FROM extraction_queue",
    )
    .await
}

/// The database's clock, in seconds since the epoch.
pub async fn database_now(db: &Database) -> Result<f64, DbError> {
    db.query_json("SELECT to_json(extract(epoch FROM now())::float8)")
        .await
}

// --- Scratch databases ------------------------------------------------------
//
// These run outside a transaction block (`CREATE DATABASE` must), so they go
// through `batch_execute` on a plain client rather than `Database`.

/// Creates the database `name`.
pub async fn create_database(
    client: &tokio_postgres::Client,
    name: &Identifier,
) -> Result<(), DbError> {
    Ok(client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?)
}

/// Drops the database `name`, ending any session still on it.
pub async fn drop_database(
    client: &tokio_postgres::Client,
    name: &Identifier,
) -> Result<(), DbError> {
    Ok(client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?)
}

/// Applies a schema script (several statements, such as `sql/schema.sql`).
pub async fn apply_script(client: &tokio_postgres::Client, script: &str) -> Result<(), DbError> {
    Ok(client.batch_execute(script).await?)
}
