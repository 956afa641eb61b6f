//! What the actor tree knows of itself and of each project.
//!
//! Shared (behind one mutex, touched a few times per tick) by the checks,
//! which write it, and by whoever reports on the monitor: logs decide from
//! it whether an error is new, `/status` and `/metrics` read it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use crate::alerts::{Alert, AlertCounters, AlertSink};
use crate::database::DbError;
use crate::events::Timeline;
use crate::history::History;
use crate::sql::HealthCounts;
use crate::ticker::ChildKind;

/// One check of one project.
#[derive(Debug, Clone, Default)]
pub struct CheckState {
    /// Runs finished, successful or not.
    pub runs: u64,
    /// Runs that failed.
    pub errors: u64,
    /// Times the check's actor was restarted after dying.
    pub restarts: u64,
    /// When the last run finished, successful or not (monotonic clock).
    pub last_finished: Option<Instant>,
    /// When the last run succeeded (wall clock, for people).
    pub last_success: Option<SystemTime>,
    /// The error of the last run, if it failed.
    pub last_error: Option<DbError>,
    /// Time the last run took.
    pub last_duration: Duration,
    /// Every run's duration, for the `/metrics` histogram.
    pub durations: DurationHistogram,
    /// When the check's actor was last restarted: a restarting child may be
    /// silent for up to the restart backoff without being hung.
    pub last_restart: Option<Instant>,
}

/// Upper bounds, in seconds, of the check-duration histogram's buckets:
/// from a quick local statement to past the default statement timeout.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A Prometheus-style histogram of run durations, kept here (plain numbers,
/// no metrics library in the actor crate) and encoded by `/metrics`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DurationHistogram {
    /// Runs in each bucket of [`DURATION_BUCKETS`] (not cumulative); longer
    /// runs are only in `count`.
    pub buckets: [u64; DURATION_BUCKETS.len()],
    /// Total seconds of all runs.
    pub sum: f64,
    /// Runs observed.
    pub count: u64,
}

impl DurationHistogram {
    pub fn observe(&mut self, took: Duration) {
        let secs = took.as_secs_f64();
        if let Some(i) = DURATION_BUCKETS.iter().position(|upper| secs <= *upper) {
            self.buckets[i] += 1;
        }
        self.sum += secs;
        self.count += 1;
    }
}

/// One project.
#[derive(Debug, Clone, Default)]
pub struct ProjectState {
    /// Whether a statement has ever reached the database.
    pub ever_reached: bool,
    /// Whether the last statement sent reached it (`None` before the first).
    pub reachable: Option<bool>,
    /// Keyed by check name (`StuckJobResetter`, ...).
    pub checks: BTreeMap<&'static str, CheckState>,
    /// The health reporter's last counts.
    pub last_counts: Option<HealthCounts>,
    /// Totals since start, for metrics.
    pub jobs_reset: u64,
    pub workers_reaped: u64,
    pub jobs_released: u64,
    /// Anomalies currently active, by their log message.
    pub anomalies: Vec<String>,
    /// Resets and releases that sent a job to failed (out of attempts).
    pub jobs_failed: u64,
    /// OCR jobs put back to status 3 (or failed).
    pub ocr_jobs_reset: u64,
    /// This instance's role for the project: `acting` or `standby`
    /// (`None` before the first election).
    pub role: Option<String>,
    /// The instance (`hostname:pid`) acting for the project, when known.
    pub acting_instance: Option<String>,
}

/// What a failed run means for the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureNews {
    /// Not seen before in this project: log it at ERROR.
    New,
    /// Same as what is already reported: log it at DEBUG.
    Repeated,
}

/// The whole tree's state; cheap to clone (`Arc`).
#[derive(Debug, Clone, Default)]
pub struct MonitorState {
    inner: Arc<Mutex<BTreeMap<String, ProjectState>>>,
    /// Where alerts go, once set up (none without a webhook).
    alerts: Arc<OnceLock<AlertSink>>,
    /// Counts over time and the timeline, for the dashboard (bounded).
    pub(crate) history: Arc<History>,
    pub(crate) timeline: Arc<Timeline>,
}

impl MonitorState {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, ProjectState>> {
        // A panic while holding the lock leaves plain data behind: keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends alerts to `sink` from now on (once; later calls are ignored).
    pub fn set_alerts(&self, sink: AlertSink) {
        let _ = self.alerts.set(sink);
    }

    /// Hands `alert` to the webhook sender, unless there is none or this
    /// instance stands by for the project (the acting one alerts). Never waits.
    pub fn alert(&self, alert: Alert) {
        let Some(sink) = self.alerts.get() else {
            return;
        };
        let standby = self
            .lock()
            .get(&alert.environment)
            .is_some_and(|p| p.role.as_deref() == Some("standby"));
        if !standby {
            sink.send(alert);
        }
    }

    /// The alert counters (sent, failed, dropped, suppressed), if alerting.
    pub fn alert_counters(&self) -> Option<Arc<AlertCounters>> {
        self.alerts.get().map(|s| s.counters.clone())
    }

    /// Adds a project (idempotent).
    pub fn add_project(&self, project: &str) {
        self.lock().entry(project.to_string()).or_default();
    }

    /// A copy of every project's state.
    pub fn snapshot(&self) -> BTreeMap<String, ProjectState> {
        self.lock().clone()
    }

    /// A copy of one project's state.
    pub fn project(&self, project: &str) -> Option<ProjectState> {
        self.lock().get(project).cloned()
    }

