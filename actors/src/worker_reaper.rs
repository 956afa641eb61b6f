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
//!   by another session is released by a later run, never forgotten
//!   (without the index on the workers' jobs, found by the health check's
//!   pass over the table where it makes one, see
//!   [`held_verdict`](crate::held_verdict));
//! - now and then (at start, every `MONITOR_HEALTH_LOG_EVERY`, and while
//!   some wait for confirmation) the holders of jobs with no live row
//!   here (offline, or never registered) are judged too.
//!
//! Each release counts as an attempt of the job, as for stuck jobs.

use std::collections::BTreeSet;
use std::time::Instant;

use actix::Message;

use crate::alerts::Alert;
use crate::check::{Check, Gate, Reporting, RunContext, Running, StandingBy};
use crate::database::{Database, DbError};
use crate::events::Event;
use crate::fleet::{Judge, Skew};
use crate::held_verdict::Sorted;
use crate::kind::ChildKind;
use crate::report::{alert_batch, sample, summarize};
use crate::sql::{self, BATCH, ReleasedJob};

/// Workers found dead by someone else (an operator's action on the
/// dashboard), for every project to free their jobs.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct WorkersDied {
    pub from: String,
    /// The workers found dead.
    pub workers: Vec<String>,
}

/// What one run did.
#[derive(Debug, Default)]
pub struct Reaping {
    /// Live worker rows read.
    pub rows_read: usize,
    /// Workers whose rows here were marked offline, sorted.
    pub marked: Vec<String>,
    /// Jobs put back in the queue (or failed).
    pub released: Vec<ReleasedJob>,
    /// Workers marked now whose jobs wait for the health check's next pass
    /// (see `held_verdict`): their death is said with their jobs.
    pub waiting: Vec<String>,
    /// Workers whose jobs this run released or found none of.
    pub handled: Vec<String>,
    /// Workers newly found with a skewed clock.
    pub skews: Vec<Skew>,
    /// A statement failed after others made progress: kept, and the rest
    /// is done by the next run.
    pub cut_short: Option<DbError>,
}

/// Most batches of each kind (marks, releases) one run sends: a run stays
/// short whatever the incident, and the next one goes on.
pub const MAX_BATCHES: usize = 10;

/// The check.
#[derive(Debug, Default)]
pub struct WorkerReaper {
    last_sweep: Option<Instant>,
    /// The last dead worker whose jobs a run tried to free: the next run
    /// starts after it, so that jobs locked for long never hold up others.
    cursor: Option<String>,
    /// The last run handled an incident's worth of rows.
    was_big: bool,
    /// Workers marked offline whose death is said once their jobs are
    /// released (their jobs waited for a pass, see `held_verdict`).
    unsaid: BTreeSet<String>,
}

/// Rows (read, marked or released) that make a run an incident's: once
/// runs are small again, the memory it took is given back.
const BIG_RUN: usize = 5_000;

