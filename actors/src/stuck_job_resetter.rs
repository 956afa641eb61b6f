//! `StuckJobResetter`: puts jobs stuck in processing back in the queue.
//!
//! A worker that hangs or dies mid-job leaves its job in `En traitement`
//! forever. Every check interval this check looks, read-only, for jobs that
//! may be stuck ([`sql::stuck_candidates`]), unless the health check's read
//! of this interval found none or listed them ([`StuckVerdict`](crate::stuck_verdict::StuckVerdict));
//! only when it finds some does it send the write ([`sql::reset_stuck_ids`],
//! which judges each again under lock), and it logs, at WARN, what it
//! reset. In the same statement: each reset counts as an attempt (a job
//! out of attempts goes to failed, status 4), a job whose live worker is
//! still on it may get a grace, and OCR jobs stuck in status 6 go back to
//! status 3; each as the project's schema allows
//! ([`Features`](crate::features::Features)). Workers write their jobs'
//! start times with their own clocks: a worker the
//! [`Fleet`](crate::fleet::Fleet) found skewed has its jobs' times
//! corrected, and the jobs of a worker whose stale heartbeat is not judged
//! yet wait for the verdict (the reaper frees them if it is dead). A
//! standby instance does nothing.

use std::time::Instant;

use crate::check::{Check, Gate, Reporting, RunContext, Running};
use crate::database::{Database, DbError};
use crate::events::Event;
use crate::features::Allowed;
use crate::kind::ChildKind;
use crate::report::{alert_batch, summarize};
use crate::sql::{self, StuckResets};
use crate::worker_reaper::judge;

/// The stuck rules as this project's schema allows, with what the fleet
/// knows of its workers.
pub fn stuck_rules(allowed: &Allowed, cx: &RunContext) -> sql::StuckRules {
    let mut rules = allowed.stuck_rules(&cx.settings);
    rules.workers = cx.fleet.view(&judge(cx), rules.live_grace.is_some());
    rules
}

/// At most this many looks and writes a run: 10,000 jobs of each stage.
const MAX_BATCHES: usize = 10;

/// One look (unless the candidates are `listed` already) and, when it
/// found some, the write among them; with whether the look was full (more
/// may wait).
async fn reset_candidates(
    db: &Database,
    rules: &sql::StuckRules,
    indexed: bool,
    listed: Option<Vec<String>>,
) -> Result<Option<(StuckResets, bool)>, DbError> {
    let ids = match listed {
        Some(ids) => ids,
        None => sql::stuck_candidates(db, rules, indexed).await?,
    };
    if ids.is_empty() {
        return Ok(None);
    }
    let resets = sql::reset_stuck_ids(db, rules, &ids).await?;
    Ok(Some((resets, ids.len() >= sql::CANDIDATES)))
}

/// The check; what it needs is in the [`RunContext`].
#[derive(Debug, Default)]
pub struct StuckJobResetter {
    /// When the rights to write are next checked (`None`: this run).
    next_write_check: Option<Instant>,
}

impl Check for StuckJobResetter {
    const KIND: ChildKind = ChildKind::StuckJobResetter;
    const GATE: Gate = Gate::WhenActing;
    const USES_FEATURES: bool = true;
    type Outcome = StuckResets;

