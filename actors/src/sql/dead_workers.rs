//! The dead-worker rule's statement (the `WorkerReaper`).

use std::time::Duration;

use serde::Deserialize;

use super::stage::{AttemptColumns, PROCESSING, ReleasedJob, released_json};
use super::{interval, literal};
use crate::database::{Database, DbError};

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

/// Marks `offline` every worker not already offline whose heartbeat is older
/// than `dead_after`, and releases every processing job those workers hold
/// (not only their `current_job_id`), plus the processing jobs of `foreign`
/// workers (found dead in another project) claimed before their death was
/// seen. A worker already offline is never returned again. With `attempts`,
/// each release counts as an attempt: a job that reaches its `max_attempts`
/// (3 when null) goes to failed (status 4) instead of back to the queue.
pub async fn reap_dead_workers(
    db: &Database,
    dead_after: Duration,
    foreign: &[ForeignDeath],
    attempts: Option<&AttemptColumns>,
) -> Result<Reaped, DbError> {
    db.query_json(&reap_dead_workers_sql(dead_after, foreign, attempts))
        .await
}

/// The text of [`reap_dead_workers`].
pub fn reap_dead_workers_sql(
    dead_after: Duration,
    foreign: &[ForeignDeath],
    attempts: Option<&AttemptColumns>,
) -> String {
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
    let message = "'Released by health monitor - worker ' || held.worker_id || ' is dead'";
    let (set, returning) = PROCESSING.put_back(attempts, message);
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
            SELECT q.id, q.worker_id, {seconds} AS seconds
            FROM extraction_queue q
            WHERE q.status_id = {status}
              -- Implied by the condition below; there so that no queue row
              -- is read when nobody died (a one-time filter), and only the
              -- suspects' jobs when someone did (an index condition).
              AND (SELECT cardinality(ids) FROM suspects) > 0
              AND q.worker_id = ANY ((SELECT ids FROM suspects)::text[])
              AND (q.worker_id IN (SELECT worker_id FROM dead)
                   OR EXISTS (SELECT 1 FROM foreign_dead f
                              WHERE f.worker_id = q.worker_id
                                AND {since} <= f.seen_at))
            FOR UPDATE SKIP LOCKED
        ), released AS (
            UPDATE extraction_queue q
            SET {set}, worker_id = NULL, processing_started_at = NULL, updated_at = now()
            FROM held
            WHERE q.id = held.id
            RETURNING q.id, held.worker_id AS worker, q.document_source, q.document_number, held.seconds{returning}
        )
        SELECT json_build_object(
            'now', now(),
            'dead', (SELECT coalesce(json_agg(worker_id ORDER BY worker_id), '[]') FROM dead),
            'released', (SELECT coalesce(json_agg({released} ORDER BY worker, id), '[]') FROM released))",
        threshold = interval(dead_after),
        seconds = PROCESSING.seconds("q."),
        since = PROCESSING.since("q."),
        status = PROCESSING.status,
        released = released_json(attempts.is_some()),
    )
}