/// The dead workers a run frees jobs of: at most [`MAX_BATCHES`] batches,
/// starting after `cursor` and wrapping around.
fn owed_in_turn(owed: Vec<String>, cursor: Option<&str>) -> Vec<String> {
    let split = cursor.map_or(0, |c| owed.partition_point(|w| w.as_str() <= c));
    let (before, after) = owed.split_at(split);
    after
        .iter()
        .chain(before)
        .take(MAX_BATCHES * BATCH)
        .cloned()
        .collect()
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
        let owed = cx.fleet.owed(db.project());
        // A worker no longer owed came back to life: nothing to say.
        self.unsaid.retain(|w| owed.binary_search(w).is_ok());
        let owed = owed_in_turn(owed, self.cursor.as_deref());
        self.cursor = owed.last().cloned();
        async move {
            let allowed = cx.features.get(&db, &cx.settings).await?;
            let (attempts, indexed) = (allowed.attempts, allowed.processing_indexed);
            let (project, judge) = (db.project().to_string(), judge(&cx));
            let read = sql::read_workers(&db).await?;
            cx.fleet.observe(&project, &read);
            let rows_read = read.rows.len();
            drop(read);
            let judged = cx.fleet.judge(&project, &judge);
            let mut out = Reaping {
                rows_read,
                skews: judged.skews,
                ..Reaping::default()
            };
            let steps = async {
                // Deaths found now are freed now, before older debts.
                let mut found = judged.died.clone();
                if sweep {
                    let holders: Vec<String> = sql::holders_without_live_row(&db).await?;
                    found.extend(cx.fleet.judge_holders(&project, &holders, &judge));
                }
                let owed: Vec<String> = found
                    .into_iter()
                    .chain(
                        owed.into_iter()
                            .filter(|w| judged.died.binary_search(w).is_err()),
                    )
                    .take(MAX_BATCHES * BATCH)
                    .collect();
                for batch in judged.to_mark.chunks(BATCH).take(MAX_BATCHES) {
                    out.marked.extend(sql::mark_offline(&db, batch).await?);
                    out.marked.sort();
                }
                // Without the index on the workers' jobs, the health
                // check's pass may have listed them (see `held_verdict`).
                let sorted = if indexed {
                    Sorted {
                        look: owed,
                        ..Sorted::default()
                    }
                } else {
                    let max_age = cx.settings.check_interval * 3 / 2;
                    cx.held_verdict.sort(owed, &judged.died, max_age)
                };
                out.waiting = (out.marked.iter())
                    .filter(|w| sorted.waiting.binary_search(w).is_ok())
                    .cloned()
                    .collect();
                let listed = sorted.listed.chunks(BATCH).map(|b| (b, Some(&sorted.held)));
                let look = sorted.look.chunks(BATCH).map(|b| (b, None));
                for (batch, held) in listed.chain(look) {
                    let mut r = match held {
                        Some(held) => {
                            sql::release_listed(&db, batch, attempts.as_ref(), held).await?
                        }
                        None => {
                            sql::release_jobs_of(&db, batch, attempts.as_ref(), indexed).await?
                        }
                    };
                    // Sorted here: the database's collation is not Rust's order.
                    r.remaining.sort();
                    let paid: Vec<String> = batch
                        .iter()
                        .filter(|w| r.remaining.binary_search(w).is_err())
                        .cloned()
                        .collect();
                    cx.fleet.paid(&project, &paid);
                    out.released.extend(r.released);
                    out.handled.extend(batch.iter().cloned());
                }
                Ok::<(), DbError>(())
            };
            if let Err(e) = steps.await {
                if out.marked.is_empty() && out.released.is_empty() {
                    return Err(e);
                }
                out.cut_short = Some(e);
            }
            Ok(out)
        }
    }

    /// Standing by, it still reads the workers: taking over, it judges
    /// them at once instead of watching stale heartbeats from scratch.
    fn standing_by(&mut self, db: &Database, cx: &RunContext) -> Option<StandingBy> {
        let (db, fleet) = (db.clone(), cx.fleet.clone());
        Some(Box::pin(async move {
            if let Ok(read) = sql::read_workers(&db).await {
                fleet.observe(db.project(), &read);
            }
        }))
    }

    fn on_success(&mut self, out: Reaping, to: &Reporting<'_>) {
        let big = out.rows_read.max(out.marked.len()).max(out.released.len()) >= BIG_RUN;
        if self.was_big && !big {
            crate::memory::give_back();
        }
        self.was_big = big;
        for skew in &out.skews {
            report_skew(skew, to);
        }
        if let Some(e) = &out.cut_short {
            log::warn!(environment = to.project, error = e.to_string().as_str();
                "Reaping cut short: what was done is kept, the rest is done on the next run");
        }
        // Deaths whose jobs waited for a pass are said with them.
        self.unsaid.extend(out.waiting.iter().cloned());
        let mut dead: Vec<String> = (out.marked.iter())
            .filter(|w| !self.unsaid.contains(*w))
            .cloned()
            .collect();
        for w in &out.handled {
            if self.unsaid.remove(w) {
                dead.push(w.clone());
            }
        }
        dead.sort();
        if dead.is_empty() && out.marked.is_empty() && out.released.is_empty() {
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
                .is_some_and(|w| dead.binary_search(w).is_ok())
        });
        if !dead.is_empty() {
            report_dead(&dead, &local, to);
        }
        if !elsewhere.is_empty() {
            let message = "💀 Released jobs of dead workers";
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debts_are_taken_in_turn() {
        let owed: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(owed_in_turn(owed.clone(), None), ["a", "b", "c"]);
        assert_eq!(owed_in_turn(owed.clone(), Some("a")), ["b", "c", "a"]);
        assert_eq!(owed_in_turn(owed.clone(), Some("c")), ["a", "b", "c"]);
        let many: Vec<String> = (0..MAX_BATCHES * BATCH + 5)
            .map(|i| format!("w{i:06}"))
            .collect();
        assert_eq!(owed_in_turn(many, None).len(), MAX_BATCHES * BATCH);
    }
}
