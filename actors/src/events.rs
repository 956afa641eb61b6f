//! The timeline: what the monitor did and what happened to it.
//!
//! Every action and incident the checks log at WARN or alert about (stuck
//! jobs reset, workers reaped and jobs released, poison jobs failed,
//! projects unreachable and back, anomalies started and cleared) and the
//! changes of the tree itself (leadership, actor restarts, actions taken
//! from the dashboard) become an [`Event`] here, through one
//! [`MonitorState::event`] call where it happens. The timeline is a ring for
//! the whole monitor, whatever the number of projects: at most
//! [`TIMELINE_CAPACITY`] events and [`TIMELINE_BUDGET_BYTES`] of them (the
//! oldest go first); each event keeps at most [`JOBS_PER_EVENT`] jobs and
//! short texts. Watchers (the dashboard's event stream) are woken through a
//! `watch` channel when an event arrives.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::watch;

use crate::history::Action;
use crate::sql::ReleasedJob;
use crate::state::MonitorState;

/// Events kept, all projects together (the oldest go first).
pub const TIMELINE_CAPACITY: usize = 1000;
/// Memory the kept events may hold, all together (the oldest go first):
/// 1,000 events of one job take about 350 KiB; this holds 115 of the
/// largest (`actors/tests/history_memory.rs`).
pub const TIMELINE_BUDGET_BYTES: usize = 1 << 20;
/// Jobs listed in one event; `count` says how many there were.
pub const JOBS_PER_EVENT: usize = 10;
/// Workers listed in one event.
pub const WORKERS_PER_EVENT: usize = 20;
/// An event's text is cut at this many characters.
pub const TEXT_MAX_CHARS: usize = 300;
/// A worker id or document is cut at this many characters.
pub const FIELD_MAX_CHARS: usize = 80;

/// The kinds of event, with the label a person reads, in the order the
/// dashboard's filter lists them. The names are the alerts' kinds where
/// there is an alert.
pub const KINDS: [(&str, &str); 13] = [
    ("jobs_reset", "Stuck jobs reset"),
    ("ocr_jobs_reset", "Stuck OCR jobs reset"),
    ("jobs_failed", "Jobs failed out of attempts"),
    ("workers_reaped", "Workers reaped"),
    ("jobs_released", "Jobs released (worker dead elsewhere)"),
    ("unreachable", "Project unreachable"),
    ("failing", "Check failing"),
    ("recovered", "Project healthy again"),
    ("anomaly", "Anomaly started"),
    ("anomaly_cleared", "Anomaly cleared"),
    ("leadership", "Leadership change"),
    ("restart", "Actor restarted"),
    ("dashboard", "Action from the dashboard"),
];

/// A job named in an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventJob {
    pub id: String,
    pub worker: Option<String>,
    pub doc: String,
    /// How long it had been processing, in seconds.
    pub seconds: i64,
    pub attempts: Option<i64>,
    /// Sent to failed (out of attempts) rather than back to the queue.
    pub failed: bool,
}

/// One entry of the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Increasing from 1 in this process; 0 until recorded.
    pub seq: u64,
    /// When it was recorded, Unix milliseconds.
    pub at_ms: u64,
    pub project: String,
    /// One of [`KINDS`].
    pub kind: &'static str,
    /// What the log line says.
    pub text: String,
    /// Jobs concerned (more than are listed, maybe), or what else the
    /// event counts when it names no job.
    pub count: u64,
    /// Of those jobs, the ones sent to failed (out of attempts).
    pub failed: u64,
    /// Workers concerned.
    pub workers_count: u64,
    pub jobs: Vec<EventJob>,
    pub workers: Vec<String>,
}

/// `s` cut to at most `max` characters, with `…` when cut.
pub fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((i, _)) => format!("{}…", &s[..i]),
    }
}

impl Event {
    pub fn new(project: &str, kind: &'static str, text: impl AsRef<str>) -> Event {
        Event {
            seq: 0,
            at_ms: 0,
            project: project.to_string(),
            kind,
            text: cut(text.as_ref(), TEXT_MAX_CHARS),
            count: 0,
            failed: 0,
            workers_count: 0,
            jobs: Vec::new(),
            workers: Vec::new(),
        }
    }

