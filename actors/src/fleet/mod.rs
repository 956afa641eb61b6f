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
mod skew;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use crate::sql::workers::{WorkerRead, WorkerRow};
pub use sighting::{Judge, Sighting, Verdict};
pub use skew::{SKEW_TOLERANCE, Skew};

/// At most this many skewed workers are corrected for (the most skewed).
pub const MAX_CORRECTED: usize = 100;

/// At most this many workers are named to the stuck rule as alive, for
/// the grace: beyond, the statement would grow with the fleet.
pub const MAX_NAMED: usize = 1000;

/// What is known of a worker besides its rows.
#[derive(Debug, Default)]
struct Worker {
    skew_reported: bool,
    /// Its death was announced.
    announced: bool,
}

#[derive(Debug, Default)]
struct Inner {
    /// Per project: its live worker rows, as last read. Kept per project so
    /// that a project's run looks at its own rows only, whatever the size
    /// of the others.
    sightings: BTreeMap<String, HashMap<String, Sighting>>,
    /// Every worker with a row somewhere (and those whose last row just
    /// went, until their death is announced).
    workers: HashMap<String, Worker>,
    /// Workers whose clock is off beyond the tolerance: the bound that
    /// makes their jobs look youngest.
    offsets: BTreeMap<String, f64>,
    /// Workers whose last live row left the reads: dead, to announce.
    gone: Vec<String>,
    /// Per project: jobs' holders with no live row, since when.
    unknown_holders: HashMap<String, HashMap<String, Instant>>,
    /// Per project: dead workers whose jobs there may not all be free.
    owed: BTreeMap<String, BTreeSet<String>>,
    /// Projects read at least once.
    read: BTreeSet<String>,
    skews: Vec<Skew>,
}

impl Inner {
    /// A worker's verdict over every project that has a row of it.
    fn verdict(&self, id: &str, judge: &Judge, now: Instant) -> Verdict {
        sighting::fold(
            self.sightings
                .values()
                .filter_map(|rows| rows.get(id))
                .map(|s| s.verdict(judge, now)),
        )
    }

    fn has_row(&self, id: &str) -> bool {
        self.sightings.values().any(|rows| rows.contains_key(id))
    }
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
    /// Workers alive now (for the live-worker grace), when asked for.
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
        let mut guard = self.lock();
        let inner = &mut *guard;
        inner.read.insert(project.to_string());
        let mut before = inner.sightings.remove(project).unwrap_or_default();
        let mut rows = HashMap::with_capacity(read.rows.len());
        for row in &read.rows {
            let (sighting, bounds) = match before.remove(&row.id) {
                None => {
                    // A heartbeat ahead of the database is skew at once;
                    // an old one may just be a dead worker's.
                    let low = sighting::seconds(row.hb.as_deref()).map(|h| h - read.now);
                    let s = Sighting::new(row.hb.clone(), now, read.now);
                    (s, low.map(|low| (low, f64::INFINITY)))
                }
                Some(mut s) => {
                    let mut bounds = None;
                    if s.heartbeat != row.hb {
                        bounds = sighting::seconds(row.hb.as_deref())
                            .map(|h| (h - read.now, h - s.last_read_db));
                        s.heartbeat = row.hb.clone();
                        s.changed_at = Some(now);
                    }
                    s.last_read = now;
                    s.last_read_db = read.now;
                    (s, bounds)
                }
            };
            let worker = inner.workers.entry(row.id.clone()).or_default();
            if let Some((low, high)) = bounds
                && let Some(skew) = skew::note_offset(
                    &mut inner.offsets,
                    &mut worker.skew_reported,
                    &row.id,
                    low,
                    high,
                )
            {
                inner.skews.push(Skew {
                    project: project.to_string(),
                    ..skew
                });
            }
            rows.insert(row.id.clone(), sighting);
        }
        inner.sightings.insert(project.to_string(), rows);
        // Rows gone from the read: the worker is offline here.
        for (id, _) in before {
            if !inner.has_row(&id) {
                inner.gone.push(id);
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
        let mut guard = self.lock();
        let inner = &mut *guard;
        let mut judged = Judged {
            skews: std::mem::take(&mut inner.skews),
            ..Judged::default()
        };
        // Workers whose last row went: dead, unless a row came back.
        for id in std::mem::take(&mut inner.gone) {
            if inner.has_row(&id) {
                continue;
            }
            inner.offsets.remove(&id);
            if let Some(w) = inner.workers.remove(&id)
                && !w.announced
            {
                judged.died.push(id);
            }
        }
        let mut revived = Vec::new();
        if let Some(rows) = inner.sightings.get(project) {
            for (id, s) in rows {
                let verdict = inner.verdict(id, judge, now);
                let Some(w) = inner.workers.get_mut(id) else {
                    continue;
                };
                match verdict {
                    // Seen alive after all (its project was out of reach):
                    // its jobs are no longer owed.
                    Verdict::Alive if w.announced => {
                        w.announced = false;
                        revived.push(id.clone());
                    }
                    Verdict::Dead => {
                        judged.to_mark.push((id.clone(), s.heartbeat.clone()));
                        if !w.announced {
                            w.announced = true;
                            judged.died.push(id.clone());
                        }
                    }
                    _ => {}
                }
            }
        }
        for owed in inner.owed.values_mut() {
            for id in &revived {
                owed.remove(id);
            }
        }
        if inner.workers.capacity() > 2 * inner.workers.len() + 64 {
            inner.workers.shrink_to_fit();
        }
        judged.to_mark.sort();
        judged.died.sort();
        owe(inner, &judged.died);
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
            if inner.has_row(id) {
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

    /// What the stuck-job rule needs, now; the live workers only when
    /// `alive` is asked for (the grace), since it means looking at all.
    pub fn view(&self, judge: &Judge, alive: bool) -> WorkerView {
        self.view_at(judge, alive, Instant::now())
    }

    pub(crate) fn view_at(&self, judge: &Judge, alive: bool, now: Instant) -> WorkerView {
        let inner = self.lock();
        let mut view = WorkerView {
            offsets: inner.offsets.iter().map(|(w, o)| (w.clone(), *o)).collect(),
            stale_after: Some(judge.dead_after),
            alive: Vec::new(),
        };
        view.offsets
            .sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0)));
        view.offsets.truncate(MAX_CORRECTED);
        if alive {
            view.alive = inner
                .workers
                .keys()
                .filter(|id| inner.verdict(id, judge, now) == Verdict::Alive)
                .take(MAX_NAMED)
                .cloned()
                .collect();
            view.alive.sort();
        }
        view
    }

    /// How many of `project`'s rows belong to workers alive now (their
    /// heartbeat seen to change, or fresh as written), or `None` before
    /// its first read.
    pub fn alive_in(&self, project: &str, judge: &Judge) -> Option<u64> {
        let now = Instant::now();
        let inner = self.lock();
        if !inner.read.contains(project) {
            return None;
        }
        let rows = inner.sightings.get(project)?;
        let alive = rows
            .iter()
            .filter(|(id, s)| {
                !s.unconfirmed(judge) && inner.verdict(id, judge, now) == Verdict::Alive
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

#[cfg(test)]
mod tests;
