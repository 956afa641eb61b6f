//! The health check's judgement, as pure functions of the counts and the
//! clock: which anomalies hold, and when each is warned about, repeated
//! and cleared.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::sql::{HealthCounts, HealthProbe};

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

/// The bound of the processing probe for a fleet of `fleet` active
/// workers: past the anomaly's limit, so it can be told apart; rounded up
/// to a power of two, so that the probe's text (kept prepared) takes a
/// few forms, not one per fleet size.
pub fn processing_cap(fleet: Option<u64>) -> u64 {
    fleet.map_or(1, |active| (2 * active + 1).next_power_of_two())
}

/// Whether each anomaly holds, by the bounded probes: the same decisions
/// as [`holding`] on exact counts. `processing_cap` is the bound the probe
/// used ([`processing_cap`] of the fleet known then); `None` when the
/// fleet has grown since, past what that bound can tell.
pub fn probed(
    probe: HealthProbe,
    processing_cap: u64,
    fleet: Option<u64>,
    failed_jobs_warn: u64,
) -> [(Anomaly, Option<bool>); 3] {
    let too_many = match fleet {
        None => Some(false),
        Some(active) if probe.processing < processing_cap => Some(probe.processing > 2 * active),
        // At least the cap: more than the limit if the cap is.
        Some(active) => (processing_cap > 2 * active).then_some(true),
    };
    [
        (
            Anomaly::NoActiveWorkers,
            Some(fleet == Some(0) && probe.pending),
        ),
        (Anomaly::TooManyProcessing, too_many),
        // Counted up to the threshold plus one.
        (Anomaly::HighFailures, Some(probe.errors > failed_jobs_warn)),
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
#[derive(Debug, Clone, Default)]
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

    /// Whether [`step`](Self::step) would warn about anything now.
    pub fn warn_due(
        &self,
        holds: &[(Anomaly, bool); 3],
        now: Instant,
        repeat_every: Duration,
    ) -> bool {
        holds.iter().any(|(anomaly, holds)| {
            *holds
                && self
                    .active
                    .get(anomaly)
                    .is_none_or(|at| now.duration_since(*at) >= repeat_every)
        })
    }

    /// Decisions the probes could not make, as they stand: the anomaly's
    /// state does not change on them. Also says whether there were any.
    pub fn settle(&self, holds: [(Anomaly, Option<bool>); 3]) -> ([(Anomaly, bool); 3], bool) {
        let undecided = holds.iter().any(|(_, h)| h.is_none());
        let decided = holds.map(|(a, h)| (a, h.unwrap_or_else(|| self.active.contains_key(&a))));
        (decided, undecided)
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

    fn probe(pending: bool, processing: u64, errors: u64) -> HealthProbe {
        HealthProbe {
            active_workers: 0,
            pending,
            processing,
            errors,
        }
    }

    #[test]
    fn bounded_probes_decide_as_exact_counts_do() {
        let cap = processing_cap(Some(1));
        assert_eq!(cap, 4, "2 × 1 + 1, rounded up to a power of two");
        assert_eq!(processing_cap(Some(20)), 64);
        for (processing, errors) in [(0, 0), (2, 10), (3, 11), (9, 11)] {
            let exact = holding(counts(1, processing, errors), Some(1), 10);
            let bounded = probed(
                probe(true, processing.min(cap), errors.min(11)),
                cap,
                Some(1),
                10,
            );
            assert_eq!(exact.map(|(a, h)| (a, Some(h))), bounded);
        }
        // A bound set for one worker cannot tell "4 or more" for two.
        let grown = probed(probe(true, 4, 0), cap, Some(2), 10);
        assert_eq!(grown[1], (Anomaly::TooManyProcessing, None));
        let (decided, undecided) = Anomalies::default().settle(grown);
        assert!(undecided && !decided[1].1);
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
