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
use crate::fleet::Fleet;
pub use crate::histogram::DURATION_BUCKETS;
use crate::histogram::DurationHistogram;
use crate::history::History;
use crate::kind::{ActorKind, ChildKind};
use crate::role::Role;
use crate::sql::HealthCounts;

/// One actor of one project: a check, or the project's `Environment`
/// (which has only restarts).
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

/// One project.
#[derive(Debug, Clone, Default)]
pub struct ProjectState {
    /// Whether a statement has ever reached the database.
    pub ever_reached: bool,
    /// Whether the last statement sent reached it (`None` before the first).
    pub reachable: Option<bool>,
    /// Each check's figures, and the `Environment`'s restarts.
    pub checks: BTreeMap<ActorKind, CheckState>,
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
    /// Workers found with a skewed clock (each once).
    pub skewed_workers: u64,
    /// OCR jobs put back to status 3 (or failed).
    pub ocr_jobs_reset: u64,
    /// This instance's role for the project (written by the election only).
    pub role: Role,
    /// The instance (`hostname:pid`) acting for the project, when known.
    pub acting_instance: Option<String>,
    /// Whether an election run has finished since the project's
    /// `Environment` started, decided or not: the checks wait for it.
    pub role_settled: bool,
}

impl ProjectState {
    /// One check's figures, if it ever ran or restarted.
    pub fn check(&self, kind: ChildKind) -> Option<&CheckState> {
        self.checks.get(&ActorKind::Check(kind))
    }

    /// Why the project is not ready, or `None` when it is: ready once its
    /// database has been reached, as long as no check's last run failed for
    /// a reason retrying will not fix ([`DbError::will_not_fix_itself`]: a
    /// missing table, a permission, a read-only database, the credentials).
    /// A database down for a while after that is not "not ready": it is
    /// retried, and shows as unreachable.
    pub fn not_ready(&self) -> Option<String> {
        let lasting = ChildKind::ALL.iter().find_map(|kind| {
            let error = self.check(*kind)?.last_error.as_ref()?;
            error
                .will_not_fix_itself()
                .then(|| format!("{}: {error}", kind.name()))
        });
        if lasting.is_some() {
            return lasting;
        }
        if self.ever_reached {
            return None;
        }
        let last = ChildKind::ALL
            .iter()
            .find_map(|kind| self.check(*kind)?.last_error.as_ref());
        Some(match last {
            Some(error) => format!("not reached yet: {error}"),
            None => "not reached yet".to_string(),
        })
    }
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
    /// Woken when a role is decided or an election run finished
    /// ([`role`](crate::role) reads and writes the role).
    pub(crate) roles: Arc<tokio::sync::Notify>,
    /// Counts over time and the timeline, for the dashboard (bounded).
    pub(crate) history: Arc<History>,
    pub(crate) timeline: Arc<Timeline>,
    /// Which workers are alive, across projects.
    fleet: Arc<Fleet>,
}

impl MonitorState {
    pub fn new() -> Self {
        Self::default()
    }

    /// The workers, as every project's reads saw them.
    pub fn fleet(&self) -> Arc<Fleet> {
        self.fleet.clone()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, BTreeMap<String, ProjectState>> {
        // A panic while holding the lock leaves plain data behind: keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends alerts to `sink` from now on (once; later calls are ignored).
    pub fn set_alerts(&self, sink: AlertSink) {
        let _ = self.alerts.set(sink);
    }

    /// Hands `alert` to the webhook sender, unless there is none or this
    /// instance does not act for the project (another holds the lease).
    /// Anomaly alerts are gated where they are said ([`Role::speaks`]).
    /// Never waits.
    pub fn alert(&self, alert: Alert) {
        let Some(sink) = self.alerts.get() else {
            return;
        };
        let standby = self
            .lock()
            .get(&alert.environment)
            .is_some_and(|p| !p.role.acts());
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
    pub fn run_succeeded(&self, project: &str, check: ChildKind, took: Duration) -> bool {
        let mut all = self.lock();
        let p = all.entry(project.to_string()).or_default();
        p.ever_reached = true;
        p.reachable = Some(true);
        let c = p.checks.entry(check.into()).or_default();
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
    /// of them), that this check reported last time, or a schema problem
    /// while one is already reported, is not.
    pub fn run_failed(
        &self,
        project: &str,
        check: ChildKind,
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
        let c = p.checks.entry(check.into()).or_default();
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

    /// Records that an actor of the project was restarted.
    pub fn restarted(&self, project: &str, actor: ActorKind) {
        let mut all = self.lock();
        let p = all.entry(project.to_string()).or_default();
        let c = p.checks.entry(actor).or_default();
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
                    .check(ChildKind::HealthReporter)
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
        use ChildKind::{HealthReporter as C, StuckJobResetter as A, WorkerReaper as B};
        let state = MonitorState::new();
        let down = DbError::Unreachable("connection refused".into());
        let took = Duration::ZERO;
        assert_eq!(state.run_failed("dev", A, took, &down), FailureNews::New);
        assert_eq!(
            state.run_failed("dev", B, took, &down),
            FailureNews::Repeated
        );
        assert_eq!(
            state.run_failed("dev", A, took, &down),
            FailureNews::Repeated
        );
        assert_eq!(state.run_failed("prod", A, took, &down), FailureNews::New);
        assert!(!state.run_succeeded("dev", A, took), "B still fails");
        assert!(
            state.run_succeeded("dev", B, took),
            "last failing check recovered"
        );
        assert_eq!(state.run_failed("dev", A, took, &down), FailureNews::New);
        let column = DbError::Schema("column a.x does not exist".into());
        let same_column = DbError::Schema("column x does not exist".into());
        assert_eq!(state.run_failed("prod", B, took, &column), FailureNews::New);
        assert_eq!(
            state.run_failed("prod", C, took, &same_column),
            FailureNews::Repeated
        );
    }

    #[test]
    fn a_project_is_ready_once_reached_and_while_nothing_lasting_fails() {
        let state = MonitorState::new();
        state.add_project("dev");
        let p = || state.project("dev").unwrap();
        assert_eq!(p().not_ready().as_deref(), Some("not reached yet"));
        let refused = DbError::Unreachable("refused".into());
        state.run_failed("dev", ChildKind::HealthReporter, Duration::ZERO, &refused);
        assert_eq!(
            p().not_ready().as_deref(),
            Some("not reached yet: database unreachable: refused")
        );
        state.run_succeeded("dev", ChildKind::HealthReporter, Duration::ZERO);
        assert_eq!(p().not_ready(), None);
        state.run_failed("dev", ChildKind::WorkerReaper, Duration::ZERO, &refused);
        assert_eq!(p().not_ready(), None, "a passing outage is retried");
        let read_only = DbError::ReadOnly("cannot execute UPDATE (SQLSTATE 25006)".into());
        state.run_failed(
            "dev",
            ChildKind::StuckJobResetter,
            Duration::ZERO,
            &read_only,
        );
        let why = p().not_ready().unwrap();
        assert!(
            why.starts_with("StuckJobResetter: database is read-only"),
            "{why}"
        );
        state.run_succeeded("dev", ChildKind::StuckJobResetter, Duration::ZERO);
        assert_eq!(p().not_ready(), None);
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
        state.run_failed("down", ChildKind::HealthReporter, Duration::ZERO, &refused);
        assert_eq!(
            state.fleet_active_workers(),
            Some(3),
            "a down project does not block the fleet figure"
        );
    }
}
