//! The health check's judgement, as pure functions of the counts and the
//! clock: which anomalies hold, and when each is warned about, repeated
//! and cleared.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::sql::HealthCounts;

/// The anomalies the health check watches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Anomaly {
    /// Nobody in the whole fleet is working, yet jobs wait.
    NoActiveWorkers,
    /// More jobs processing than the active workers could hold (two each).
    TooManyProcessing,
    /// Failed jobs above `failed_jobs_warn`.
    HighFailures,
}

impl Anomaly {
    /// The warning text (existing log searches look for it).
    pub fn message(self) -> &'static str {
        match self {
            Anomaly::NoActiveWorkers => "⚠️  No active workers but jobs are pending!",
            Anomaly::TooManyProcessing => {
                "⚠️  More processing jobs than expected for active workers"
            }
            Anomaly::HighFailures => "⚠️  High number of failed jobs",
        }
    }

    /// A stable short name for `/status`, metrics and the clear line.
    pub fn name(self) -> &'static str {
        match self {
            Anomaly::NoActiveWorkers => "no_active_workers",
            Anomaly::TooManyProcessing => "too_many_processing",
            Anomaly::HighFailures => "high_failures",
        }
    }
}

/// Whether each anomaly holds for a project's `counts`. `fleet` is the
/// active workers of the whole fleet (workers heartbeat in one project and
/// serve all), `None` while unknown: no worker anomaly is judged then.
pub fn holding(
    counts: HealthCounts,
    fleet: Option<u64>,
    failed_jobs_warn: u64,
) -> [(Anomaly, bool); 3] {
    [
        (
            Anomaly::NoActiveWorkers,
            fleet == Some(0) && counts.pending_jobs > 0,
        ),
        (
            Anomaly::TooManyProcessing,
            fleet.is_some_and(|active| counts.processing_jobs > 2 * active),
        ),
        (Anomaly::HighFailures, counts.error_jobs > failed_jobs_warn),
    ]
}

/// What to say about an anomaly after a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Say {
    /// Warn; `first` when it just started (it is then also alerted).
    Warn { first: bool },
    /// It ended.
    Cleared,
}

/// The anomalies that hold, and when each was last warned about.
#[derive(Debug, Default)]
pub struct Anomalies {
    active: BTreeMap<Anomaly, Instant>,
}

impl Anomalies {
    /// Takes in which anomalies hold `now`; says what to warn about (when
    /// one starts, then at most once per `repeat_every` while it lasts) and
    /// what cleared.
    pub fn step(
        &mut self,
        holds: [(Anomaly, bool); 3],
        now: Instant,
        repeat_every: Duration,
    ) -> Vec<(Anomaly, Say)> {
        let mut said = Vec::new();
        for (anomaly, holds) in holds {
            match (holds, self.active.get(&anomaly).copied()) {
                (true, Some(at)) if now.duration_since(at) < repeat_every => {}
                (true, last) => {
                    self.active.insert(anomaly, now);
                    said.push((
                        anomaly,
                        Say::Warn {
                            first: last.is_none(),
                        },
                    ));
                }
                (false, Some(_)) => {
                    self.active.remove(&anomaly);
                    said.push((anomaly, Say::Cleared));
                }
                (false, None) => {}
            }
        }
        said
    }

    /// The names of the anomalies that hold, for `/status` and metrics.
    pub fn names(&self) -> Vec<String> {
        self.active.keys().map(|a| a.name().to_string()).collect()
    }
}

/// When the status line is due: `Some(next due time)` when it is due now
/// (`next` is `None` before the first), on a clock: the next line is due one
/// period after this one was, or one period from now when that is past.
pub fn status_line_due(next: Option<Instant>, now: Instant, every: Duration) -> Option<Instant> {
    if next.is_some_and(|due| now < due) {
        return None;
    }
    let mut due = next.unwrap_or(now) + every;
    if due <= now {
        due = now + every;
    }
    Some(due)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pending: u64, processing: u64, errors: u64) -> HealthCounts {
        HealthCounts {
            active_workers: 0,
            pending_jobs: pending,
            processing_jobs: processing,
            error_jobs: errors,
        }
    }

    fn held(holds: [(Anomaly, bool); 3]) -> Vec<Anomaly> {
        holds.iter().filter(|(_, h)| *h).map(|(a, _)| *a).collect()
    }

    #[test]
    fn anomalies_follow_the_fleet_and_the_threshold() {
        assert_eq!(
            held(holding(counts(3, 0, 11), Some(0), 10)),
            [Anomaly::NoActiveWorkers, Anomaly::HighFailures]
        );
        assert_eq!(
            held(holding(counts(3, 3, 10), Some(1), 10)),
            [Anomaly::TooManyProcessing]
        );
        assert!(held(holding(counts(3, 2, 0), Some(1), 10)).is_empty());
        // An unknown fleet (a project not yet counted) judges no worker.
        assert!(held(holding(counts(3, 9, 0), None, 10)).is_empty());
    }

    #[test]
    fn warned_when_it_starts_repeated_on_the_clock_cleared_once() {
        let mut a = Anomalies::default();
        let (t0, every) = (Instant::now(), Duration::from_secs(60));
        let no_workers = |h| {
            [
                (Anomaly::NoActiveWorkers, h),
                (Anomaly::TooManyProcessing, false),
                (Anomaly::HighFailures, false),
            ]
        };
        let at = |s| t0 + Duration::from_secs(s);
        let first = Say::Warn { first: true };
        let again = Say::Warn { first: false };
        assert_eq!(
            a.step(no_workers(true), t0, every),
            [(Anomaly::NoActiveWorkers, first)]
        );
        assert!(a.step(no_workers(true), at(30), every).is_empty());
        assert_eq!(a.names(), ["no_active_workers"]);
        assert_eq!(
            a.step(no_workers(true), at(60), every),
            [(Anomaly::NoActiveWorkers, again)]
        );
        assert_eq!(
            a.step(no_workers(false), at(61), every),
            [(Anomaly::NoActiveWorkers, Say::Cleared)]
        );
        assert!(a.step(no_workers(false), at(62), every).is_empty());
        assert!(a.names().is_empty());
    }

    #[test]
    fn the_status_line_keeps_its_clock() {
        let (t0, every) = (Instant::now(), Duration::from_secs(300));
        let at = |s| t0 + Duration::from_secs(s);
        assert_eq!(status_line_due(None, t0, every), Some(at(300)));
        assert_eq!(status_line_due(Some(at(300)), at(299), every), None);
        // A run a little late does not shift the clock...
        assert_eq!(
            status_line_due(Some(at(300)), at(302), every),
            Some(at(600))
        );
        // ...but after a long silence the next one is a period from now.
        assert_eq!(
            status_line_due(Some(at(300)), at(1000), every),
            Some(at(1300))
        );
    }
}