    /// Records a successful run; returns true when this ends a failure of
    /// the project (no check of it is failing any more).
    pub fn run_succeeded(&self, project: &str, check: &'static str, took: Duration) -> bool {
        let mut all = self.lock();
        let p = all.entry(project.to_string()).or_default();
        p.ever_reached = true;
        p.reachable = Some(true);
        let c = p.checks.entry(check).or_default();
        c.runs += 1;
        c.last_finished = Some(Instant::now());
        c.last_success = Some(SystemTime::now());
        c.last_duration = took;
        c.durations.observe(took);
        let was_failing = c.last_error.take().is_some();
        was_failing && p.checks.values().all(|c| c.last_error.is_none())
    }

    /// Records a failed run, and says whether it is news: an error another
    /// check of the same project already reported (a down database fails all
    /// three), that this check reported last time, or a schema problem while
    /// one is already reported, is not.
    pub fn run_failed(
        &self,
        project: &str,
        check: &'static str,
        took: Duration,
        error: &DbError,
    ) -> FailureNews {
        let mut all = self.lock();
        let p = all.entry(project.to_string()).or_default();
        if error.is_connection() {
            p.reachable = Some(false);
        } else {
            p.ever_reached = true;
            p.reachable = Some(true);
        }
        // One broken schema fails several statements, each naming the
        // problem its own way: the first report stands for all of them.
        let known = p.checks.values().any(|c| match &c.last_error {
            Some(DbError::Schema(_)) => matches!(error, DbError::Schema(_)),
            other => other.as_ref() == Some(error),
        });
        let c = p.checks.entry(check).or_default();
        c.runs += 1;
        c.errors += 1;
        c.last_finished = Some(Instant::now());
        c.last_duration = took;
        c.durations.observe(took);
        c.last_error = Some(error.clone());
        if known {
            FailureNews::Repeated
        } else {
            FailureNews::New
        }
    }

    /// Records that a check's actor was restarted.
    pub fn restarted(&self, project: &str, check: &'static str) {
        let mut all = self.lock();
        let p = all.entry(project.to_string()).or_default();
        let c = p.checks.entry(check).or_default();
        c.restarts += 1;
        c.last_restart = Some(Instant::now());
    }

    /// Applies `f` to a project's state (for the checks' own figures).
    pub fn update(&self, project: &str, f: impl FnOnce(&mut ProjectState)) {
        let mut all = self.lock();
        f(all.entry(project.to_string()).or_default());
    }

    /// Active workers in the whole fleet: workers heartbeat in one project
    /// but serve all of them. A project counts with its last known figure;
    /// `None` while some project has not yet had its first health count
    /// tried, so that start-up order cannot make an empty fleet appear. A
    /// project never reached counts as none: it cannot hide an empty fleet
    /// elsewhere for ever.
    pub fn fleet_active_workers(&self) -> Option<u64> {
        self.lock()
            .values()
            .map(|p| match p.last_counts {
                Some(counts) => Some(counts.active_workers),
                None => p
                    .checks
                    .get(ChildKind::HealthReporter.name())
                    .filter(|c| c.runs > 0)
                    .map(|_| 0),
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_is_news_once_per_project() {
        let state = MonitorState::new();
        let down = DbError::Unreachable("connection refused".into());
        let took = Duration::ZERO;
        assert_eq!(state.run_failed("dev", "A", took, &down), FailureNews::New);
        assert_eq!(
            state.run_failed("dev", "B", took, &down),
            FailureNews::Repeated
        );
        assert_eq!(
            state.run_failed("dev", "A", took, &down),
            FailureNews::Repeated
        );
        assert_eq!(state.run_failed("prod", "A", took, &down), FailureNews::New);
        assert!(!state.run_succeeded("dev", "A", took), "B still fails");
        assert!(
            state.run_succeeded("dev", "B", took),
            "last failing check recovered"
        );
        assert_eq!(state.run_failed("dev", "A", took, &down), FailureNews::New);
        let column = DbError::Schema("column a.x does not exist".into());
        let same_column = DbError::Schema("column x does not exist".into());
        assert_eq!(
            state.run_failed("prod", "B", took, &column),
            FailureNews::New
        );
        assert_eq!(
            state.run_failed("prod", "C", took, &same_column),
            FailureNews::Repeated
        );
    }

    #[test]
    fn durations_fall_in_their_buckets() {
        let mut h = DurationHistogram::default();
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_millis(100));
        h.observe(Duration::from_secs(60));
        assert_eq!(h.count, 3);
        assert_eq!(h.buckets[0], 1);
        assert_eq!(h.buckets[4], 1, "100 ms is in the 0.1 s bucket");
        assert_eq!(h.buckets.iter().sum::<u64>(), 2, "60 s is past every bound");
        assert!((h.sum - 60.103).abs() < 1e-9);
    }

    #[test]
    fn fleet_is_unknown_until_every_project_reported() {
        let state = MonitorState::new();
        state.add_project("a");
        state.add_project("b");
        let counts = |n| HealthCounts {
            active_workers: n,
            ..Default::default()
        };
        state.update("a", |p| p.last_counts = Some(counts(0)));
        assert_eq!(state.fleet_active_workers(), None);
        state.update("b", |p| p.last_counts = Some(counts(3)));
        assert_eq!(state.fleet_active_workers(), Some(3));
        state.add_project("down");
        assert_eq!(state.fleet_active_workers(), None);
        let refused = DbError::Unreachable("refused".into());
        state.run_failed(
            "down",
            ChildKind::HealthReporter.name(),
            Duration::ZERO,
            &refused,
        );
        assert_eq!(
            state.fleet_active_workers(),
            Some(3),
            "a down project does not block the fleet figure"
        );
    }
}
