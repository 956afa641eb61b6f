//! What the demo shows: a live progress line while it runs, a summary at
//! the end.
//!
//! On a terminal the line is redrawn in place four times a second, cut to
//! the terminal's width (a wrapped line could not be redrawn in place);
//! otherwise (a pipe, a CI log) a plain line is printed every two seconds.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::sql::QueueProgress;
use registre_actors::state::ProjectState;

use super::worker::{Fate, Incident, WorkerStats};
use crate::config::duration;

/// Clears the terminal's current line.
pub const CLEAR_LINE: &str = "\r\x1b[2K";

/// `n` and the noun in the number it takes: `1 stuck job`, `2 stuck jobs`.
pub fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The terminal's width in columns: `COLUMNS` when set, else what the
/// terminal on stdout says, else 80.
pub fn terminal_width() -> usize {
    if let Some(columns) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&c| c > 0)
    {
        return columns;
    }
    // SAFETY: TIOCGWINSZ writes one `winsize` into the struct it is given.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let asked = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) };
    if asked == 0 && size.ws_col > 0 {
        usize::from(size.ws_col)
    } else {
        80
    }
}

/// `line` cut to fit in `width` columns without reaching the last one
/// (where a terminal may wrap), with `…` where it was cut.
pub fn fit(line: &str, width: usize) -> String {
    let room = width.saturating_sub(1).max(1);
    if line.chars().count() <= room {
        return line.to_string();
    }
    let mut cut: String = line.chars().take(room - 1).collect();
    cut.push('…');
    cut
}

/// The live line.
pub struct Progress {
    terminal: bool,
    jobs: u32,
}

/// Sums the workers' statistics so far.
fn totals(live: &[Arc<Mutex<WorkerStats>>]) -> (u64, u64, u64) {
    live.iter().fold((0, 0, 0), |(c, h, r), s| {
        let s = s.lock().unwrap_or_else(|e| e.into_inner());
        (c + s.crashes, h + s.hangs, r + s.ids.len() as u64 - 1)
    })
}

impl Progress {
    pub fn new(terminal: bool, jobs: u32) -> Progress {
        Progress { terminal, jobs }
    }

    /// Time between two lines.
    pub fn tick(&self) -> Duration {
        if self.terminal {
            Duration::from_millis(250)
        } else {
            Duration::from_secs(2)
        }
    }

    /// Shows the state of things.
    pub fn show(
        &mut self,
        elapsed: Duration,
        q: &QueueProgress,
        live: &[Arc<Mutex<WorkerStats>>],
        monitor: &Option<ProjectState>,
    ) {
        let (crashes, hangs, restarts) = totals(live);
        let (reset, reaped, released) = monitor.as_ref().map_or((0, 0, 0), |m| {
            (m.jobs_reset, m.workers_reaped, m.jobs_released)
        });
        let line = format!(
            "{:>5.1}s  done {}/{} (failed {})  waiting {}  processing {}  | workers: {crashes} crashed, {hangs} hung, {restarts} restarted  | monitor: {}, {}, {}",
            elapsed.as_secs_f64(),
            q.done + q.failed,
            self.jobs,
            q.failed,
            q.waiting,
            q.processing,
            count(reset, "stuck job reset", "stuck jobs reset"),
            count(reaped, "dead worker reaped", "dead workers reaped"),
            count(released, "job released", "jobs released"),
        );
        let mut out = std::io::stdout().lock();
        let _ = if self.terminal {
            write!(out, "{CLEAR_LINE}{}", fit(&line, terminal_width()))
        } else {
            writeln!(out, "{line}")
        };
        let _ = out.flush();
    }

    /// A line of its own, above the live one.
    pub fn note(&mut self, text: &str) {
        if self.terminal {
            println!("{CLEAR_LINE}{text}");
        } else {
            println!("{text}");
        }
    }

    /// Leaves the live line in place and moves below it.
    pub fn end(&mut self) {
        if self.terminal {
            println!();
        }
    }
}

/// How long one incident took to heal.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovery {
    pub incident: Incident,
    /// Crash or hang to the job back in the queue; `None`: not seen back.
    pub took: Option<Duration>,
}

/// The end of the demo, as reported.
pub struct Summary {
    pub elapsed: Duration,
    pub limit: Duration,
    pub interrupted: bool,
    pub queue: Option<QueueProgress>,
    pub workers: Vec<WorkerStats>,
    pub monitor: Option<ProjectState>,
    pub recoveries: Vec<Recovery>,
}

/// Matches each incident with the first time the monitor put its job back
/// in the queue after it (seen by whichever worker took the job next).
pub fn recoveries(workers: &[WorkerStats]) -> Vec<Recovery> {
    let releases: Vec<_> = workers.iter().flat_map(|w| &w.releases).collect();
    let mut out: Vec<Recovery> = workers
        .iter()
        .flat_map(|w| &w.incidents)
        .map(|incident| {
            let back = releases
                .iter()
                .filter(|r| r.job == incident.job && r.at >= incident.at)
                .map(|r| r.at)
                .fold(None, |min: Option<f64>, at| {
                    Some(min.map_or(at, |m| m.min(at)))
                });
            Recovery {
                incident: incident.clone(),
                took: back.map(|at| Duration::from_secs_f64(at - incident.at)),
            }
        })
        .collect();
    out.sort_by(|a, b| a.incident.at.total_cmp(&b.incident.at));
    out
}

