//! The stuck rule's look, answered by the health check's own request.
//!
//! Every run the `HealthReporter` sends one read and the `StuckJobResetter`
//! another, whose answer is nearly always "nothing stuck". The health
//! check's read carries the look's question too: with the indexes, its
//! probe asks whether any job lies in the stuck ranges (an `EXISTS` per
//! range); without them, its pass over the table counting exactly asks it
//! of every row. The resetter then takes a "none" from a read of the last
//! interval and a half (the two checks tick apart) instead of sending its
//! own. A read that found candidates, none recent (the health check
//! failing, or counting exactly with the indexes), and the resetter looks
//! itself; a job that gets stuck just after a read is reset a run later.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// When the health check last found no job that may be stuck; cheap to
/// clone, shared by a project's checks.
#[derive(Debug, Clone, Default)]
pub struct StuckVerdict {
    none_stuck_at: Arc<Mutex<Option<Instant>>>,
}

impl StuckVerdict {
    /// A read that began at `at` found no job that may be stuck
    /// (`none_stuck`), or found some.
    pub fn record(&self, at: Instant, none_stuck: bool) {
        *self.lock() = none_stuck.then_some(at);
    }

    /// Whether a read that began within `max_age` found none; a read
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
        let verdict = StuckVerdict::default();
        let minute = Duration::from_secs(60);
        assert!(!verdict.take_none_stuck(minute), "no pass yet");
        verdict.record(Instant::now(), true);
        assert!(verdict.take_none_stuck(minute));
        assert!(!verdict.take_none_stuck(minute), "taken already");
        verdict.record(Instant::now(), false);
        assert!(!verdict.take_none_stuck(minute), "it found candidates");
        verdict.record(Instant::now() - 2 * minute, true);
        assert!(!verdict.take_none_stuck(minute), "too old");
    }
}
