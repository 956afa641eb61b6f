//! `WorkerReaper`: retires dead workers and frees what they held.
//!
//! Every check interval this check runs [`sql::reap_dead_workers`]: workers
//! whose heartbeat is older than the dead threshold go `offline` and their
//! processing jobs go back to the queue (or to failed, out of attempts). Workers heartbeat in one project but
//! take jobs from all of them, so each death is sent up ([`WorkersDied`]) and
//! every other project frees that worker's jobs on its next run. Each
//! release counts as an attempt of the job, as for stuck jobs. A standby
//! instance does nothing.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use actix::{Message, WeakRecipient};

use crate::alerts::Alert;
use crate::check::{Check, Gate, Reporting, RunContext, Running};
use crate::database::Database;
use crate::events::Event;
use crate::kind::ChildKind;
use crate::report::{alert_batch, summarize};
use crate::sql::{self, ForeignDeath, Reaped};

/// Workers found dead in project `from`, for the other projects.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct WorkersDied {
    pub from: String,
    pub deaths: Vec<ForeignDeath>,
}

/// Deaths seen in other projects whose jobs here are still to be freed.
/// Owned by the project's `Environment`, so it outlives a reaper restart.
pub type ForeignDeaths = Arc<Mutex<BTreeSet<ForeignDeath>>>;

/// The check.
pub struct WorkerReaper {
    foreign: ForeignDeaths,
    /// Where deaths are reported (the `Supervisor`).
    news: WeakRecipient<WorkersDied>,
}

impl WorkerReaper {
    pub fn new(foreign: ForeignDeaths, news: WeakRecipient<WorkersDied>) -> Self {
        WorkerReaper { foreign, news }
    }
}

impl Check for WorkerReaper {
    const KIND: ChildKind = ChildKind::WorkerReaper;
    const GATE: Gate = Gate::WhenActing;
    const USES_FEATURES: bool = true;
    /// What was reaped, and the foreign deaths this run was given.
    type Outcome = (Reaped, Vec<ForeignDeath>);

    fn run_once(&mut self, db: &Database, cx: &RunContext) -> impl Running<Self::Outcome> {
        let (db, cx) = (db.clone(), cx.clone());
        let foreign: Vec<ForeignDeath> = self
            .foreign
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        async move {
            let attempts = cx.features.get(&db, &cx.settings).await?.attempts;
            let dead_after = cx.settings.dead_worker_after;
            let reaped =
                sql::reap_dead_workers(&db, dead_after, &foreign, attempts.as_ref()).await?;
            Ok((reaped, foreign))
        }
    }

    fn on_success(&mut self, (reaped, sent): Self::Outcome, to: &Reporting<'_>) {
        {
            let mut foreign = self.foreign.lock().unwrap_or_else(|e| e.into_inner());
            for done in &sent {
                foreign.remove(done);
            }
        }
        if reaped.dead.is_empty() && reaped.released.is_empty() {
            return;
        }
        let failed = reaped.released.iter().filter(|j| j.failed).count() as u64;
        to.state.update(to.project, |p| {
            p.workers_reaped += reaped.dead.len() as u64;
            p.jobs_released += reaped.released.len() as u64 - failed;
            p.jobs_failed += failed;
        });
        let (local, elsewhere): (Vec<_>, Vec<_>) = reaped
            .released
            .iter()
            .cloned()
            .partition(|j| j.worker.as_ref().is_some_and(|w| reaped.dead.contains(w)));
        if !reaped.dead.is_empty() {
            log::warn!(
                environment = to.project,
                count = reaped.dead.len(),
                workers:serde = reaped.dead,
                releasedJobs:serde = summarize(&local);
                "💀 Cleaned up dead workers"
            );
            let event = Event::new(to.project, "workers_reaped", "💀 Cleaned up dead workers");
            to.state.event(event.workers(&reaped.dead).jobs(&local));
            if reaped.dead.len() as u64 >= to.settings.alert_min_resets {
                let text = format!(
                    "[{}] 💀 Cleaned up dead workers: {}",
                    to.project,
                    reaped.dead.join(", ")
                );
                let jobs = serde_json::to_value(summarize(&local)).unwrap_or_default();
                to.state.alert(
                    Alert::new(to.project, "workers_reaped", text)
                        .field("count", reaped.dead.len())
                        .field("workers", reaped.dead.clone())
                        .field("releasedJobs", jobs),
                );
            }
            if let Some(news) = self.news.upgrade() {
                let deaths = reaped
                    .dead
                    .iter()
                    .map(|w| ForeignDeath {
                        worker: w.clone(),
                        seen_at: reaped.now.clone(),
                    })
                    .collect();
                news.do_send(WorkersDied {
                    from: to.project.to_string(),
                    deaths,
                });
            }
        }
        if !elsewhere.is_empty() {
            let workers: BTreeSet<&str> = elsewhere
                .iter()
                .filter_map(|j| j.worker.as_deref())
                .collect();
            log::warn!(
                environment = to.project,
                count = elsewhere.len(),
                workers:serde = workers,
                jobs:serde = summarize(&elsewhere);
                "💀 Released jobs of workers found dead in another environment"
            );
            let text = "💀 Released jobs of workers found dead in another environment";
            to.state
                .event(Event::new(to.project, "jobs_released", text).jobs(&elsewhere));
            alert_batch(
                to,
                "jobs_released",
                "💀 Released jobs of workers found dead in another environment",
                &elsewhere,
            );
        }
    }
}
