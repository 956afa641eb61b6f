//! One pass over the queue for two checks, where the indexes of
//! `sql/indexes.sql` are missing.
//!
//! Without them the health check's exact counts and the stuck rule's look
//! each read the whole table, every run. One pass serves both: the
//! `HealthReporter`'s count also says whether any job may be stuck (the
//! look's own condition), and the `StuckJobResetter` takes a "none" from a
//! pass of the last interval and a half (the two checks tick apart) instead
//! of reading the table again. A pass that found candidates, or none
//! recent, and the resetter looks itself; a job that gets stuck just after
//! a pass is reset a run later.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A project's last pass that found no job that may be stuck; cheap to
/// clone, shared by its checks.
#[derive(Debug, Clone, Default)]
pub struct TablePass {
    none_stuck_at: Arc<Mutex<Option<Instant>>>,
}

impl TablePass {
    /// A pass that began at `at` found no job that may be stuck
    /// (`none_stuck`), or found some.
    pub fn record(&self, at: Instant, none_stuck: bool) {
        *self.lock() = none_stuck.then_some(at);
    }

    /// Whether a pass that began within `max_age` found none; a pass
    /// answers one look at most.
    pub fn take_none_stuck(&self, max_age: Duration) -> bool {
        self.lock().take().is_some_and(|at| at.elapsed() <= max_age)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.none_stuck_at.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recent_none_answers_one_look() {
        let pass = TablePass::default();
        let minute = Duration::from_secs(60);
        assert!(!pass.take_none_stuck(minute), "no pass yet");
        pass.record(Instant::now(), true);
        assert!(pass.take_none_stuck(minute));
        assert!(!pass.take_none_stuck(minute), "taken already");
        pass.record(Instant::now(), false);
        assert!(!pass.take_none_stuck(minute), "it found candidates");
        pass.record(Instant::now() - 2 * minute, true);
        assert!(!pass.take_none_stuck(minute), "too old");
    }
}