    fn run_once(&mut self, db: &Database, cx: &RunContext) -> impl Running<Self::Outcome> {
        let (db, cx) = (db.clone(), cx.clone());
        // Nearly every run writes nothing: a database that became
        // read-only, or a role without `UPDATE`, must still be said (and
        // make the project not ready) before a stuck job needs a write. At
        // the first run, then every `MONITOR_HEALTH_LOG_EVERY` (every run
        // while it fails: see `on_failure`).
        let now = Instant::now();
        let check_write = self.next_write_check.is_none_or(|at| now >= at);
        if check_write {
            self.next_write_check = Some(now + cx.settings.health_log_every);
        }
        async move {
            if check_write {
                sql::can_write(&db).await?;
            }
            let allowed = cx.features.get(&db, &cx.settings).await?;
            // The fleet's view needs one read of this project's workers:
            // before it, a slow clock would pass for a stuck job.
            // Without it (the workers' table unreadable) the rule runs on
            // the written times: stuck jobs come back all the same.
            if !cx.fleet.has_read(db.project())
                && let Ok(read) = sql::read_workers(&db).await
            {
                cx.fleet.observe(db.project(), &read);
            }
            let rules = stuck_rules(&allowed, &cx);
            // Nearly every run finds nothing: a read-only look says so
            // for less than the write costs. The write follows only when
            // it finds candidates, and reaches them by primary key.
            let indexed = allowed.stuck_indexed;
            // The health check's read (at most an interval and a half
            // ago: the two checks tick apart) may have looked already.
            let mut listed = cx.stuck_verdict.take(cx.settings.check_interval * 3 / 2);
            if listed.as_ref().is_some_and(Vec::is_empty) {
                return Ok(StuckResets::default());
            }
            let mut resets = StuckResets::default();
            for _ in 0..MAX_BATCHES {
                let batch = match reset_candidates(&db, &rules, indexed, listed.take()).await {
                    Ok(batch) => batch,
                    // What was reset is said; the rest waits for the next run.
                    Err(_) if !resets.jobs.is_empty() || !resets.ocr.is_empty() => break,
                    Err(e) => return Err(e),
                };
                let Some((batch, full)) = batch else { break };
                let progress = !batch.jobs.is_empty() || !batch.ocr.is_empty();
                resets.jobs.extend(batch.jobs);
                resets.ocr.extend(batch.ocr);
                if full && !progress {
                    // A full look of jobs the rule keeps (graced, locked)
                    // could hide stuck ones behind them: the whole rule.
                    let rest = sql::reset_stuck(&db, &rules).await?;
                    resets.jobs.extend(rest.jobs);
                    resets.ocr.extend(rest.ocr);
                }
                if !full || !progress {
                    break;
                }
            }
            Ok(resets)
        }
    }

    fn on_failure(&mut self, _: &DbError, _: &Reporting<'_>) {
        self.next_write_check = None;
    }

    fn on_success(&mut self, resets: StuckResets, to: &Reporting<'_>) {
        let (failed, requeued): (Vec<_>, Vec<_>) = resets.jobs.into_iter().partition(|j| j.failed);
        let (ocr_failed, ocr_requeued): (Vec<_>, Vec<_>) =
            resets.ocr.into_iter().partition(|j| j.failed);
        if requeued.is_empty()
            && failed.is_empty()
            && ocr_requeued.is_empty()
            && ocr_failed.is_empty()
        {
            return;
        }
        to.state.update(to.project, |p| {
            p.jobs_reset += requeued.len() as u64;
            p.jobs_failed += (failed.len() + ocr_failed.len()) as u64;
            p.ocr_jobs_reset += ocr_requeued.len() as u64;
        });
        let out_of_attempts = "☠️  Failed stuck jobs: out of attempts";
        let ocr_out_of_attempts = "☠️  Failed stuck OCR jobs: out of attempts";
        let batches = [
            (&requeued, "🔄 Auto-reset stuck jobs", "jobs_reset"),
            (&failed, out_of_attempts, "jobs_failed"),
            (
                &ocr_requeued,
                "🔄 Auto-reset stuck OCR jobs",
                "ocr_jobs_reset",
            ),
            (&ocr_failed, ocr_out_of_attempts, "jobs_failed"),
        ];
        for (jobs, message, kind) in batches {
            if jobs.is_empty() {
                continue;
            }
            log::warn!(
                environment = to.project,
                count = jobs.len(),
                jobs:serde = summarize(jobs);
                "{message}"
            );
            to.state
                .event(Event::new(to.project, kind, message).jobs(jobs));
            alert_batch(to, kind, message, jobs);
        }
    }
}
