//! One worker's heartbeat row in one project, as the monitor saw it across
//! runs, and what it says of the worker.
//!
//! Workers write `last_heartbeat` with their own clocks, so a written value
//! says little by itself: a host whose clock is slow looks dead while it
//! works, one whose clock is fast never looks dead. What cannot lie is a
//! change: a heartbeat that changed since the last read was written in
//! between. So a worker is alive while the monitor sees its heartbeat change
//! within the dead threshold. Until a first change is seen, the written
//! value is trusted once it has been watched long enough for a live worker
//! (which heartbeats every 10 to 30 s) to have changed it.

use std::time::{Duration, Instant};

/// What the monitor concludes about a worker from one or more sightings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Alive,
    Dead,
    /// Not read recently enough to say (the project is unreachable).
    Unknown,
}

/// The thresholds a verdict uses.
#[derive(Debug, Clone, Copy)]
pub struct Judge {
    /// `MONITOR_DEAD_WORKER_AFTER`.
    pub dead_after: Duration,
    /// How long an unchanged heartbeat is watched before its written value
    /// is believed: longer than a live worker's heartbeat period.
    pub confirm: Duration,
    /// A sighting not refreshed for this long says nothing about now.
    pub stale_after: Duration,
}

/// Most a live worker waits between two heartbeats, with margin.
pub const CONFIRM_CAP: Duration = Duration::from_secs(45);

impl Judge {
    pub fn new(
        dead_after: Duration,
        check_interval: Duration,
        statement_timeout: Duration,
    ) -> Self {
        Judge {
            dead_after,
            confirm: dead_after.min(CONFIRM_CAP),
            stale_after: check_interval * 3 + statement_timeout,
        }
    }
}

/// One worker row of one project.
#[derive(Debug, Clone)]
pub struct Sighting {
    /// The written heartbeat (epoch seconds as the database printed it,
    /// so that a guarded update can match it exactly), `None` when null.
    pub heartbeat: Option<String>,
    /// When it was first read, and when a change of it was last seen.
    pub first_seen: Instant,
    pub changed_at: Option<Instant>,
    /// When it was last read, on the monitor's monotonic clock and on the
    /// project database's clock (epoch seconds).
    pub last_read: Instant,
    pub last_read_db: f64,
}

/// `heartbeat` as epoch seconds (`Infinity` reads as infinite).
pub fn seconds(heartbeat: Option<&str>) -> Option<f64> {
    heartbeat.and_then(|h| h.trim().parse::<f64>().ok())
}

impl Sighting {
    pub fn new(heartbeat: Option<String>, at: Instant, db_now: f64) -> Self {
        Sighting {
            heartbeat,
            first_seen: at,
            changed_at: None,
            last_read: at,
            last_read_db: db_now,
        }
    }

    /// How old the written heartbeat is by the database's clock at the
    /// last read (infinite when null).
    pub fn written_age(&self) -> f64 {
        match seconds(self.heartbeat.as_deref()) {
            Some(h) => self.last_read_db - h,
            None => f64::INFINITY,
        }
    }

    /// Whether it had been seen dead at `at`.
    fn dead_at(&self, judge: &Judge, at: Instant) -> bool {
        if let Some(changed) = self.changed_at {
            return at.saturating_duration_since(changed) > judge.dead_after;
        }
        let watched = at.saturating_duration_since(self.first_seen);
        watched >= judge.confirm
            && (self.written_age() > judge.dead_after.as_secs_f64() || watched > judge.dead_after)
    }

    /// The verdict now: judged at the last read when that is too old to
    /// speak for now, where only an earlier death still counts.
    pub fn verdict(&self, judge: &Judge, now: Instant) -> Verdict {
        let stale = now.saturating_duration_since(self.last_read) > judge.stale_after;
        match (
            stale,
            self.dead_at(judge, if stale { self.last_read } else { now }),
        ) {
            (_, true) => Verdict::Dead,
            (false, false) => Verdict::Alive,
            (true, false) => Verdict::Unknown,
        }
    }

    /// Whether the written heartbeat is stale while the worker has not
    /// been judged yet: its jobs wait for the verdict rather than being
    /// judged by a clock that may be wrong.
    pub fn unconfirmed(&self, judge: &Judge) -> bool {
        self.changed_at.is_none() && self.written_age() > judge.dead_after.as_secs_f64()
    }
}

/// Folds the verdicts of a worker's sightings: alive anywhere is alive;
/// otherwise dead only when every project says so.
pub fn fold(verdicts: impl IntoIterator<Item = Verdict>) -> Verdict {
    let mut result = None;
    for v in verdicts {
        result = Some(match (result, v) {
            (_, Verdict::Alive) => return Verdict::Alive,
            (Some(Verdict::Unknown), _) | (_, Verdict::Unknown) => Verdict::Unknown,
            _ => Verdict::Dead,
        });
    }
    result.unwrap_or(Verdict::Unknown)
}
