//! What the dashboard's memory costs: the history of 3 and of 100 projects,
//! each filled with two days of counts and actions (more than its rings
//! hold), and the timeline filled with its worst events. Measured by a
//! counting allocator: the bytes live after filling, minus before.
//! `cargo test -p registre-actors --test history_memory -- --nocapture`
//! prints the figures.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use registre_actors::events::{
    Event, FIELD_MAX_CHARS, JOBS_PER_EVENT, TEXT_MAX_CHARS, TIMELINE_BUDGET_BYTES,
    TIMELINE_CAPACITY, Timeline,
};
use registre_actors::history::{Action, COARSE_SLOTS, FINE_SLOTS, History, Point};
use registre_actors::sql::{HealthCounts, ReleasedJob};

thread_local! {
    /// Bytes allocated and not yet freed by this thread: the test harness's
    /// other threads (printing, starting tests) do not count.
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

/// Adds `bytes` to this thread's count (nothing once the thread is ending).
fn count(bytes: isize) {
    let _ = LIVE.try_with(|live| live.set(live.get() + bytes));
}

struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// One measure at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn live() -> isize {
    LIVE.with(Cell::get)
}

const T0: u64 = 1_800_000_000;

/// What another thread of the test harness may allocate during a measure.
const SLACK: isize = 1024;

/// `days` of a count every 10 s and an action every minute, per project.
fn fill(history: &History, projects: &[String], days: u64) {
    for step in 0..days * 86_400 / 10 {
        let t = T0 + step * 10;
        let counts = HealthCounts {
            active_workers: step % 20,
            pending_jobs: step % 5000,
            processing_jobs: step % 40,
            error_jobs: step % 300,
        };
        for p in projects {
            history.count_at(p, t, &counts);
            if step % 6 == 0 {
                history.act_at(p, t, Action::Reset, 2);
            }
        }
    }
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("project_{i:03}")).collect()
}

/// The history costs 20,736 bytes of rings a project (a few more for its
/// map entry), however long it runs: two days of counts take no more than
/// one.
#[test]
fn history_memory_at_3_and_100_projects_is_bounded() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(std::mem::size_of::<Point>(), 32);
    let rings = (FINE_SLOTS + COARSE_SLOTS) * std::mem::size_of::<Point>();
    for n in [3, 100] {
        let projects = names(n);
        let before = live();
        let history = History::default();
        fill(&history, &projects, 1);
        let one_day = live() - before;
        fill(&history, &projects, 2);
        let two_days = live() - before;
        assert!(
            (two_days - one_day).abs() < SLACK,
            "the history grew with time: {one_day} then {two_days}"
        );
        assert_eq!(history.bytes(), n * rings);
        let per_project = one_day as f64 / n as f64;
        assert!(
            per_project < rings as f64 * 1.1,
            "{per_project} bytes a project"
        );
        drop(history);
        assert!((live() - before).abs() < SLACK, "not freed whole");
        // Printed after measuring: the captured output is allocated too.
        eprintln!(
            "history, {n} projects: {one_day} bytes ({:.1} KiB, {per_project:.0} bytes a project; rings alone {rings})",
            one_day as f64 / 1024.0
        );
    }
}

/// The timeline holds at most 1,000 events and 1 MiB of them for the
/// whole monitor, whatever the number of projects: filled with its largest
/// events (every text and field at its cut, 10 jobs and 20 workers each)
/// and then three times more, it stays within its budget plus the ring's
/// own slots; with typical events (one job each) it holds all 1,000.
#[test]
fn timeline_memory_is_bounded_whatever_happens() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let long = "x".repeat(10 * TEXT_MAX_CHARS);
    let job = |i: usize| ReleasedJob {
        id: format!("{i:08}-0000-4000-8000-000000000000"),
        worker: Some("w".repeat(10 * FIELD_MAX_CHARS)),
        doc: "d".repeat(10 * FIELD_MAX_CHARS),
        seconds: 600,
        attempts: Some(2),
        failed: false,
    };
    let jobs: Vec<ReleasedJob> = (0..50).map(job).collect();
    let workers: Vec<String> = (0..50).map(|_| "w".repeat(10 * FIELD_MAX_CHARS)).collect();
    let projects = names(100);
    // The ring's slots, at most: its buffer of events grows by doubling.
    let slots = (TIMELINE_CAPACITY.next_power_of_two() * std::mem::size_of::<Event>()) as isize;
    let worst = |i: usize| {
        Event::new(&projects[i % projects.len()], "workers_reaped", &long)
            .workers(&workers)
            .jobs(&jobs)
    };

    let before = live();
    let timeline = Timeline::default();
    for i in 0..(4 * TIMELINE_CAPACITY) {
        timeline.push(worst(i));
    }
    let worst_bytes = live() - before;
    let worst_events = timeline.len();
    drop(timeline);
    assert!(timeline_bound(worst_bytes, slots), "{worst_bytes} bytes");

    let before = live();
    let timeline = Timeline::default();
    for i in 0..(2 * TIMELINE_CAPACITY) {
        timeline.push(
            Event::new(&projects[i % 3], "jobs_reset", "🔄 Auto-reset stuck jobs").jobs(&[
                ReleasedJob {
                    worker: Some("worker-4f2a".into()),
                    doc: "acte:1234567".into(),
                    ..job(i)
                },
            ]),
        );
    }
    let typical_bytes = live() - before;
    assert_eq!(timeline.len(), TIMELINE_CAPACITY);
    drop(timeline);
    assert!(
        timeline_bound(typical_bytes, slots),
        "{typical_bytes} bytes"
    );
    eprintln!(
        "timeline: largest events {worst_bytes} bytes ({:.2} MiB, {worst_events} events of {JOBS_PER_EVENT} jobs and 20 workers); \
         typical events {typical_bytes} bytes ({:.0} KiB, {TIMELINE_CAPACITY} events of one job)",
        worst_bytes as f64 / 1048576.0,
        typical_bytes as f64 / 1024.0
    );
}

/// Within the budget, plus the ring's slots, plus a KiB of slack.
fn timeline_bound(bytes: isize, slots: isize) -> bool {
    bytes <= TIMELINE_BUDGET_BYTES as isize + slots + SLACK
}
