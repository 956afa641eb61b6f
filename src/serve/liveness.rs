//! Is the monitor really working? The one rule `/healthz` and the systemd
//! watchdog share.
//!
//! The actor tree is alive when the Supervisor still runs and every check of
//! every project has finished a run recently. "Recently" is:
//!
//! - three check intervals, plus the longest one run may take (waiting for a
//!   pooled connection, then the statement: twice the connect timeout plus
//!   the statement timeout), so one slow run is not a hang;
//! - plus the backoff cap when the check's last run failed or its actor was
//!   restarted since: a check that keeps failing because the database is
//!   down *is* ticking, only more slowly, and a restarting child is being
//!   healed. A down database shows on `/readyz` and in `/metrics`, not here.
//!
//! Before a check's first run, the time since start-up counts instead.

use std::sync::Arc;
use std::time::{Duration, Instant};

use registre_actors::state::ProjectState;
use registre_actors::{ActorKind, ChildKind, MonitorState, Settings};

/// What the rule needs: the state the checks write, and their settings.
#[derive(Debug, Clone)]
pub struct Liveness {
    pub state: MonitorState,
    pub settings: Arc<Settings>,
    /// When the actor tree was started.
    pub started: Instant,
}

impl Liveness {
    pub fn new(state: MonitorState, settings: Arc<Settings>) -> Self {
        Liveness {
            state,
            settings,
            started: Instant::now(),
        }
    }

    /// How long a healthy check may go without finishing a run.
    pub fn limit(&self) -> Duration {
        let s = &self.settings;
        s.check_interval * 3 + (s.connect_timeout + s.statement_timeout) * 2
    }

    /// How long a failing or restarting check may.
    pub fn limit_when_failing(&self) -> Duration {
        self.limit() + self.settings.backoff_cap()
    }

    /// `Ok` when every check of every project is ticking, else what is not,
    /// one line each (`dev/HealthReporter: no run finished for 12.3 s ...`).
    pub fn check(&self, now: Instant) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        for (name, project) in self.state.snapshot() {
            for kind in ChildKind::ALL {
                if let Some(problem) = self.stale(&project, kind, now) {
                    problems.push(format!("{name}/{}: {problem}", kind.name()));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    fn stale(&self, project: &ProjectState, kind: ChildKind, now: Instant) -> Option<String> {
        let check = project.check(kind);
        let since = check.and_then(|c| c.last_finished).unwrap_or(self.started);
        let environment_restart = project
            .checks
            .get(&ActorKind::Environment)
            .and_then(|c| c.last_restart);
        let failing = check
            .is_some_and(|c| c.last_error.is_some() || c.last_restart.is_some_and(|r| r >= since))
            || environment_restart.is_some_and(|r| r >= since);
        let limit = if failing {
            self.limit_when_failing()
        } else {
            self.limit()
        };
        let silent = now.saturating_duration_since(since);
        (silent > limit).then(|| {
            let what = if check.and_then(|c| c.last_finished).is_some() {
                "no run finished"
            } else {
                "no first run"
            };
            format!(
                "{what} for {:.1} s (limit {:.1} s)",
                silent.as_secs_f64(),
                limit.as_secs_f64()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn liveness() -> Liveness {
        let settings = Settings {
            check_interval: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            statement_timeout: Duration::from_secs(1),
            ..Settings::default()
        };
        let state = MonitorState::new();
        state.add_project("dev");
        Liveness::new(state, Arc::new(settings))
    }

    #[test]
    fn fresh_at_start_then_stale_without_runs() {
        let l = liveness();
        assert_eq!(l.limit(), Duration::from_secs(7));
        assert!(l.check(l.started + Duration::from_secs(6)).is_ok());
        let problems = l.check(l.started + Duration::from_secs(8)).unwrap_err();
        assert_eq!(problems.len(), ChildKind::ALL.len(), "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("dev/StuckJobResetter: no first run"))
        );
    }

    #[test]
    fn a_failing_check_gets_the_backoff_cap() {
        let l = liveness();
        for kind in ChildKind::ALL {
            l.state.run_succeeded("dev", kind, Duration::ZERO);
        }
        let down = registre_actors::DbError::Unreachable("refused".into());
        l.state
            .run_failed("dev", ChildKind::WorkerReaper, Duration::ZERO, &down);
        let now = Instant::now();
        let late = now + l.limit() + Duration::from_secs(1);
        let problems = l.check(late).unwrap_err();
        assert_eq!(
            problems.len(),
            ChildKind::ALL.len() - 1,
            "the failing reaper is allowed: {problems:?}"
        );
        assert!(!problems.iter().any(|p| p.contains("WorkerReaper")));
        let later = now + l.limit_when_failing() + Duration::from_secs(1);
        assert_eq!(l.check(later).unwrap_err().len(), ChildKind::ALL.len());
    }
}