impl Summary {
    pub fn new(
        elapsed: Duration,
        limit: Duration,
        interrupted: bool,
        queue: Option<QueueProgress>,
        workers: Vec<WorkerStats>,
        monitor: Option<ProjectState>,
    ) -> Summary {
        let recoveries = recoveries(&workers);
        Summary {
            elapsed,
            limit,
            interrupted,
            queue,
            workers,
            monitor,
            recoveries,
        }
    }

    /// Every job completed or failed for good: none waiting or processing.
    pub fn all_finished(&self) -> bool {
        !self.interrupted
            && self
                .queue
                .is_some_and(|q| q.total > 0 && q.waiting == 0 && q.processing == 0)
    }

    /// The worst recovery, if any incident was healed.
    pub fn worst(&self) -> Option<&Recovery> {
        self.recoveries
            .iter()
            .filter(|r| r.took.is_some())
            .max_by_key(|r| r.took)
    }

    pub fn render(&self) -> String {
        let secs = |d: Duration| format!("{:.1}s", d.as_secs_f64());
        let mut out = String::new();
        let q = self.queue.unwrap_or_default();
        let finished = q.done + q.failed;
        if self.all_finished() {
            let all = match q.total {
                1 => "The job finished".to_string(),
                n => format!("All {n} jobs finished"),
            };
            out.push_str(&format!(
                "{all} in {} ({} completed, {} failed after their last attempt).\n",
                secs(self.elapsed),
                q.done,
                q.failed
            ));
        } else {
            let why = if self.interrupted {
                "interrupted".to_string()
            } else {
                format!("gave up after {}", duration::show(self.limit))
            };
            out.push_str(&format!(
                "NOT every job finished ({why}): {finished} of {} finished, {} waiting, {} processing.\n",
                q.total, q.waiting, q.processing
            ));
        }
        let sum = |f: fn(&WorkerStats) -> u64| self.workers.iter().map(f).sum::<u64>();
        let restarts = self
            .workers
            .iter()
            .map(|w| w.ids.len().saturating_sub(1))
            .sum::<usize>();
        out.push_str(&format!(
            "Workers: {} crashed, {} hung, {} restarted under a new id; {} taken, {} refused.\n",
            sum(|w| w.crashes),
            sum(|w| w.hangs),
            restarts,
            count(sum(|w| w.claimed), "job", "jobs"),
            count(sum(|w| w.lost), "late finish", "late finishes"),
        ));
        if let Some(m) = &self.monitor {
            out.push_str(&format!(
                "Monitor: {}, {}, {} of their jobs released.\n",
                count(m.jobs_reset, "stuck job reset", "stuck jobs reset"),
                count(
                    m.workers_reaped,
                    "dead worker reaped",
                    "dead workers reaped"
                ),
                m.jobs_released
            ));
        }
        let healed: Vec<Duration> = self.recoveries.iter().filter_map(|r| r.took).collect();
        match self.worst() {
            Some(worst) => {
                let w = worst.took.unwrap_or_default();
                out.push_str(&format!(
                    "Recovery (crash or hang to job back in the queue): {} of {} healed, worst {} ({} of {} on job {}).\n",
                    healed.len(),
                    count(self.recoveries.len() as u64, "incident", "incidents"),
                    secs(w),
                    match worst.incident.fate {
                        Fate::Crash => "crash",
                        _ => "hang",
                    },
                    worst.incident.worker,
                    worst.incident.job,
                ));
            }
            None if self.recoveries.is_empty() => {
                out.push_str("Recovery: no worker crashed or hung while holding a job.\n")
            }
            None => {}
        }
        let unhealed = self.recoveries.len() - healed.len();
        if unhealed > 0 {
            out.push_str(&format!(
                "{} not seen back in the queue.\n",
                count(
                    unhealed as u64,
                    "incident whose job was",
                    "incidents whose jobs were"
                )
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_in_the_right_number_and_fits_the_width() {
        assert_eq!(
            count(1u64, "stuck job reset", "stuck jobs reset"),
            "1 stuck job reset"
        );
        assert_eq!(count(0u64, "job", "jobs"), "0 jobs");
        assert_eq!(count(2u32, "job", "jobs"), "2 jobs");
        assert_eq!(fit("abcdef", 80), "abcdef");
        assert_eq!(fit("abcdef", 6), "abcd…");
        assert_eq!(fit("abcdef", 6).chars().count(), 5);
        assert_eq!(fit("abcdef", 0).chars().count(), 1);
    }
}
