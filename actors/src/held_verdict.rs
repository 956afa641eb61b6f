//! The jobs dead workers hold, listed by the health check's pass over the
//! table.
//!
//! Without the index on the workers' jobs (`sql/indexes.sql`), finding the
//! jobs of a worker found dead is a pass over the table. Where the table
//! has none of the indexes, the health check makes such a pass every run
//! anyway (it counts exactly, in one pass): as it goes, it lists the
//! processing jobs of the workers the fleet says are owed here (found
//! dead, their jobs not yet freed). The `WorkerReaper` then releases those
//! by primary key, each judged again under lock, without a pass of its
//! own:
//! - a worker the last pass asked about: its jobs are the ones listed (none
//!   listed: it holds none);
//! - a worker the pass under way asks about (a pass over a large table
//!   takes a while, and the two checks tick apart): freed next run, from
//!   that pass's list;
//! - a worker found dead in this very run: freed after the next pass, an
//!   interval or two later;
//! - anything else (no pass within an interval and a half, as when the
//!   health check fails or probes by the indexes; a list cut at its cap;
//!   a worker owed from before that the pass did not ask about): the
//!   reaper looks itself.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::sql::BATCH;

/// The workers a pass asked about, and when it began.
#[derive(Debug)]
struct Asked {
    began: Instant,
    workers: BTreeSet<String>,
}

impl Asked {
    fn covers(&self, workers: &[String], max_age: Duration) -> bool {
        self.began.elapsed() <= max_age && workers.iter().all(|w| self.workers.contains(w))
    }
}

/// The last pass done, and the one under way.
#[derive(Debug, Default)]
struct Passes {
    done: Option<(Asked, Vec<String>)>,
    under_way: Option<Asked>,
}

/// What the passes say of some workers' jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// These are all the processing jobs the workers held (ids, maybe
    /// none, maybe others' too: the release judges each again).
    Listed(Vec<String>),
    /// The pass under way asks about them: its list comes next run.
    UnderWay,
    /// A recent pass did not ask about them: the next one will.
    NextPass,
    /// No recent pass to go by.
    Unknown,
}

/// The passes' lists; cheap to clone, shared by a project's checks.
#[derive(Debug, Clone, Default)]
pub struct HeldVerdict {
    passes: Arc<Mutex<Passes>>,
}

impl HeldVerdict {
    /// A pass begins at `began`, asking about the workers `asked`.
    pub fn begin(&self, began: Instant, asked: Vec<String>) {
        let workers = asked.into_iter().collect();
        self.lock().under_way = Some(Asked { began, workers });
    }

    /// The pass begun at `began` listed `held`.
    pub fn record(&self, began: Instant, held: Vec<String>) {
        let mut passes = self.lock();
        if let Some(asked) = passes.under_way.take_if(|a| a.began == began) {
            passes.done = Some((asked, held));
        }
    }

    /// What the passes begun within `max_age` say of `workers`' jobs.
    pub fn of(&self, workers: &[String], max_age: Duration) -> Held {
        let passes = self.lock();
        let done = passes.done.as_ref().filter(|(_, held)| held.len() <= BATCH);
        let recent = |a: &Asked| a.began.elapsed() <= max_age;
        match (done, &passes.under_way) {
            (Some((asked, held)), _) if asked.covers(workers, max_age) => {
                Held::Listed(held.clone())
            }
            (_, Some(asked)) if asked.covers(workers, max_age) => Held::UnderWay,
            (Some((asked, _)), _) if recent(asked) => Held::NextPass,
            (_, Some(asked)) if recent(asked) => Held::NextPass,
            _ => Held::Unknown,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Passes> {
        self.passes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_recent_pass_answers_for_the_workers_it_asked_about() {
        let verdict = HeldVerdict::default();
        let minute = Duration::from_secs(60);
        let pass = |asked: &[&str], held: &[&str], began: Instant| {
            verdict.begin(began, names(asked));
            verdict.record(began, names(held));
        };
        assert_eq!(
            verdict.of(&names(&["a"]), minute),
            Held::Unknown,
            "no pass yet"
        );
        pass(&["a", "b"], &["j1"], Instant::now());
        assert_eq!(
            verdict.of(&names(&["a"]), minute),
            Held::Listed(names(&["j1"]))
        );
        assert_eq!(
            verdict.of(&names(&["a", "b"]), minute),
            Held::Listed(names(&["j1"]))
        );
        assert_eq!(verdict.of(&names(&["a", "c"]), minute), Held::NextPass);
        pass(&["a"], &[], Instant::now());
        assert_eq!(verdict.of(&names(&["a"]), minute), Held::Listed(Vec::new()));
        pass(&["a"], &[], Instant::now() - 2 * minute);
        assert_eq!(verdict.of(&names(&["a"]), minute), Held::Unknown, "too old");
        let cut: Vec<String> = (0..=BATCH).map(|i| format!("j{i}")).collect();
        let began = Instant::now();
        verdict.begin(began, names(&["a"]));
        verdict.record(began, cut);
        assert_eq!(
            verdict.of(&names(&["a"]), minute),
            Held::Unknown,
            "cut at its cap"
        );
    }

    #[test]
    fn a_pass_under_way_answers_next_run() {
        let verdict = HeldVerdict::default();
        let minute = Duration::from_secs(60);
        let first = Instant::now();
        verdict.begin(first, names(&["a"]));
        verdict.record(first, names(&["j1"]));
        let second = Instant::now();
        verdict.begin(second, names(&["a", "b"]));
        assert_eq!(
            verdict.of(&names(&["a"]), minute),
            Held::Listed(names(&["j1"]))
        );
        assert_eq!(verdict.of(&names(&["b"]), minute), Held::UnderWay);
        assert_eq!(verdict.of(&names(&["c"]), minute), Held::NextPass);
        // A late answer of an earlier pass does not pass for this one's.
        verdict.record(first, names(&["j9"]));
        assert_eq!(verdict.of(&names(&["b"]), minute), Held::UnderWay);
        verdict.record(second, names(&["j2"]));
        assert_eq!(
            verdict.of(&names(&["b"]), minute),
            Held::Listed(names(&["j2"]))
        );
    }
}
