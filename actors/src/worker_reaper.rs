//! `WorkerReaper`: retires dead workers and frees what they held.
//!
//! Every check interval this check runs [`sql::reap_dead_workers`]: workers
//! whose heartbeat is older than the dead threshold go `offline` and their
//! processing jobs go back to the queue. Workers heartbeat in one project but
//! take jobs from all of them, so each death is sent up ([`WorkersDied`]) and
//! every other project frees that worker's jobs on its next run.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use actix::{Message, WeakRecipient};
use futures_util::future::LocalBoxFuture;

use crate::database::{Database, DbError};
use crate::settings::Settings;
use crate::sql::{self, ForeignDeath, Reaped};
use crate::stuck_job_resetter::summarize;
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
}

impl WorkerReaper {
    pub fn new(foreign: ForeignDeaths, news: WeakRecipient<WorkersDied>) -> Self {
        WorkerReaper { foreign, news }
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
        let db = db.clone();
        let dead_after = settings.dead_worker_after;
        let foreign: Vec<ForeignDeath> = self
            .foreign
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        Box::pin(async move {
            let reaped = sql::reap_dead_workers(&db, dead_after, &foreign).await?;
            Ok((reaped, foreign))
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
        cx.state.update(cx.project, |p| {
            p.workers_reaped += reaped.dead.len() as u64;
            p.jobs_released += reaped.released.len() as u64;
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
        }
    }
}
