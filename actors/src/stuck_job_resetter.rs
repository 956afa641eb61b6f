//! `StuckJobResetter`: puts jobs stuck in processing back in the queue.
//!
//! A worker that hangs or dies mid-job leaves its job in `En traitement`
//! forever. Every check interval this check runs [`sql::reset_stuck_jobs`]
//! and logs, at WARN, what it reset.

use futures_util::future::LocalBoxFuture;
use serde::Serialize;

use crate::database::{Database, DbError};
use crate::settings::Settings;
use crate::sql::{self, ReleasedJob};
use crate::ticker::{Check, ChildKind, RunContext};

/// The check; it keeps no state between runs.
#[derive(Debug, Default)]
pub struct StuckJobResetter;

/// A job as the logs show it: `{ id: 'c0641b62', worker: 'worker-ac', doc: 'index:12345' }`.
#[derive(Debug, Serialize)]
pub struct JobSummary<'a> {
    pub id: &'a str,
    pub worker: Option<&'a str>,
    pub doc: &'a str,
}

/// The log form of `jobs`: 8-character id prefixes.
pub fn summarize(jobs: &[ReleasedJob]) -> Vec<JobSummary<'_>> {
    jobs.iter()
        .map(|j| JobSummary {
            id: j.id.get(..8).unwrap_or(&j.id),
            worker: j.worker.as_deref(),
            doc: &j.doc,
        })
        .collect()
}

impl Check for StuckJobResetter {
    const KIND: ChildKind = ChildKind::StuckJobResetter;
    type Outcome = Vec<ReleasedJob>;

    fn run_once(
        &mut self,
        db: &Database,
        settings: &Settings,
    ) -> LocalBoxFuture<'static, Result<Self::Outcome, DbError>> {
        let db = db.clone();
        let stuck_after = settings.stuck_job_after;
        Box::pin(async move { sql::reset_stuck_jobs(&db, stuck_after).await })
    }

    fn on_success(&mut self, jobs: Vec<ReleasedJob>, cx: &RunContext<'_>) {
        if jobs.is_empty() {
            return;
        }
        cx.state
            .update(cx.project, |p| p.jobs_reset += jobs.len() as u64);
        log::warn!(
            environment = cx.project,
            count = jobs.len(),
            jobs:serde = summarize(&jobs);
            "🔄 Auto-reset stuck jobs"
        );
    }
}
