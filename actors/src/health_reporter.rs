//! `HealthReporter`: counts workers and jobs, logs them, warns on anomalies.
//!
//! Every check interval one statement ([`sql::health_counts`]) counts active
//! workers and pending, processing and failed jobs. The `📊 System health
//! status` line is logged at start and then every `health_log_every`, on a
//! clock. An anomaly is warned about when it starts, repeated at most once
//! per `health_log_every` while it lasts, and its end is logged at INFO.
//! Its start and its end are alerted. A standby instance counts (for
//! metrics and the fleet's figures) but neither warns nor alerts.

use std::collections::BTreeMap;
use std::time::Instant;

use futures_util::future::LocalBoxFuture;

use crate::alerts::Alert;
use crate::database::{Database, DbError};
use crate::events::Event;
use crate::leader::SharedRole;
use crate::settings::Settings;
use crate::sql::{self, HealthCounts};
use crate::ticker::{Check, ChildKind, RunContext};

/// The anomalies the seed names.
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
    /// The seed's warning text (existing log searches look for it).
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

/// The check; remembers when it last logged what.
#[derive(Debug, Default)]
pub struct HealthReporter {
    /// When the status line is next due (`None`: at the next run).
    next_status_line: Option<Instant>,
    /// Active anomalies and when each was last warned about.
    active: BTreeMap<Anomaly, Instant>,
    /// A standby instance counts but neither warns nor alerts.
    role: SharedRole,
}

impl HealthReporter {
    pub fn new(role: SharedRole) -> Self {
        HealthReporter {
            role,
            ..Self::default()
        }
    }
}

impl Check for HealthReporter {
    const KIND: ChildKind = ChildKind::HealthReporter;
    type Outcome = HealthCounts;

    fn run_once(
        &mut self,
        db: &Database,
        settings: &Settings,
    ) -> LocalBoxFuture<'static, Result<Self::Outcome, DbError>> {
        let db = db.clone();
        let dead_after = settings.dead_worker_after;
        let (role, bound) = (
            self.role.clone(),
            settings.connect_timeout + settings.statement_timeout,
        );
        Box::pin(async move {
            // Known to stand by or not before judging anomalies aloud.
            role.settled(bound).await;
            sql::health_counts(&db, dead_after).await
        })
    }

    fn on_success(&mut self, counts: HealthCounts, cx: &RunContext<'_>) {
        cx.state
            .update(cx.project, |p| p.last_counts = Some(counts));
        cx.state.counted(cx.project, &counts);
        let now = Instant::now();
        let every = cx.settings.health_log_every;
        if self.next_status_line.is_none_or(|due| now >= due) {
            log::info!(
                environment = cx.project,
                activeWorkers = counts.active_workers,
                pendingJobs = counts.pending_jobs,
                processingJobs = counts.processing_jobs,
                errorJobs = counts.error_jobs;
                "📊 System health status"
            );
            // On a clock: the next line is due one period after this one was.
            let mut due = self.next_status_line.unwrap_or(now) + every;
            if due <= now {
                due = now + every;
            }
            self.next_status_line = Some(due);
        }
        self.check_anomalies(counts, cx, now);
    }
}

impl HealthReporter {
    fn check_anomalies(&mut self, counts: HealthCounts, cx: &RunContext<'_>, now: Instant) {
        // Workers heartbeat in one project and serve all: judge by the fleet.
        let fleet = cx.state.fleet_active_workers();
        let conditions = [
            (
                Anomaly::NoActiveWorkers,
                fleet == Some(0) && counts.pending_jobs > 0,
            ),
            (
                Anomaly::TooManyProcessing,
                fleet.is_some_and(|active| counts.processing_jobs > 2 * active),
            ),
            (
                Anomaly::HighFailures,
                counts.error_jobs > cx.settings.failed_jobs_warn,
            ),
        ];
        // A standby tracks anomalies silently: on taking over it does not
        // announce again what the acting instance already did.
        let quiet = self.role.standing_by();
        for (anomaly, holds) in conditions {
            let last = self.active.get(&anomaly).copied();
            match (holds, last) {
                (true, Some(at)) if now.duration_since(at) < cx.settings.health_log_every => {}
                (true, _) => {
                    self.active.insert(anomaly, now);
                    if !quiet {
                        warn_anomaly(anomaly, counts, fleet.unwrap_or(0), cx);
                    }
                    if !quiet && last.is_none() {
                        cx.state
                            .event(Event::new(cx.project, "anomaly", anomaly.message()));
                        let text = format!("[{}] {}", cx.project, anomaly.message());
                        cx.state.alert(
                            Alert::new(cx.project, "anomaly", text)
                                .subject(anomaly.name())
                                .field("anomaly", anomaly.name())
                                .field("activeWorkers", fleet.unwrap_or(0))
                                .field("pendingJobs", counts.pending_jobs)
                                .field("processingJobs", counts.processing_jobs)
                                .field("errorJobs", counts.error_jobs),
                        );
                    }
                }
                (false, Some(_)) => {
                    self.active.remove(&anomaly);
                    if quiet {
                        continue;
                    }
                    let what = anomaly.message().trim_start_matches("⚠️").trim();
                    log::info!(environment = cx.project, anomaly = anomaly.name();
                        "✅ Anomaly cleared: {what}");
                    cx.state.event(Event::new(
                        cx.project,
                        "anomaly_cleared",
                        format!("✅ Anomaly cleared: {what}"),
                    ));
                    cx.state.alert(
                        Alert::new(
                            cx.project,
                            "anomaly_cleared",
                            format!("[{}] ✅ Anomaly cleared: {what}", cx.project),
                        )
                        .subject(anomaly.name())
                        .field("anomaly", anomaly.name()),
                    );
                }
                (false, None) => {}
            }
        }
        let names: Vec<String> = self.active.keys().map(|a| a.name().to_string()).collect();
        cx.state.update(cx.project, |p| p.anomalies = names);
    }
}

fn warn_anomaly(anomaly: Anomaly, counts: HealthCounts, fleet_active: u64, cx: &RunContext<'_>) {
    let env = cx.project;
    match anomaly {
        Anomaly::NoActiveWorkers => log::warn!(
            environment = env, pendingJobs = counts.pending_jobs; "{}", anomaly.message()),
        Anomaly::TooManyProcessing => log::warn!(
            environment = env, processingJobs = counts.processing_jobs,
            activeWorkers = fleet_active; "{}", anomaly.message()),
        Anomaly::HighFailures => log::warn!(
            environment = env, errorJobs = counts.error_jobs,
            threshold = cx.settings.failed_jobs_warn; "{}", anomaly.message()),
    }
}
