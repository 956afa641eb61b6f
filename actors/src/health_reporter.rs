//! `HealthReporter`: counts workers and jobs, logs them, warns on anomalies.
//!
//! At start, every `health_log_every` (on a clock) and whenever a warning
//! is due, one statement ([`sql::health_counts`]) counts active workers and
//! pending, processing and failed jobs exactly, and the `📊 System health
//! status` line is logged with them. Every other run sends bounded probes
//! instead ([`sql::health_probe`]: whether jobs wait, failed jobs up to the
//! threshold plus one, processing jobs up to twice the fleet's active
//! workers plus one), which decide every anomaly as the exact counts would,
//! at a cost that follows the thresholds, not the backlog; the job figures
//! of `/status` and the metrics are then the last exact ones. That is where
//! the open-status index of `sql/indexes.sql` exists; without it each probe
//! could read the whole table, and one pass counting exactly every run
//! costs less. The probe (with the stuck rules' indexes), or that pass
//! (without any index), also answers the stuck rule's look
//! ([`StuckVerdict`](crate::stuck_verdict::StuckVerdict)); that pass lists
//! the jobs of the workers found dead too
//! ([`HeldVerdict`](crate::held_verdict::HeldVerdict)). An anomaly ([`crate::anomaly`]) is warned about when it
//! starts, repeated at most once per `health_log_every` while it lasts, and
//! its end is logged at INFO. Its start and its end are alerted. An
//! instance that does not speak for the project ([`Role::speaks`](crate::Role::speaks):
//! standby or backup) counts (for metrics and the fleet's figures) but
//! neither warns nor alerts.

use std::time::Instant;

use crate::alerts::Alert;
use crate::anomaly::{self, Anomalies, Anomaly, Say};
use crate::check::{Check, Gate, Reporting, RunContext, Running};
use crate::database::Database;
use crate::events::Event;
use crate::kind::ChildKind;
use crate::sql::{self, HealthCounts, HealthProbe};
use crate::stuck_job_resetter::stuck_rules;
use crate::worker_reaper::{MAX_BATCHES, judge};

/// The check; remembers when it last logged what.
#[derive(Debug, Default)]
pub struct HealthReporter {
    /// When the status line is next due (`None`: at the next run).
    next_status_line: Option<Instant>,
    /// Active anomalies and when each was last warned about.
    anomalies: Anomalies,
    /// The last exact counts.
    exact: Option<HealthCounts>,
    /// The fleet's active workers at the last run: the processing probe's
    /// bound is set from it.
    fleet: Option<u64>,
    /// Count exactly at the next run: the probes could not decide.
    recount: bool,
}

/// What one run read.
#[derive(Debug, Clone, Copy)]
pub struct Health {
    /// Active workers now; jobs exactly now when `probe` is `None`, else
    /// as last counted exactly.
    pub counts: HealthCounts,
    /// The bounded probes of a run that did not count exactly, with the
    /// processing bound they used.
    pub probe: Option<(HealthProbe, u64)>,
}

impl Check for HealthReporter {
    const KIND: ChildKind = ChildKind::HealthReporter;
    // Known to stand by or not before judging anomalies aloud.
    const GATE: Gate = Gate::AfterElection;
    type Outcome = Health;

    fn run_once(&mut self, db: &Database, cx: &RunContext) -> impl Running<Self::Outcome> {
        let (db, cx) = (db.clone(), cx.clone());
        let every = cx.settings.health_log_every;
        let line_due =
            anomaly::status_line_due(self.next_status_line, Instant::now(), every).is_some();
        let last = self.exact.filter(|_| !line_due && !self.recount);
        let (fleet, anomalies) = (self.fleet, self.anomalies.clone());
        async move {
            let (dead_after, warn) = (cx.settings.dead_worker_after, cx.settings.failed_jobs_warn);
            let allowed = cx.features.get(&db, &cx.settings).await?;
            let indexed = allowed.open_status_indexed;
            // Without the index every probe could read the table: one pass
            // that counts exactly costs less.
            let mut health = match last.filter(|_| indexed) {
                // Between exact counts, probes decide; a warning due (it
                // carries the counts) brings the exact counts.
                Some(last) => {
                    let cap = anomaly::processing_cap(fleet);
                    // The stuck rule's look rides along (see `stuck_verdict`).
                    let look = allowed
                        .stuck_indexed
                        .then(|| sql::stuck_candidates_sql(&stuck_rules(&allowed, &cx), true));
                    let began = Instant::now();
                    let (probe, candidates) =
                        sql::health_probe(&db, dead_after, (cap, warn + 1), look.as_deref())
                            .await?;
                    if let Some(candidates) = candidates {
                        cx.stuck_verdict.record(began, candidates);
                    }
                    let (holds, _) = anomalies.settle(anomaly::probed(probe, cap, fleet, warn));
                    if anomalies.warn_due(&holds, Instant::now(), every) {
                        None
                    } else {
                        Some(Health {
                            counts: HealthCounts {
                                active_workers: probe.active_workers,
                                ..last
                            },
                            probe: Some((probe, cap)),
                        })
                    }
                }
                None => None,
            };
            if health.is_none() {
                let counts = if indexed || allowed.stuck_indexed {
                    sql::health_counts(&db, dead_after, indexed).await?
                } else {
                    // The one pass over the table answers the stuck
                    // rule's look too (see `stuck_verdict`).
                    // And lists the jobs of dead workers (see `held_verdict`).
                    let may_be_stuck = sql::may_be_stuck_condition(&stuck_rules(&allowed, &cx));
                    let mut owed = Vec::new();
                    if !allowed.processing_indexed {
                        owed = cx.fleet.owed(db.project());
                        owed.truncate(MAX_BATCHES * sql::BATCH);
                    }
                    let began = Instant::now();
                    cx.held_verdict.begin(began, owed.clone());
                    let (counts, listed) =
                        sql::health_counts_and_look(&db, dead_after, &may_be_stuck, &owed).await?;
                    cx.stuck_verdict.record(began, listed.stuck_candidates);
                    cx.held_verdict.record(began, listed.held);
                    counts
                };
                health = Some(Health {
                    counts,
                    probe: None,
                });
            }
            let mut health = health.expect("counted");
            // Once the fleet has read this project, live workers are those
            // it saw heartbeat, whatever their clocks wrote.
            if let Some(alive) = cx.fleet.alive_in(db.project(), &judge(&cx)) {
                health.counts.active_workers = alive;
            }
            Ok(health)
        }
    }

