//! `WorkerReaper`: retires dead workers and frees what they held.
//!
//! Every check interval this check reads the project's live worker rows and
//! hands them to the [`Fleet`](crate::fleet::Fleet), which judges, across
//! every project, who is dead (see [`crate::fleet`]: by heartbeats seen to
//! change, not by the workers' clocks). Then, in bounded batches:
//! - the rows of workers judged dead go `offline`, each only if its
//!   heartbeat is still the one judged;
//! - every job a dead worker holds here goes back to the queue (or to
//!   failed, out of attempts), whichever project saw it die; a job locked
//!   by another session is released by a later run, never forgotten;
//! - now and then (at start, every `MONITOR_HEALTH_LOG_EVERY`, and while
//!   some wait for confirmation) the holders of jobs with no live row
//!   here (offline, or never registered) are judged too.
//!
//! Each release counts as an attempt of the job, as for stuck jobs.

use std::time::Instant;

use actix::Message;

use crate::alerts::Alert;
use crate::check::{Check, Gate, Reporting, RunContext, Running};
use crate::database::{Database, DbError};
use crate::events::Event;
use crate::fleet::{Judge, Skew};
use crate::kind::ChildKind;
use crate::report::{alert_batch, sample, summarize};
use crate::sql::{self, BATCH, ForeignDeath, ReleasedJob};

/// Workers found dead by someone else (an operator's action on the
/// dashboard), for every project to free their jobs.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct WorkersDied {
    pub from: String,
    pub deaths: Vec<ForeignDeath>,
}

/// What one run did.
#[derive(Debug, Default)]
pub struct Reaping {
    /// Workers whose rows here were marked offline, sorted.
    pub marked: Vec<String>,
    /// Jobs put back in the queue (or failed).
    pub released: Vec<ReleasedJob>,
    /// Workers newly found with a skewed clock.
    pub skews: Vec<Skew>,
    /// Dead workers whose jobs here are still held (locked rows).
    pub still_owed: usize,
    /// A statement failed after others made progress: kept, and the rest
    /// is done by the next run.
    pub cut_short: Option<DbError>,
}

/// The check.
#[derive(Debug, Default)]
pub struct WorkerReaper {
    last_sweep: Option<Instant>,
}

impl WorkerReaper {
    pub fn new() -> Self {
        WorkerReaper::default()
    }
}

/// The thresholds the fleet judges by, from the settings.
pub fn judge(cx: &RunContext) -> Judge {
    let s = &cx.settings;
    Judge::new(s.dead_worker_after, s.check_interval, s.statement_timeout)
}

impl Check for WorkerReaper {
    const KIND: ChildKind = ChildKind::WorkerReaper;
    const GATE: Gate = Gate::WhenActing;
    const USES_FEATURES: bool = true;
    type Outcome = Reaping;

    fn run_once(&mut self, db: &Database, cx: &RunContext) -> impl Running<Self::Outcome> {
        let (db, cx) = (db.clone(), cx.clone());
        let sweep = self
            .last_sweep
            .is_none_or(|t| t.elapsed() >= cx.settings.health_log_every)
            || cx.fleet.holders_pending(db.project());
        if sweep {
            self.last_sweep = Some(Instant::now());
        }
        async move {
            let attempts = cx.features.get(&db, &cx.settings).await?.attempts;
            let (project, judge) = (db.project().to_string(), judge(&cx));
            let read = sql::read_workers(&db).await?;
            cx.fleet.observe(&project, &read);
            drop(read);
            let judged = cx.fleet.judge(&project, &judge);
            let mut out = Reaping {
                skews: judged.skews,
                ..Reaping::default()
            };
            let steps = async {
                if sweep {
                    let holders: Vec<String> = sql::holders_without_live_row(&db).await?;
                    cx.fleet.judge_holders(&project, &holders, &judge);
                }
                for batch in judged.to_mark.chunks(BATCH) {
                    out.marked.extend(sql::mark_offline(&db, batch).await?);
                }
                for batch in cx.fleet.owed(&project).chunks(BATCH) {
                    let r = sql::release_jobs_of(&db, batch, attempts.as_ref()).await?;
                    let paid: Vec<String> = batch
                        .iter()
                        .filter(|w| r.remaining.binary_search(w).is_err())
                        .cloned()
                        .collect();
                    cx.fleet.paid(&project, &paid);
                    out.released.extend(r.released);
                }
                Ok::<(), DbError>(())
            };
            if let Err(e) = steps.await {
                if out.marked.is_empty() && out.released.is_empty() {
                    return Err(e);
                }
                out.cut_short = Some(e);
            }
            out.still_owed = cx.fleet.owed(&project).len();
            Ok(out)
        }
    }

