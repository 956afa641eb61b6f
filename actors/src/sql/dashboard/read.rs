//! The dashboard's read: what the checks do not already read (the workers
//! list, the jobs processing for long, failed jobs grouped by
//! `error_message`), in one read-only statement, each part bounded by a
//! `LIMIT`, so that a large queue costs the same as a small one.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{GROUP_KEY, MESSAGE_MAX_CHARS, processing_seconds};
use crate::database::{Database, DbError};
use crate::sql::interval;
use crate::sql::stage::seconds_since;

/// Workers listed (all those not offline first, trouble first; then the
/// ones gone offline in the last hour).
pub const WORKERS_LIMIT: u32 = 100;
/// Jobs processing for long listed, oldest first.
pub const LONG_JOBS_LIMIT: u32 = 50;
/// Groups of failed jobs listed, biggest first.
pub const FAILED_GROUPS_LIMIT: u32 = 20;
/// Most recent jobs shown in each group (each can be retried alone).
pub const JOBS_PER_GROUP: u32 = 3;
/// An offline worker stays in the list for this long after its last heartbeat.
pub const OFFLINE_LISTED_FOR: Duration = Duration::from_secs(3600);

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
    /// md5 of the message, or `null` (see [`GROUP_KEY`](super::GROUP_KEY)).
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
        seconds = processing_seconds(),
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
