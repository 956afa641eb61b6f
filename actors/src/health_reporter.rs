//! `HealthReporter`: counts workers and jobs, logs them, warns on anomalies.
//!
//! Every check interval one statement ([`sql::health_counts`]) counts active
//! workers and pending, processing and failed jobs. The `📊 System health
//! status` line is logged at start and then every `health_log_every`, on a
//! clock. An anomaly ([`crate::anomaly`]) is warned about when it
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
use crate::sql::{self, HealthCounts};
use crate::worker_reaper::judge;

/// The check; remembers when it last logged what.
#[derive(Debug, Default)]
pub struct HealthReporter {
    /// When the status line is next due (`None`: at the next run).
    next_status_line: Option<Instant>,
    /// Active anomalies and when each was last warned about.
    anomalies: Anomalies,
}

impl Check for HealthReporter {
    const KIND: ChildKind = ChildKind::HealthReporter;
    // Known to stand by or not before judging anomalies aloud.
    const GATE: Gate = Gate::AfterElection;
    type Outcome = HealthCounts;

    fn run_once(&mut self, db: &Database, cx: &RunContext) -> impl Running<Self::Outcome> {
        let (db, cx) = (db.clone(), cx.clone());
        async move {
            let mut counts = sql::health_counts(&db, cx.settings.dead_worker_after).await?;
            // Once the fleet has read this project, live workers are those
            // it saw heartbeat, whatever their clocks wrote.
            if let Some(alive) = cx.fleet.alive_in(db.project(), &judge(&cx)) {
                counts.active_workers = alive;
            }
            Ok(counts)
        }
    }

    fn on_success(&mut self, counts: HealthCounts, to: &Reporting<'_>) {
        to.state
            .update(to.project, |p| p.last_counts = Some(counts));
        to.state.counted(to.project, &counts);
        let now = Instant::now();
        let every = to.settings.health_log_every;
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
        // Workers heartbeat in one project and serve all: judge by the fleet.
        let fleet = to.state.fleet_active_workers();
        let holds = anomaly::holding(counts, fleet, to.settings.failed_jobs_warn);
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
