//! The check-duration histogram: plain numbers kept in the state (no
//! metrics library in the actor crate), encoded by `/metrics`.

use std::time::Duration;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
