//! `registre-monitor diagnose`'s statement: one read-only snapshot of a
//! project, for an operator (it counts the whole queue).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::stage::{ReleasedJob, released_json, seconds_since};
use super::stuck::stuck_rows;
use super::{interval, literal};
use crate::database::{Database, DbError};

/// A worker as `diagnose` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerRow {
    pub id: String,
    pub status: Option<String>,
    /// Whole seconds since its last heartbeat (`None`: never).
    pub heartbeat_age_seconds: Option<i64>,
    pub current_job: Option<String>,
    pub jobs_completed: Option<i64>,
    pub jobs_failed: Option<i64>,
    /// Not offline and heartbeat within the dead threshold (as the reaper
    /// and the health counts judge it).
    pub alive: bool,
}

/// How many jobs have one status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusCount {
    /// `None` for jobs whose `status_id` is null (a schema without the
    /// `NOT NULL` of `sql/schema.sql`).
    pub status_id: Option<i32>,
    /// From `extraction_status`; `None` for an id the lookup lacks.
    pub name: Option<String>,
    pub count: i64,
}

/// Outcome of [`diagnose`]: one consistent snapshot of a project.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnosis {
    /// Every worker, by id.
    pub workers: Vec<WorkerRow>,
    /// Every status of `extraction_status` (zero counts included) and any
    /// other status a job has, by id.
    pub jobs: Vec<StatusCount>,
    /// Jobs stuck by the resetter's own condition, longest first.
    pub stuck_jobs: Vec<ReleasedJob>,
    /// Which of the asked index names exist in the current schema.
    pub present_indexes: Vec<String>,
}

/// Workers, job counts by status, stuck jobs and which of `index_names`
/// exist, in one read-only statement (one snapshot). Counting reads the
/// whole queue: meant for an operator's command, not for a periodic check.
pub async fn diagnose(
    db: &Database,
    stuck_after: Duration,
    dead_after: Duration,
    index_names: &[&str],
) -> Result<Diagnosis, DbError> {
    let names = if index_names.is_empty() {
        "NULL".to_string()
    } else {
        index_names
            .iter()
            .map(|n| literal(n))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let sql = format!(
        "SELECT json_build_object(
            'workers', (SELECT coalesce(json_agg(json_build_object(
                    'id', worker_id, 'status', status,
                    'heartbeatAgeSeconds', {heartbeat_age},
                    'currentJob', current_job_id, 'jobsCompleted', jobs_completed, 'jobsFailed', jobs_failed,
                    'alive', status IS DISTINCT FROM 'offline' AND coalesce(last_heartbeat >= now() - {dead}, false))
                  ORDER BY worker_id), '[]') FROM worker_status),
            'jobs', (SELECT coalesce(json_agg(json_build_object('statusId', coalesce(s.id, c.status_id), 'name', s.name,
                                                               'count', coalesce(c.n, 0))
                                             ORDER BY coalesce(s.id, c.status_id) NULLS LAST), '[]')
                     FROM extraction_status s
                     FULL JOIN (SELECT status_id, count(*) AS n FROM extraction_queue GROUP BY status_id) c
                       ON c.status_id = s.id),
            'stuckJobs', (SELECT coalesce(json_agg({stuck_json} ORDER BY seconds DESC, id), '[]')
                          FROM {stuck}),
            'presentIndexes', (SELECT coalesce(json_agg(indexname::text ORDER BY indexname), '[]') FROM pg_indexes
                               WHERE schemaname = current_schema() AND indexname IN ({names})))",
        dead = interval(dead_after),
        heartbeat_age = seconds_since("last_heartbeat"),
        stuck_json = released_json(false),
        stuck = stuck_rows(stuck_after),
    );
    db.query_json(&sql).await
}
