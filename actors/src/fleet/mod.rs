//! `Fleet`: which workers are alive, across every project, as the monitor
//! saw them; which died; and whose jobs each project still owes the queue.
//!
//! Workers heartbeat in one project but take jobs from all of them, and the
//! same worker id can have rows in several projects. So liveness is judged
//! here, once for the whole tree, from every project's reads (see
//! [`sighting`] for what one read says): a worker is dead only when no
//! project has seen it alive. Each death is announced once, and from then
//! on every project owes the queue the jobs that worker holds there, until
//! a run finds none left (a job locked by another session when a run came
//! is released by a later run, never forgotten).
//!
//! Heartbeats that change also give each worker's clock offset: a
//! heartbeat written between two reads was written, by the database's
//! clock, between their two `now()`s. A worker whose offset is beyond
//! [`SKEW_TOLERANCE`] is reported once, and the stuck-job rule corrects
//! its jobs' written start times by it.
//!
//! Shared by every project's checks through the
//! [`MonitorState`](crate::MonitorState); touched a few times per run.

pub mod sighting;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Deserialize;

pub use sighting::{Judge, Sighting, Verdict};

/// Clock offsets within this many seconds are heartbeat jitter, not skew.
pub const SKEW_TOLERANCE: f64 = 30.0;

/// At most this many skewed workers are corrected for (the most skewed).
pub const MAX_CORRECTED: usize = 100;

/// At most this many workers are named to the stuck rule as alive, for
/// the grace: beyond, the statement would grow with the fleet.
pub const MAX_NAMED: usize = 1000;

/// One worker row as read ([`crate::sql::read_workers`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WorkerRow {
    pub id: String,
    /// `last_heartbeat` as epoch seconds, exactly as printed.
    pub hb: Option<String>,
}

/// A read of a project's live worker rows, stamped by its database.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct WorkerRead {
    /// The database's `now()`, epoch seconds.
    pub now: f64,
    pub rows: Vec<WorkerRow>,
}

/// A worker whose clock is off, as reported.
#[derive(Debug, Clone, PartialEq)]
pub struct Skew {
    pub project: String,
    pub worker: String,
    /// Seconds ahead of the database (negative: behind), the bound
    /// nearest zero.
    pub offset: f64,
}

/// A worker, over all projects.
#[derive(Debug, Default)]
struct Worker {
    sightings: HashMap<String, Sighting>,
    /// Its clock's offset, when beyond the tolerance: the bound that makes
    /// its jobs look youngest.
    offset: Option<f64>,
    skew_reported: bool,
    /// Its death was announced.
    announced: bool,
}

#[derive(Debug, Default)]
struct Inner {
    workers: HashMap<String, Worker>,
    /// Per project: jobs' holders with no live row, since when.
    unknown_holders: HashMap<String, HashMap<String, Instant>>,
    /// Per project: dead workers whose jobs there may not all be free.
    owed: BTreeMap<String, BTreeSet<String>>,
    /// Projects read at least once.
    read: BTreeSet<String>,
    skews: Vec<Skew>,
}

/// What a project's reaper does after a read.
#[derive(Debug, Default)]
pub struct Judged {
    /// Its rows to mark offline, with the heartbeat they were judged on.
    pub to_mark: Vec<(String, Option<String>)>,
    /// Deaths announced now (their jobs are owed in every project).
    pub died: Vec<String>,
    /// Workers newly found with a skewed clock.
    pub skews: Vec<Skew>,
}

/// What the stuck-job rule needs to know of the workers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerView {
    /// Skewed workers' offsets, seconds (largest first, bounded).
    pub offsets: Vec<(String, f64)>,
    /// The dead threshold, when the clocks of workers not in `offsets` are
    /// unknown: a job whose worker's live row has a heartbeat older than
    /// this waits (a slow clock would pass for a stuck job; a dead worker's
    /// job is the reaper's once the row goes offline).
    pub stale_after: Option<Duration>,
    /// Workers alive now (for the live-worker grace).
    pub alive: Vec<String>,
}

/// The fleet; cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct Fleet {
    inner: Mutex<Inner>,
}

impl Fleet {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a project, so that it owes the jobs of every death
    /// announced from now on.
    pub fn add_project(&self, project: &str) {
        self.lock().owed.entry(project.to_string()).or_default();
    }

    /// Whether the project's workers were read since start.
    pub fn has_read(&self, project: &str) -> bool {
        self.lock().read.contains(project)
    }