    fn on_success(&mut self, out: Reaping, to: &Reporting<'_>) {
        for skew in &out.skews {
            report_skew(skew, to);
        }
        if let Some(e) = &out.cut_short {
            log::warn!(environment = to.project, error = e.to_string().as_str();
                "Reaping cut short: what was done is kept, the rest is done on the next run");
        }
        if out.marked.is_empty() && out.released.is_empty() {
            return;
        }
        let failed = out.released.iter().filter(|j| j.failed).count() as u64;
        to.state.update(to.project, |p| {
            p.workers_reaped += out.marked.len() as u64;
            p.jobs_released += out.released.len() as u64 - failed;
            p.jobs_failed += failed;
        });
        let (local, elsewhere): (Vec<_>, Vec<_>) = out.released.into_iter().partition(|j| {
            j.worker
                .as_ref()
                .is_some_and(|w| out.marked.binary_search(w).is_ok())
        });
        if !out.marked.is_empty() {
            report_dead(&out.marked, &local, to);
        } else if !local.is_empty() {
            log::warn!(environment = to.project, count = local.len(), jobs:serde = summarize(sample(&local));
                "💀 Released jobs of workers found dead");
        }
        if !elsewhere.is_empty() {
            let message = "💀 Released jobs of workers found dead in another environment";
            let mut workers: Vec<&str> = elsewhere
                .iter()
                .filter_map(|j| j.worker.as_deref())
                .collect();
            workers.dedup();
            log::warn!(
                environment = to.project,
                count = elsewhere.len(),
                workers:serde = sample(&workers),
                jobs:serde = summarize(sample(&elsewhere));
                "{message}"
            );
            to.state
                .event(Event::new(to.project, "jobs_released", message).jobs(sample(&elsewhere)));
            alert_batch(to, "jobs_released", message, &elsewhere);
        }
    }
}

/// Logs, records and alerts the workers marked offline and their jobs.
fn report_dead(dead: &[String], jobs: &[ReleasedJob], to: &Reporting<'_>) {
    let message = "💀 Cleaned up dead workers";
    log::warn!(
        environment = to.project,
        count = dead.len(),
        workers:serde = sample(dead),
        releasedCount = jobs.len(),
        releasedJobs:serde = summarize(sample(jobs));
        "{message}"
    );
    let event = Event::new(to.project, "workers_reaped", message);
    to.state
        .event(event.workers(sample(dead)).jobs(sample(jobs)));
    if dead.len() as u64 >= to.settings.alert_min_resets {
        let text = format!("[{}] {message}: {}", to.project, sample(dead).join(", "));
        let summary = serde_json::to_value(summarize(sample(jobs))).unwrap_or_default();
        to.state.alert(
            Alert::new(to.project, "workers_reaped", text)
                .field("count", dead.len())
                .field("workers", sample(dead).to_vec())
                .field("releasedJobs", summary),
        );
    }
}

/// Says, once per worker, that its clock is off.
fn report_skew(skew: &Skew, to: &Reporting<'_>) {
    let message = "⚠️  Worker clock skew";
    let offset = skew.offset.round() as i64;
    let ahead = if offset > 0 { "ahead of" } else { "behind" };
    log::warn!(
        environment = skew.project.as_str(),
        worker = skew.worker.as_str(),
        offsetSeconds = offset;
        "{message}: {} is {}s {ahead} the database; judged by its heartbeats changing, not their values",
        skew.worker, offset.abs()
    );
    to.state.update(&skew.project, |p| p.skewed_workers += 1);
    let text = format!(
        "[{}] {message}: {} is {}s {ahead} the database",
        skew.project,
        skew.worker,
        offset.abs()
    );
    to.state
        .event(Event::new(&skew.project, "worker_clock_skew", &text));
    to.state.alert(
        Alert::new(&skew.project, "worker_clock_skew", text)
            .field("worker", skew.worker.clone())
            .field("offsetSeconds", offset),
    );
}