    /// The monitor's actions this event stands for, as the history marks them.
    pub fn marks(&self) -> Vec<(Action, u64)> {
        let freed = self.count - self.failed.min(self.count);
        match self.kind {
            "jobs_reset" | "ocr_jobs_reset" => vec![(Action::Reset, self.count)],
            "jobs_failed" => vec![(Action::FailedOut, self.count)],
            "workers_reaped" => vec![
                (Action::Reap, self.workers_count),
                (Action::Release, freed),
                (Action::FailedOut, self.failed),
            ],
            "jobs_released" => vec![(Action::Release, freed), (Action::FailedOut, self.failed)],
            _ => Vec::new(),
        }
    }

    /// Names the jobs (the first [`JOBS_PER_EVENT`]) and counts them all.
    pub fn jobs(mut self, jobs: &[ReleasedJob]) -> Event {
        self.count = jobs.len() as u64;
        self.failed = jobs.iter().filter(|j| j.failed).count() as u64;
        self.jobs = jobs
            .iter()
            .take(JOBS_PER_EVENT)
            .map(|j| EventJob {
                id: cut(&j.id, FIELD_MAX_CHARS),
                worker: j.worker.as_deref().map(|w| cut(w, FIELD_MAX_CHARS)),
                doc: cut(&j.doc, FIELD_MAX_CHARS),
                seconds: j.seconds,
                attempts: j.attempts,
                failed: j.failed,
            })
            .collect();
        self
    }

    /// Names the workers (the first [`WORKERS_PER_EVENT`]) and counts them.
    pub fn workers<S: AsRef<str>>(mut self, workers: &[S]) -> Event {
        self.workers_count = workers.len() as u64;
        self.workers = workers
            .iter()
            .take(WORKERS_PER_EVENT)
            .map(|w| cut(w.as_ref(), FIELD_MAX_CHARS))
            .collect();
        self
    }

    /// Sets the count (when there is no list).
    pub fn count(mut self, n: u64) -> Event {
        self.count = n;
        self
    }

    /// The memory the event holds: itself and what it points to.
    pub fn weight(&self) -> usize {
        let jobs: usize = self
            .jobs
            .iter()
            .map(|j| {
                j.id.capacity() + j.doc.capacity() + j.worker.as_ref().map_or(0, String::capacity)
            })
            .sum();
        let workers: usize = self.workers.iter().map(String::capacity).sum();
        std::mem::size_of::<Event>()
            + self.project.capacity()
            + self.text.capacity()
            + self.jobs.capacity() * std::mem::size_of::<EventJob>()
            + jobs
            + self.workers.capacity() * std::mem::size_of::<String>()
            + workers
    }
}

/// The ring of events and its watchers.
#[derive(Debug)]
pub struct Timeline {
    /// The events, and the sum of their weights.
    ring: Mutex<(VecDeque<Event>, usize)>,
    last_seq: AtomicU64,
    /// The last event's `seq`, for whoever waits for news.
    changed: watch::Sender<u64>,
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline {
            ring: Mutex::new((VecDeque::new(), 0)),
            last_seq: AtomicU64::new(0),
            changed: watch::channel(0).0,
        }
    }
}

impl Timeline {
    /// Adds `event` (stamped now), dropping the oldest past the capacity or
    /// the budget.
    pub fn push(&self, event: Event) {
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.push_at(event, at_ms);
    }

    /// [`Timeline::push`] with the time given (tests).
    pub fn push_at(&self, mut event: Event, at_ms: u64) {
        let seq = {
            let mut guard = self.ring.lock().unwrap_or_else(|e| e.into_inner());
            let (ring, bytes) = &mut *guard;
            let seq = self.last_seq.fetch_add(1, Ordering::SeqCst) + 1;
            event.seq = seq;
            event.at_ms = at_ms;
            let weight = event.weight();
            while ring.len() >= TIMELINE_CAPACITY
                || (!ring.is_empty() && *bytes + weight > TIMELINE_BUDGET_BYTES)
            {
                if let Some(old) = ring.pop_front() {
                    *bytes -= old.weight();
                }
            }
            *bytes += weight;
            ring.push_back(event);
            seq
        };
        self.changed.send_replace(seq);
    }