    /// Takes in a read of `project`'s live rows (status not `offline`).
    /// A worker whose row left the read (marked offline, or deleted) and
    /// that no other project sees is announced dead by the next
    /// [`Fleet::judge`].
    pub fn observe(&self, project: &str, read: &WorkerRead) {
        self.observe_at(project, read, Instant::now());
    }

    pub(crate) fn observe_at(&self, project: &str, read: &WorkerRead, now: Instant) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        inner.read.insert(project.to_string());
        let mut present = BTreeSet::new();
        for row in &read.rows {
            present.insert(row.id.as_str());
            let worker = inner.workers.entry(row.id.clone()).or_default();
            match worker.sightings.get_mut(project) {
                None => {
                    let s = Sighting::new(row.hb.clone(), now, read.now);
                    worker.sightings.insert(project.to_string(), s);
                    // A heartbeat ahead of the database is skew at once; an
                    // old one may just be a dead worker's.
                    if let Some(h) = sighting::seconds(row.hb.as_deref()) {
                        let (low, high) = (h - read.now, f64::INFINITY);
                        note_offset(worker, project, &row.id, low, high, &mut inner.skews);
                    }
                }
                Some(s) => {
                    let mut bounds = None;
                    if s.heartbeat != row.hb {
                        if let Some(h) = sighting::seconds(row.hb.as_deref()) {
                            bounds = Some((h - read.now, h - s.last_read_db));
                        }
                        s.heartbeat = row.hb.clone();
                        s.changed_at = Some(now);
                    }
                    s.last_read = now;
                    s.last_read_db = read.now;
                    if let Some((low, high)) = bounds {
                        note_offset(worker, project, &row.id, low, high, &mut inner.skews);
                    }
                }
            }
        }
        // Rows gone from the read: the worker is offline here.
        let gone: Vec<String> = inner
            .workers
            .iter()
            .filter(|(id, w)| w.sightings.contains_key(project) && !present.contains(id.as_str()))
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            if let Some(w) = inner.workers.get_mut(&id) {
                w.sightings.remove(project);
            }
        }
    }

    /// Judges `project`'s workers after its read: which rows to mark
    /// offline, which deaths to announce (once each, into every project's
    /// owed set), and the skew found since the last call.
    pub fn judge(&self, project: &str, judge: &Judge) -> Judged {
        self.judge_at(project, judge, Instant::now())
    }

    pub(crate) fn judge_at(&self, project: &str, judge: &Judge, now: Instant) -> Judged {
        let mut inner = self.lock();
        let mut judged = Judged {
            skews: std::mem::take(&mut inner.skews),
            ..Judged::default()
        };
        let (mut forget, mut revived) = (Vec::new(), Vec::new());
        for (id, w) in inner.workers.iter_mut() {
            let verdict = sighting::fold(w.sightings.values().map(|s| s.verdict(judge, now)));
            if verdict == Verdict::Alive && w.announced {
                // Seen alive after all (its project was out of reach): its
                // jobs are no longer owed.
                w.announced = false;
                revived.push(id.clone());
            }
            let dead = verdict == Verdict::Dead || (w.sightings.is_empty() && !w.announced);
            if !dead {
                continue;
            }
            if let Some(s) = w.sightings.get(project) {
                judged.to_mark.push((id.clone(), s.heartbeat.clone()));
            }
            if !w.announced {
                w.announced = true;
                judged.died.push(id.clone());
            }
            if w.sightings.is_empty() {
                forget.push(id.clone());
            }
        }
        for id in &forget {
            inner.workers.remove(id);
        }
        // After a mass death, do not keep room for a hundred thousand.
        if inner.workers.capacity() > 2 * inner.workers.len() + 64 {
            inner.workers.shrink_to_fit();
        }
        for owed in inner.owed.values_mut() {
            for id in &revived {
                owed.remove(id);
            }
        }
        judged.to_mark.sort();
        judged.died.sort();
        owe(&mut inner, &judged.died);
        judged
    }

    /// Judges the holders of `project`'s processing jobs that have no live
    /// row there (offline, or never registered): a holder no project sees
    /// alive, seen so for the confirmation time, is dead. Returns the
    /// deaths announced now.
    pub fn judge_holders(&self, project: &str, holders: &[String], judge: &Judge) -> Vec<String> {
        self.judge_holders_at(project, holders, judge, Instant::now())
    }

    pub(crate) fn judge_holders_at(
        &self,
        project: &str,
        holders: &[String],
        judge: &Judge,
        now: Instant,
    ) -> Vec<String> {
        let mut inner = self.lock();
        let before = inner.unknown_holders.remove(project).unwrap_or_default();
        let mut still = HashMap::new();
        let mut died = Vec::new();
        for id in holders {
            if let Some(w) = inner.workers.get(id)
                && !w.sightings.is_empty()
            {
                continue; // a live row somewhere: judged by its heartbeat
            }
            let since = before.get(id).copied().unwrap_or(now);
            if now.saturating_duration_since(since) >= judge.confirm {
                died.push(id.clone());
            } else {
                still.insert(id.clone(), since);
            }
        }
        inner.unknown_holders.insert(project.to_string(), still);
        died.sort();
        owe(&mut inner, &died);
        died
    }

    /// Whether holders of `project`'s jobs wait for their confirmation.
    pub fn holders_pending(&self, project: &str) -> bool {
        self.lock()
            .unknown_holders
            .get(project)
            .is_some_and(|h| !h.is_empty())
    }

    /// Announces deaths decided elsewhere (an operator's action).
    pub fn died(&self, workers: &[String]) {
        owe(&mut self.lock(), workers);
    }

    /// The dead workers whose jobs `project` may still hold, sorted.
    pub fn owed(&self, project: &str) -> Vec<String> {
        let inner = self.lock();
        inner
            .owed
            .get(project)
            .map(|o| o.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Forgets the debts `project` has paid: these workers hold no
    /// processing job there any more.
    pub fn paid(&self, project: &str, workers: &[String]) {
        let mut inner = self.lock();
        if let Some(owed) = inner.owed.get_mut(project) {
            for w in workers {
                owed.remove(w);
            }
        }
    }

    /// What the stuck-job rule needs, now.
    pub fn view(&self, judge: &Judge) -> WorkerView {
        self.view_at(judge, Instant::now())
    }

    pub(crate) fn view_at(&self, judge: &Judge, now: Instant) -> WorkerView {
        let inner = self.lock();
        let mut view = WorkerView::default();
        for (id, w) in &inner.workers {
            let verdict = sighting::fold(w.sightings.values().map(|s| s.verdict(judge, now)));
            if verdict == Verdict::Alive {
                view.alive.push(id.clone());
            }
            if let Some(offset) = w.offset {
                view.offsets.push((id.clone(), offset));
            }
        }
        view.offsets
            .sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0)));
        view.offsets.truncate(MAX_CORRECTED);
        view.alive.sort();
        view.alive.truncate(MAX_NAMED);
        view.stale_after = Some(judge.dead_after);
        view
    }

    /// How many of `project`'s rows belong to workers alive now, or
    /// `None` before its first read.
    pub fn alive_in(&self, project: &str, judge: &Judge) -> Option<u64> {
        let now = Instant::now();
        let inner = self.lock();
        if !inner.read.contains(project) {
            return None;
        }
        let alive = inner
            .workers
            .values()
            .filter(|w| w.sightings.contains_key(project))
            .filter(|w| {
                sighting::fold(w.sightings.values().map(|s| s.verdict(judge, now)))
                    == Verdict::Alive
                    && !w.sightings.values().all(|s| s.unconfirmed(judge))
            })
            .count();
        Some(alive as u64)
    }

    /// How many workers are tracked (for tests and memory checks).
    pub fn tracked(&self) -> usize {
        self.lock().workers.len()
    }
}

/// Adds deaths to every project's debts.
fn owe(inner: &mut Inner, workers: &[String]) {
    if workers.is_empty() {
        return;
    }
    for owed in inner.owed.values_mut() {
        owed.extend(workers.iter().cloned());
    }
}

/// Notes a worker's clock offset, known to lie between `low` and `high`
/// seconds: beyond the tolerance it is kept (as `low`, which makes its jobs
/// look youngest) and reported once.
fn note_offset(
    worker: &mut Worker,
    project: &str,
    id: &str,
    low: f64,
    high: f64,
    skews: &mut Vec<Skew>,
) {
    let reported = if low > SKEW_TOLERANCE {
        low
    } else if high < -SKEW_TOLERANCE {
        high
    } else {
        return;
    };
    if !low.is_finite() {
        return;
    }
    worker.offset = Some(low);
    if !worker.skew_reported {
        worker.skew_reported = true;
        skews.push(Skew {
            project: project.to_string(),
            worker: id.to_string(),
            offset: reported,
        });
    }
}

#[cfg(test)]
mod tests;
