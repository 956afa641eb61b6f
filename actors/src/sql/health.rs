//! The health counts' statement (the `HealthReporter`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::interval;
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