    fn on_success(&mut self, health: Health, to: &Reporting<'_>) {
        let counts = health.counts;
        // Job figures between exact counts are the last exact ones: the
        // gauges and `/status` move at the exact counts' cadence.
        to.state
            .update(to.project, |p| p.last_counts = Some(counts));
        to.state.counted(to.project, &counts);
        let now = Instant::now();
        let every = to.settings.health_log_every;
        if health.probe.is_none() {
            self.exact = Some(counts);
            self.recount = false;
            if let Some(next) = anomaly::status_line_due(self.next_status_line, now, every) {
                log::info!(
                    environment = to.project,
                    activeWorkers = counts.active_workers,
                    pendingJobs = counts.pending_jobs,
                    processingJobs = counts.processing_jobs,
                    errorJobs = counts.error_jobs;
                    "📊 System health status"
                );
                self.next_status_line = Some(next);
            }
        }
        // Workers heartbeat in one project and serve all: judge by the fleet.
        let fleet = to.state.fleet_active_workers();
        self.fleet = fleet;
        let warn_at = to.settings.failed_jobs_warn;
        let holds = match health.probe {
            None => anomaly::holding(counts, fleet, warn_at),
            Some((probe, cap)) => {
                let (holds, undecided) = self
                    .anomalies
                    .settle(anomaly::probed(probe, cap, fleet, warn_at));
                // The fleet moved since the run began: a warning then due,
                // or a decision the bound cannot make, waits for the exact
                // counts of the next run.
                if undecided || self.anomalies.warn_due(&holds, now, every) {
                    self.recount = true;
                    return;
                }
                holds
            }
        };
        let said = self.anomalies.step(holds, now, every);
        // A standby or backup tracks anomalies silently: on taking over it
        // does not announce again what the speaking instance already did.
        if to.role.speaks() {
            for (anomaly, say) in said {
                speak(anomaly, say, counts, fleet.unwrap_or(0), to);
            }
        }
        let names = self.anomalies.names();
        to.state.update(to.project, |p| p.anomalies = names);
    }
}

/// Logs and alerts what the anomaly tracker says.
fn speak(anomaly: Anomaly, say: Say, counts: HealthCounts, fleet: u64, to: &Reporting<'_>) {
    let env = to.project;
    match say {
        Say::Warn { first } => {
            warn(anomaly, counts, fleet, to);
            if first {
                to.state
                    .event(Event::new(env, "anomaly", anomaly.message()));
                let text = format!("[{env}] {}", anomaly.message());
                to.state.alert(
                    Alert::new(env, "anomaly", text)
                        .subject(anomaly.name())
                        .field("anomaly", anomaly.name())
                        .field("activeWorkers", fleet)
                        .field("pendingJobs", counts.pending_jobs)
                        .field("processingJobs", counts.processing_jobs)
                        .field("errorJobs", counts.error_jobs),
                );
            }
        }
        Say::Cleared => {
            let what = anomaly.message().trim_start_matches("⚠️").trim();
            log::info!(environment = env, anomaly = anomaly.name();
                "✅ Anomaly cleared: {what}");
            let line = format!("✅ Anomaly cleared: {what}");
            to.state.event(Event::new(env, "anomaly_cleared", line));
            let text = format!("[{env}] ✅ Anomaly cleared: {what}");
            to.state.alert(
                Alert::new(env, "anomaly_cleared", text)
                    .subject(anomaly.name())
                    .field("anomaly", anomaly.name()),
            );
        }
    }
}

fn warn(anomaly: Anomaly, counts: HealthCounts, fleet_active: u64, to: &Reporting<'_>) {
    let env = to.project;
    match anomaly {
        Anomaly::NoActiveWorkers => log::warn!(
            environment = env, pendingJobs = counts.pending_jobs; "{}", anomaly.message()),
        Anomaly::TooManyProcessing => log::warn!(
            environment = env, processingJobs = counts.processing_jobs,
            activeWorkers = fleet_active; "{}", anomaly.message()),
        Anomaly::HighFailures => log::warn!(
            environment = env, errorJobs = counts.error_jobs,
            threshold = to.settings.failed_jobs_warn; "{}", anomaly.message()),
    }
}
