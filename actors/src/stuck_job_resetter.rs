//! `StuckJobResetter`: puts jobs stuck in processing back in the queue.
//!
//! A worker that hangs or dies mid-job leaves its job in `En traitement`
//! forever. Every check interval this check runs [`sql::reset_stuck`] and
//! logs, at WARN, what it reset. In the same statement: each reset counts
//! as an attempt (a job out of attempts goes to failed, status 4), a job
//! whose live worker is still on it may get a grace, and OCR jobs stuck in
//! status 6 go back to status 3; each as the project's schema allows
//! ([`Features`]). A standby instance does nothing.

use futures_util::future::LocalBoxFuture;
use serde::Serialize;

use crate::alerts::Alert;
use crate::database::{Database, DbError};
use crate::events::Event;
use crate::features::Features;
use crate::leader::SharedRole;
use crate::settings::Settings;
use crate::sql::{self, ReleasedJob, StuckResets};
use crate::ticker::{Check, ChildKind, RunContext};

/// The check; what it needs outlives it (owned by the `Environment`).
#[derive(Debug)]
pub struct StuckJobResetter {
    features: Features,
    role: SharedRole,
}

impl StuckJobResetter {
    pub fn new(features: Features, role: SharedRole) -> Self {
        StuckJobResetter { features, role }
    }
}
/// A job as the logs show it: `{ id: 'c0641b62', worker: 'worker-ac', doc: 'index:12345' }`.
#[derive(Debug, Serialize)]
pub struct JobSummary<'a> {
    pub id: &'a str,
    pub worker: Option<&'a str>,
    pub doc: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i64>,
}

/// The log form of `jobs`: 8-character id prefixes.
pub fn summarize(jobs: &[ReleasedJob]) -> Vec<JobSummary<'_>> {
    jobs.iter()
        .map(|j| JobSummary {
            id: j.id.get(..8).unwrap_or(&j.id),
            worker: j.worker.as_deref(),
            doc: &j.doc,
            attempts: j.attempts,
        })
        .collect()
}

impl Check for StuckJobResetter {
    const KIND: ChildKind = ChildKind::StuckJobResetter;
    type Outcome = StuckResets;

    fn run_once(
        &mut self,
        db: &Database,
        settings: &Settings,
    ) -> LocalBoxFuture<'static, Result<Self::Outcome, DbError>> {
        let (db, features, settings) = (db.clone(), self.features.clone(), settings.clone());
        let role = self.role.clone();
        Box::pin(async move {
            role.settled(settings.connect_timeout + settings.statement_timeout)
                .await;
            if !role.acting() {
                return Ok(StuckResets::default());
            }
            let rules = features.get(&db, &settings).await?.stuck_rules(&settings);
            let result = sql::reset_stuck(&db, &rules).await;
            if let Err(DbError::Schema(_)) = result {
                features.forget();
            }
            result
        })
    }

    fn on_success(&mut self, resets: StuckResets, cx: &RunContext<'_>) {
        let (failed, requeued): (Vec<_>, Vec<_>) = resets.jobs.into_iter().partition(|j| j.failed);
        let (ocr_failed, ocr_requeued): (Vec<_>, Vec<_>) =
            resets.ocr.into_iter().partition(|j| j.failed);
        if requeued.is_empty()
            && failed.is_empty()
            && ocr_requeued.is_empty()
            && ocr_failed.is_empty()
        {
            return;
        }
        cx.state.update(cx.project, |p| {
            p.jobs_reset += requeued.len() as u64;
            p.jobs_failed += (failed.len() + ocr_failed.len()) as u64;
            p.ocr_jobs_reset += ocr_requeued.len() as u64;
        });
        let batches = [
            (&requeued, "🔄 Auto-reset stuck jobs", "jobs_reset"),
            (
                &failed,
                "☠️  Failed stuck jobs: out of attempts",
                "jobs_failed",
            ),
            (
                &ocr_requeued,
                "🔄 Auto-reset stuck OCR jobs",
                "ocr_jobs_reset",
            ),
            (
                &ocr_failed,
                "☠️  Failed stuck OCR jobs: out of attempts",
                "jobs_failed",
            ),
        ];
        for (jobs, message, kind) in batches {
            if jobs.is_empty() {
                continue;
            }
            log::warn!(
                environment = cx.project,
                count = jobs.len(),
                jobs:serde = summarize(jobs);
                "{message}"
            );
            cx.state
                .event(Event::new(cx.project, kind, message).jobs(jobs));
            alert_batch(cx, kind, message, jobs);
        }
    }
}

/// Alerts about a batch of jobs, when it is big enough.
pub fn alert_batch(cx: &RunContext<'_>, kind: &'static str, message: &str, jobs: &[ReleasedJob]) {
    if (jobs.len() as u64) < cx.settings.alert_min_resets {
        return;
    }
    let text = format!("[{}] {message}: {}", cx.project, jobs.len());
    let summary = serde_json::to_value(summarize(jobs)).unwrap_or_default();
    cx.state.alert(
        Alert::new(cx.project, kind, text)
            .field("count", jobs.len())
            .field("jobs", summary),
    );
}
