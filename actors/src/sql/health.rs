//! The health check's statements (the `HealthReporter`): the exact counts,
//! and the bounded probes which read only what the anomaly decisions need
//! (sent between exact counts where the open-status index exists).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::params::Params;
use super::{BATCH, CANDIDATES, PROCESSING, interval};
use crate::database::{Database, DbError};

/// Outcome of [`health_counts`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCounts {
    pub active_workers: u64,
    pub pending_jobs: u64,
    pub processing_jobs: u64,
    pub error_jobs: u64,
}

/// Active workers (not offline, heartbeat within `dead_after`) and the
/// exact pending, processing and failed job counts (see
/// [`health_counts_sql`] for `indexed`).
pub async fn health_counts(
    db: &Database,
    dead_after: Duration,
    indexed: bool,
) -> Result<HealthCounts, DbError> {
    db.query_json_prepared(&health_counts_sql(dead_after, indexed))
        .await
}

/// What [`health_counts_and_look`] found besides the counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PassListed {
    /// The jobs that may be stuck, at most [`CANDIDATES`].
    pub stuck_candidates: Vec<String>,
    /// The processing jobs of the workers asked about, at most [`BATCH`] + 1.
    pub held: Vec<String>,
}

/// [`health_counts`] without the open-status index, in the same pass over
/// the table: the ids of the rows that meet `may_be_stuck` (the stuck
/// rule's look, [`may_be_stuck_condition`](super::may_be_stuck_condition)),
/// at most [`CANDIDATES`], and those of the processing jobs that the
/// `owed` workers (found dead) hold, at most [`BATCH`] + 1.
pub async fn health_counts_and_look(
    db: &Database,
    dead_after: Duration,
    may_be_stuck: &str,
    owed: &[String],
) -> Result<(HealthCounts, PassListed), DbError> {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(flatten)]
        counts: HealthCounts,
        #[serde(flatten)]
        listed: PassListed,
    }
    let mut params = Params::default();
    let sql = format!(
        "SELECT json_build_object(
            'activeWorkers', {workers},
            'pendingJobs', count(*) FILTER (WHERE status_id = 1),
            'processingJobs', count(*) FILTER (WHERE status_id = 2),
            'errorJobs', count(*) FILTER (WHERE status_id = 4),
            'stuckCandidates', coalesce(
                (array_agg(id::text) FILTER (WHERE {may_be_stuck}))[1:{CANDIDATES}], '{{}}'),
            'held', coalesce(
                (array_agg(id::text) FILTER (WHERE status_id = {processing} AND worker_id IN {owed}))[1:{held}],
                '{{}}'))
        FROM extraction_queue
        WHERE status_id IN (1, 2, 4, 6)",
        workers = active_workers(dead_after),
        processing = PROCESSING.status,
        owed = params.text_set(owed),
        held = BATCH + 1,
    );
    let answer: Answer = db.query_json_prepared_with(&sql, params.values()).await?;
    Ok((answer.counts, answer.listed))
}

/// Counts the workers with a heartbeat within `dead_after`.
fn active_workers(dead_after: Duration) -> String {
    format!(
        "(SELECT count(*) FROM worker_status
          WHERE status IS DISTINCT FROM 'offline' AND last_heartbeat >= now() - {})",
        interval(dead_after)
    )
}

/// The text [`health_counts`] sends (after its `SET LOCAL`). With the
/// open-status index of `sql/indexes.sql` (`indexed`): three counts, each a
/// range of the index, cheaper than one `FILTER` scan of all three.
/// Without it: one pass over the table with a `FILTER` per status (a
/// read-only aggregate, which parallel workers may share).
pub fn health_counts_sql(dead_after: Duration, indexed: bool) -> String {
    if !indexed {
        return format!(
            "SELECT json_build_object(
            'activeWorkers', {workers},
            'pendingJobs', count(*) FILTER (WHERE status_id = 1),
            'processingJobs', count(*) FILTER (WHERE status_id = 2),
            'errorJobs', count(*) FILTER (WHERE status_id = 4))
        FROM extraction_queue
        WHERE status_id IN (1, 2, 4)",
            workers = active_workers(dead_after),
        );
    }
    format!(
        "SELECT json_build_object(
            'activeWorkers', {workers},
            'pendingJobs', (SELECT count(*) FROM extraction_queue WHERE status_id = 1),
            'processingJobs', (SELECT count(*) FROM extraction_queue WHERE status_id = 2),
            'errorJobs', (SELECT count(*) FROM extraction_queue WHERE status_id = 4))",
        workers = active_workers(dead_after),
    )
}

/// Outcome of [`health_probe`]: enough to decide every anomaly, not more.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthProbe {
    /// Exact, as in [`HealthCounts`] (the worker table is small).
    pub active_workers: u64,
    /// Whether any job waits.
    pub pending: bool,
    /// Processing jobs, counted up to `processing_cap` at most.
    pub processing: u64,
    /// Failed jobs, counted up to `failed_cap` at most.
    pub errors: u64,
}

/// The text of [`health_probe`].
pub fn health_probe_sql(
    dead_after: Duration,
    processing_cap: u64,
    failed_cap: u64,
    look: Option<&str>,
) -> String {
    let capped = |status: u32, cap: u64| {
        format!(
            "(SELECT count(*) FROM (SELECT 1 FROM extraction_queue WHERE status_id = {status} LIMIT {cap}) c)"
        )
    };
    format!(
        "SELECT json_build_object(
            'activeWorkers', {workers},
            'pending', EXISTS (SELECT 1 FROM extraction_queue WHERE status_id = 1),
            'processing', {processing},
            'errors', {errors}{stuck})",
        workers = active_workers(dead_after),
        processing = capped(2, processing_cap),
        errors = capped(4, failed_cap),
        stuck = look.map_or_else(String::new, |q| format!(
            ",\n            'stuckCandidates', ({q})"
        )),
    )
}

/// Whether jobs wait, and the processing and failed jobs counted up to a
/// bound each: a count that reaches its cap means "at least the cap". With
/// `look` (the stuck rule's, a
/// [`stuck_candidates_sql`](super::stuck_candidates_sql) with the
/// indexes), the jobs that may be stuck too.
pub async fn health_probe(
    db: &Database,
    dead_after: Duration,
    (processing_cap, failed_cap): (u64, u64),
    look: Option<&str>,
) -> Result<(HealthProbe, Option<Vec<String>>), DbError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Answer {
        #[serde(flatten)]
        probe: HealthProbe,
        stuck_candidates: Option<Vec<String>>,
    }
    let sql = health_probe_sql(dead_after, processing_cap, failed_cap, look);
    let answer: Answer = db.query_json_prepared(&sql).await?;
    Ok((answer.probe, answer.stuck_candidates))
}
