//! Queue depth over time, per project, kept in memory for the dashboard.
//!
//! Each project has two rings of fixed capacity, allocated once when the
//! project is first counted and never grown: the last hour in slots of
//! [`FINE_STEP_SECS`] and the last 24 hours in slots of
//! [`COARSE_STEP_SECS`]. A slot keeps the highest counts seen in it (a
//! person looking back wants the peaks) and the sum of the monitor's
//! actions in it (resets, reaps, releases, jobs failed out of attempts), so
//! they can be marked on the same time axis. With the default 30 s check
//! interval every count has a slot of its own (full resolution); faster
//! checks are folded into their slot's maximum.
//!
//! Memory is `(FINE_SLOTS + COARSE_SLOTS) * size_of::<Point>()` per project
//! (20,736 bytes), whatever the run's length or the checks' pace: measured
//! by `actors/tests/history_memory.rs`.
//!
//! Nothing here touches a database: the health reporter's counts and the
//! checks' events feed it.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;

use crate::sql::HealthCounts;
use crate::state::MonitorState;

/// Width of a slot of the last hour.
pub const FINE_STEP_SECS: u64 = 10;
/// Slots of the last hour: 360 × 10 s.
pub const FINE_SLOTS: usize = 360;
/// Width of a slot of the last 24 hours.
pub const COARSE_STEP_SECS: u64 = 300;
/// Slots of the last 24 hours: 288 × 5 min.
pub const COARSE_SLOTS: usize = 288;

/// One slot: the highest counts seen in it and the actions taken in it.
/// 32 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    /// Start of the slot, Unix seconds; 0 for a slot never written.
    pub at: u32,
    pub waiting: u32,
    pub processing: u32,
    pub failed: u32,
    pub active_workers: u32,
    /// Jobs put back in the queue by the stuck-job rule (OCR included).
    pub resets: u16,
    /// Workers marked offline.
    pub reaps: u16,
    /// Jobs freed from dead workers.
    pub releases: u16,
    /// Jobs sent to failed because they ran out of attempts.
    pub failed_out: u16,
    /// Whether a count was recorded in the slot (a slot may hold only actions).
    pub counted: bool,
}

/// The monitor's actions that the history marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Reset,
    Reap,
    Release,
    FailedOut,
}

fn clamp32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn clamp16(n: u64) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

/// A fixed number of slots of a fixed width, reused in a circle.
#[derive(Debug)]
pub struct Ring {
    step: u64,
    slots: Box<[Point]>,
}

impl Ring {
    pub fn new(step: u64, slots: usize) -> Ring {
        Ring {
            step,
            slots: vec![Point::default(); slots].into_boxed_slice(),
        }
    }

    /// The slot for time `t` (Unix seconds), emptied first if it still
    /// holds an older period.
    fn slot(&mut self, t: u64) -> &mut Point {
        let start = t - t % self.step;
        let i = ((t / self.step) % self.slots.len() as u64) as usize;
        let p = &mut self.slots[i];
        if u64::from(p.at) != start {
            *p = Point {
                at: clamp32(start),
                ..Point::default()
            };
        }
        p
    }

    fn count(&mut self, t: u64, c: &HealthCounts) {
        let p = self.slot(t);
        p.waiting = p.waiting.max(clamp32(c.pending_jobs));
        p.processing = p.processing.max(clamp32(c.processing_jobs));
        p.failed = p.failed.max(clamp32(c.error_jobs));
        p.active_workers = p.active_workers.max(clamp32(c.active_workers));
        p.counted = true;
    }

    fn act(&mut self, t: u64, action: Action, n: u64) {
        let p = self.slot(t);
        let n = clamp16(n);
        let field = match action {
            Action::Reset => &mut p.resets,
            Action::Reap => &mut p.reaps,
            Action::Release => &mut p.releases,
            Action::FailedOut => &mut p.failed_out,
        };
        *field = field.saturating_add(n);
    }

    /// The written slots of the window ending at `now`, oldest first.
    pub fn points(&self, now: u64) -> Vec<Point> {
        let span = self.step * self.slots.len() as u64;
        let from = now.saturating_sub(span);
        let mut points: Vec<Point> = self
            .slots
            .iter()
            .filter(|p| p.at != 0 && u64::from(p.at) + self.step > from && u64::from(p.at) <= now)
            .copied()
            .collect();
        points.sort_by_key(|p| p.at);
        points
    }

    /// The ring's own memory (its slots).
    pub fn bytes(&self) -> usize {
        std::mem::size_of_val(&*self.slots)
    }
}

/// One project's two rings.
#[derive(Debug)]
pub struct ProjectHistory {
    pub fine: Ring,
    pub coarse: Ring,
}

impl Default for ProjectHistory {
    fn default() -> Self {
        ProjectHistory {
            fine: Ring::new(FINE_STEP_SECS, FINE_SLOTS),
            coarse: Ring::new(COARSE_STEP_SECS, COARSE_SLOTS),
        }
    }
}

