//! The stuck rule's look, answered by the health check's own request.
//!
//! Every run the `HealthReporter` sends one read and the `StuckJobResetter`
//! another, whose answer is nearly always "nothing stuck". The health
//! check's read carries the look too: with the indexes, its probe reads
//! the look's ranges of the stuck indexes; without them, its pass over the
//! table counting exactly lists the candidates as it goes. The resetter
//! then takes the answer of a read of the last interval and a half (the
//! two checks tick apart) instead of sending its own look: none, or the
//! candidates listed, which its write judges again under lock. With no
//! read recent (the health check failing, or counting exactly with the
//! indexes), the resetter looks itself; a job that gets stuck just after a
//! read is reset a run later.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// When the last read that listed candidates began, and what it listed.
type Listed = Option<(Instant, Vec<String>)>;

/// What the health check's last read found; cheap to clone, shared by a
/// project's checks.
#[derive(Debug, Clone, Default)]
pub struct StuckVerdict {
    last: Arc<Mutex<Listed>>,
}

impl StuckVerdict {
    /// A read that began at `at` listed the jobs that may be stuck (empty
    /// when none).
    pub fn record(&self, at: Instant, candidates: Vec<String>) {
        *self.lock() = Some((at, candidates));
    }

    /// The candidates a read that began within `max_age` listed (empty:
    /// none may be stuck); a read answers one look at most.
    pub fn take(&self, max_age: Duration) -> Option<Vec<String>> {
        let (at, ids) = self.lock().take()?;
        (at.elapsed() <= max_age).then_some(ids)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Listed> {
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recent_answer_serves_one_look() {
        let verdict = StuckVerdict::default();
        let minute = Duration::from_secs(60);
        assert_eq!(verdict.take(minute), None, "no read yet");
        verdict.record(Instant::now(), Vec::new());
        assert_eq!(verdict.take(minute), Some(Vec::new()));
        assert_eq!(verdict.take(minute), None, "taken already");
        verdict.record(Instant::now(), vec!["j1".into()]);
        assert_eq!(verdict.take(minute), Some(vec!["j1".to_string()]));
        verdict.record(Instant::now() - 2 * minute, Vec::new());
        assert_eq!(verdict.take(minute), None, "too old");
    }
}
