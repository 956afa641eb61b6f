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

/// The last pass done, and the one under way.
#[derive(Debug, Default)]
struct Passes {
    done: Option<(Asked, Vec<String>)>,
    under_way: Option<Asked>,
}

/// How the jobs of owed workers are to be found, by [`HeldVerdict::sort`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sorted {
    /// Workers whose jobs the last pass listed...
    pub listed: Vec<String>,
    /// ...and that list (ids, maybe none, maybe others' too: the release
    /// judges each again).
    pub held: Vec<String>,
    /// Workers no pass answers for: to be looked for.
    pub look: Vec<String>,
    /// Workers a coming pass will answer for (they stay owed), sorted.
    pub waiting: Vec<String>,
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

    /// Sorts `owed` workers by what the passes begun within `max_age` say
    /// of their jobs: listed by the last pass; asked about by the pass
    /// under way, or `found_now` (sorted) while passes run (waiting);
    /// else to look for.
    pub fn sort(&self, owed: Vec<String>, found_now: &[String], max_age: Duration) -> Sorted {
        let passes = self.lock();
        let recent = |a: &&Asked| a.began.elapsed() <= max_age;
        let done = passes
            .done
            .as_ref()
            .filter(|(a, held)| recent(&a) && held.len() <= BATCH);
        let under_way = passes.under_way.as_ref().filter(recent);
        let passes_run = done.is_some() || under_way.is_some();
        let mut sorted = Sorted::default();
        for w in owed {
            if done.is_some_and(|(a, _)| a.workers.contains(&w)) {
                sorted.listed.push(w);
            } else if under_way.is_some_and(|a| a.workers.contains(&w))
                || (passes_run && found_now.binary_search(&w).is_ok())
            {
                sorted.waiting.push(w);
            } else {
                sorted.look.push(w);
            }
        }
        if let Some((_, held)) = done.filter(|_| !sorted.listed.is_empty()) {
            sorted.held = held.clone();
        }
        sorted.waiting.sort();
        sorted
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

    fn pass(verdict: &HeldVerdict, asked: &[&str], held: &[&str], began: Instant) {
        verdict.begin(began, names(asked));
        verdict.record(began, names(held));
    }

    fn sorted(listed: &[&str], held: &[&str], look: &[&str], waiting: &[&str]) -> Sorted {
        Sorted {
            listed: names(listed),
            held: names(held),
            look: names(look),
            waiting: names(waiting),
        }
    }

    #[test]
    fn a_recent_pass_answers_for_the_workers_it_asked_about() {
        let verdict = HeldVerdict::default();
        let minute = Duration::from_secs(60);
        let sort = |owed: &[&str], now: &[&str]| verdict.sort(names(owed), &names(now), minute);
        assert_eq!(
            sort(&["a"], &["a"]),
            sorted(&[], &[], &["a"], &[]),
            "no pass yet"
        );
        pass(&verdict, &["a", "b"], &["j1"], Instant::now());
        assert_eq!(
            sort(&["a", "b"], &[]),
            sorted(&["a", "b"], &["j1"], &[], &[])
        );
        // "c" found dead now waits for the next pass; "d", owed from
        // before and not asked about, is looked for.
        assert_eq!(
            sort(&["a", "c", "d"], &["c"]),
            sorted(&["a"], &["j1"], &["d"], &["c"])
        );
        pass(&verdict, &["a"], &[], Instant::now());
        assert_eq!(sort(&["a"], &[]), sorted(&["a"], &[], &[], &[]));
        pass(&verdict, &["a"], &[], Instant::now() - 2 * minute);
        assert_eq!(
            sort(&["a", "c"], &["c"]),
            sorted(&[], &[], &["a", "c"], &[]),
            "too old"
        );
        let cut: Vec<String> = (0..=BATCH).map(|i| format!("j{i}")).collect();
        let began = Instant::now();
        verdict.begin(began, names(&["a"]));
        verdict.record(began, cut);
        assert_eq!(
            sort(&["a"], &[]),
            sorted(&[], &[], &["a"], &[]),
            "cut at its cap"
        );
    }

    #[test]
    fn a_pass_under_way_answers_next_run() {
        let verdict = HeldVerdict::default();
        let minute = Duration::from_secs(60);
        let sort = |owed: &[&str]| verdict.sort(names(owed), &[], minute);
        let first = Instant::now();
        pass(&verdict, &["a"], &["j1"], first);
        let second = Instant::now();
        verdict.begin(second, names(&["a", "b"]));
        assert_eq!(
            sort(&["a", "b", "c"]),
            sorted(&["a"], &["j1"], &["c"], &["b"])
        );
        // A late answer of an earlier pass does not pass for this one's.
        verdict.record(first, names(&["j9"]));
        assert_eq!(sort(&["b"]), sorted(&[], &[], &[], &["b"]));
        verdict.record(second, names(&["j2"]));
        assert_eq!(sort(&["b"]), sorted(&["b"], &["j2"], &[], &[]));
    }
}