/// What a chart draws: the last hour and the last 24 hours.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Series {
    pub hour: Vec<Point>,
    pub day: Vec<Point>,
}

/// Every project's history.
#[derive(Debug, Default)]
pub struct History {
    projects: Mutex<HashMap<String, ProjectHistory>>,
}

impl History {
    fn with<R>(&self, project: &str, f: impl FnOnce(&mut ProjectHistory) -> R) -> R {
        let mut all = self.projects.lock().unwrap_or_else(|e| e.into_inner());
        let h = match all.get_mut(project) {
            Some(h) => h,
            None => all.entry(project.to_string()).or_default(),
        };
        f(h)
    }

    /// Records a health count taken at `t` (Unix seconds).
    pub fn count_at(&self, project: &str, t: u64, counts: &HealthCounts) {
        self.with(project, |h| {
            h.fine.count(t, counts);
            h.coarse.count(t, counts);
        });
    }

    /// Records `n` actions taken at `t` (Unix seconds).
    pub fn act_at(&self, project: &str, t: u64, action: Action, n: u64) {
        if n == 0 {
            return;
        }
        self.with(project, |h| {
            h.fine.act(t, action, n);
            h.coarse.act(t, action, n);
        });
    }

    /// A project's last hour and last day, as of `now` (Unix seconds).
    pub fn series(&self, project: &str, now: u64) -> Series {
        let all = self.projects.lock().unwrap_or_else(|e| e.into_inner());
        all.get(project).map_or_else(Series::default, |h| Series {
            hour: h.fine.points(now),
            day: h.coarse.points(now),
        })
    }

    /// Memory held by the rings (not the map's own few bytes a project).
    pub fn bytes(&self) -> usize {
        let all = self.projects.lock().unwrap_or_else(|e| e.into_inner());
        all.values()
            .map(|h| h.fine.bytes() + h.coarse.bytes())
            .sum()
    }
}

impl MonitorState {
    /// Records the health reporter's counts in the project's history.
    pub fn counted(&self, project: &str, counts: &HealthCounts) {
        self.history.count_at(project, unix_now(), counts);
    }

    /// Every project's history.
    pub fn history(&self) -> &History {
        &self.history
    }
}

/// The current time in Unix seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(waiting: u64, active: u64) -> HealthCounts {
        HealthCounts {
            active_workers: active,
            pending_jobs: waiting,
            processing_jobs: 1,
            error_jobs: 0,
        }
    }

    #[test]
    fn a_point_is_32_bytes() {
        assert_eq!(std::mem::size_of::<Point>(), 32);
    }

    #[test]
    fn a_slot_keeps_the_peak_and_sums_actions() {
        let h = History::default();
        let t0 = 1_800_000_000;
        h.count_at("dev", t0, &counts(5, 2));
        h.count_at("dev", t0 + 3, &counts(9, 1));
        h.count_at("dev", t0 + 6, &counts(4, 3));
        h.act_at("dev", t0 + 7, Action::Reset, 2);
        h.act_at("dev", t0 + 8, Action::Reset, 1);
        h.act_at("dev", t0 + 8, Action::Reap, 1);
        let s = h.series("dev", t0 + 9);
        assert_eq!(s.hour.len(), 1);
        let p = s.hour[0];
        assert_eq!((p.waiting, p.active_workers), (9, 3));
        assert_eq!((p.resets, p.reaps, p.releases), (3, 1, 0));
        assert_eq!(s.day.len(), 1);
        assert_eq!(s.day[0].waiting, 9);
    }

    #[test]
    fn old_slots_leave_the_window_and_are_reused() {
        let h = History::default();
        let t0: u64 = 1_800_000_000;
        // Two days of a count every 10 s: the rings never grow.
        let before = {
            h.count_at("dev", t0, &counts(1, 1));
            h.bytes()
        };
        for i in 0..(2 * 24 * 360) {
            h.count_at("dev", t0 + i * 10, &counts(i, 1));
        }
        assert_eq!(h.bytes(), before);
        let now = t0 + (2 * 24 * 360 - 1) * 10;
        let s = h.series("dev", now);
        assert_eq!(s.hour.len(), FINE_SLOTS);
        assert_eq!(s.day.len(), COARSE_SLOTS);
        assert!(s.hour.windows(2).all(|w| w[0].at < w[1].at));
        assert!(u64::from(s.hour[0].at) >= now - 3600);
        // An hour of silence later, the hour is empty, the day is not.
        let s = h.series("dev", now + 3600 + 10);
        assert!(s.hour.is_empty());
        assert_eq!(s.day.len(), COARSE_SLOTS - 12);
    }

    #[test]
    fn actions_alone_make_an_uncounted_slot() {
        let h = History::default();
        h.act_at("dev", 1_800_000_000, Action::FailedOut, 70_000);
        let p = h.series("dev", 1_800_000_001).hour[0];
        assert!(!p.counted);
        assert_eq!(p.failed_out, u16::MAX);
    }
}
