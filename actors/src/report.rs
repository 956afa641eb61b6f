//! How jobs put back by a check are reported: the short form the logs
//! show, and the alert for a batch of them.

use serde::Serialize;

use crate::alerts::Alert;
use crate::check::Reporting;
use crate::sql::ReleasedJob;

/// A job as the logs show it: `{"id": "c0641b62-…", "worker": "worker-ac",
/// "doc": "index:12345"}`, with the whole id, so that a log line and
/// `diagnose` (or the table) can be matched by search.
#[derive(Debug, Serialize)]
pub struct JobSummary<'a> {
    pub id: &'a str,
    pub worker: Option<&'a str>,
    pub doc: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i64>,
}

/// The log form of `jobs`.
pub fn summarize(jobs: &[ReleasedJob]) -> Vec<JobSummary<'_>> {
    jobs.iter()
        .map(|j| JobSummary {
            id: &j.id,
            worker: j.worker.as_deref(),
            doc: &j.doc,
            attempts: j.attempts,
        })
        .collect()
}

/// At most this many items of a batch are named in a log line, an event
/// or an alert; the count says how many there were.
pub const SAMPLE: usize = 20;

/// The first [`SAMPLE`] of `items`.
pub fn sample<T>(items: &[T]) -> &[T] {
    &items[..items.len().min(SAMPLE)]
}

/// Alerts about a batch of jobs, when it is big enough.
pub fn alert_batch(to: &Reporting<'_>, kind: &'static str, message: &str, jobs: &[ReleasedJob]) {
    if (jobs.len() as u64) < to.settings.alert_min_resets {
        return;
    }
    let text = format!("[{}] {message}: {}", to.project, jobs.len());
    let summary = serde_json::to_value(summarize(sample(jobs))).unwrap_or_default();
    to.state.alert(
        Alert::new(to.project, kind, text)
            .field("count", jobs.len())
            .field("jobs", summary),
    );
}