    /// Up to `limit` events that `keep` accepts, newest first.
    pub fn recent(&self, limit: usize, keep: impl Fn(&Event) -> bool) -> Vec<Event> {
        let guard = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .0
            .iter()
            .rev()
            .filter(|e| keep(e))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Events held now.
    pub fn len(&self) -> usize {
        self.ring.lock().unwrap_or_else(|e| e.into_inner()).0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What the kept events weigh ([`Event::weight`]), all together.
    pub fn bytes(&self) -> usize {
        self.ring.lock().unwrap_or_else(|e| e.into_inner()).1
    }

    /// The `seq` of the newest event (0: none yet).
    pub fn last_seq(&self) -> u64 {
        self.last_seq.load(Ordering::SeqCst)
    }

    /// A receiver that sees each new event's `seq`.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

impl MonitorState {
    /// Adds `event` to the timeline, and marks the monitor's own actions on
    /// the project's history. Never waits for anything but a short lock.
    pub fn event(&self, event: Event) {
        let now = crate::history::unix_now();
        for (action, n) in event.marks() {
            self.history.act_at(&event.project, now, action, n);
        }
        self.timeline.push(event);
    }

    /// The timeline of events.
    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(n: usize) -> ReleasedJob {
        ReleasedJob {
            id: format!("{n:08}-0000-0000-0000-000000000000"),
            worker: Some("w".repeat(500)),
            doc: "acte:1".into(),
            seconds: 200,
            attempts: None,
            failed: false,
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_and_bounds_each_event() {
        let t = Timeline::default();
        for i in 0..(TIMELINE_CAPACITY + 5) {
            t.push_at(Event::new("dev", "anomaly", "x").count(1), i as u64);
        }
        assert_eq!(t.len(), TIMELINE_CAPACITY);
        assert_eq!(t.recent(1, |_| true)[0].seq, (TIMELINE_CAPACITY + 5) as u64);
        assert_eq!(t.recent(usize::MAX, |_| true).pop().unwrap().seq, 6);

        // The largest events: the budget, not the count, bounds them.
        let jobs: Vec<ReleasedJob> = (0..50).map(job).collect();
        for i in 0..(TIMELINE_CAPACITY + 5) {
            t.push_at(
                Event::new("dev", "jobs_reset", "x".repeat(1000)).jobs(&jobs),
                i as u64,
            );
        }
        assert!(t.len() < TIMELINE_CAPACITY / 2, "{}", t.len());
        assert!(t.bytes() <= TIMELINE_BUDGET_BYTES);
        let newest = t.recent(3, |_| true);
        assert_eq!(newest[0].seq, 2 * (TIMELINE_CAPACITY + 5) as u64);
        assert_eq!(newest[0].count, 50);
        assert_eq!(newest[0].jobs.len(), JOBS_PER_EVENT);
        assert_eq!(newest[0].text.chars().count(), TEXT_MAX_CHARS + 1);
        assert_eq!(
            newest[0].jobs[0].worker.as_ref().unwrap().chars().count(),
            FIELD_MAX_CHARS + 1
        );
    }

    #[test]
    fn a_filter_picks_by_project_and_kind() {
        let t = Timeline::default();
        t.push(Event::new("dev", "jobs_reset", "a").count(1));
        t.push(Event::new("prod", "jobs_reset", "b").count(1));
        t.push(Event::new("prod", "anomaly", "c"));
        let prod_resets = t.recent(10, |e| e.project == "prod" && e.kind == "jobs_reset");
        assert_eq!(prod_resets.len(), 1);
        assert_eq!(prod_resets[0].text, "b");
    }

    #[test]
    fn watchers_see_new_events_and_actions_reach_the_history() {
        let state = MonitorState::new();
        let mut rx = state.timeline().subscribe();
        assert!(!rx.has_changed().unwrap());
        let released = ReleasedJob {
            failed: true,
            ..job(1)
        };
        state.event(
            Event::new("dev", "workers_reaped", "💀")
                .workers(&["a", "b"])
                .jobs(&[job(0), released]),
        );
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), 1);
        let now = crate::history::unix_now();
        let hour = state.history().series("dev", now + 1).hour;
        assert_eq!(hour.len(), 1);
        assert_eq!(
            (hour[0].reaps, hour[0].releases, hour[0].failed_out),
            (2, 1, 1)
        );
    }

    #[test]
    fn cut_counts_characters_not_bytes() {
        assert_eq!(cut("ééé", 2), "éé…");
        assert_eq!(cut("abc", 3), "abc");
    }
}
