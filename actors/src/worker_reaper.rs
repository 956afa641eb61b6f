//! `WorkerReaper`: retires dead workers and frees what they held.
//!
//! Every check interval this check runs [`sql::reap_dead_workers`]: workers
//! whose heartbeat is older than the dead threshold go `offline` and their
//! processing jobs go back to the queue. Workers heartbeat in one project but
//! take jobs from all of them, so each death is sent up ([`WorkersDied`]) and
//! every other project frees that worker's jobs on its next run. Each
//! release counts as an attempt of the job, as for stuck jobs. A standby
//! instance does nothing.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use actix::{Message, WeakRecipient};
use futures_util::future::LocalBoxFuture;

use crate::alerts::Alert;
use crate::database::{Database, DbError};
use crate::events::Event;
use crate::features::Features;
use crate::leader::{Role, SharedRole};
use crate::settings::Settings;
use crate::sql::{self, ForeignDeath, Reaped};
use crate::stuck_job_resetter::{alert_batch, summarize};
use crate::ticker::{Check, ChildKind, RunContext};

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
    news: WeakRecipient<WorkersDied>,
    /// Whether releases count as attempts here (`None`: never).
    features: Option<Features>,
    role: SharedRole,
}

impl WorkerReaper {
    pub fn new(foreign: ForeignDeaths, news: WeakRecipient<WorkersDied>) -> Self {
        WorkerReaper {
            foreign,
            news,
            features: None,
            role: Role::alone(),
        }
    }

    /// Counts releases as the project's schema allows, and acts only
    /// while this instance acts for the project.
    pub fn with(mut self, features: Features, role: SharedRole) -> Self {
        self.features = Some(features);
        self.role = role;
        self
    }
}

impl Check for WorkerReaper {
    const KIND: ChildKind = ChildKind::WorkerReaper;
    type Outcome = (Reaped, Vec<ForeignDeath>);

    fn run_once(
        &mut self,
        db: &Database,
        settings: &Settings,
    ) -> LocalBoxFuture<'static, Result<Self::Outcome, DbError>> {
        let (db, settings, role) = (db.clone(), settings.clone(), self.role.clone());
        let features = self.features.clone();
        let foreign: Vec<ForeignDeath> = self
            .foreign
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        Box::pin(async move {
            role.settled(settings.connect_timeout + settings.statement_timeout)
                .await;
            if !role.acting() {
                return Ok((Reaped::default(), Vec::new()));
            }
            let attempts = match &features {
                Some(f) => f.get(&db, &settings).await?.attempts,
                None => None,
            };
            let result = sql::reap_dead_workers_counting(
                &db,
                settings.dead_worker_after,
                &foreign,
                attempts.as_ref(),
            )
            .await;
            if let (Err(DbError::Schema(_)), Some(f)) = (&result, &features) {
                f.forget();
            }
            Ok((result?, foreign))
        })
    }

    fn on_success(&mut self, (reaped, sent): Self::Outcome, cx: &RunContext<'_>) {
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
        cx.state.update(cx.project, |p| {
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
                environment = cx.project,
                count = reaped.dead.len(),
                workers:serde = reaped.dead,
                releasedJobs:serde = summarize(&local);
                "💀 Cleaned up dead workers"
            );
            cx.state.event(
                Event::new(cx.project, "workers_reaped", "💀 Cleaned up dead workers")
                    .workers(&reaped.dead)
                    .jobs(&local),
            );
            if reaped.dead.len() as u64 >= cx.settings.alert_min_resets {
                let text = format!(
                    "[{}] 💀 Cleaned up dead workers: {}",
                    cx.project,
                    reaped.dead.join(", ")
                );
                let jobs = serde_json::to_value(summarize(&local)).unwrap_or_default();
                cx.state.alert(
                    Alert::new(cx.project, "workers_reaped", text)
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
                    from: cx.project.to_string(),
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
                environment = cx.project,
                count = elsewhere.len(),
                workers:serde = workers,
                jobs:serde = summarize(&elsewhere);
                "💀 Released jobs of workers found dead in another environment"
            );
            cx.state.event(
                Event::new(
                    cx.project,
                    "jobs_released",
                    "💀 Released jobs of workers found dead in another environment",
                )
                .jobs(&elsewhere),
            );
            alert_batch(
                cx,
                "jobs_released",
                "💀 Released jobs of workers found dead in another environment",
                &elsewhere,
            );
        }
    }
}
