//! The fleet's judgement on a clock the tests move: heartbeats that
//! change, clocks that lie, workers seen in two projects.

use std::time::{Duration, Instant};

use super::*;

const DEAD_AFTER: Duration = Duration::from_secs(120);

fn judge() -> Judge {
    Judge::new(DEAD_AFTER, Duration::from_secs(30), Duration::from_secs(10))
}

/// A read at `db_now` (database epoch seconds) of workers and heartbeats.
fn read(db_now: f64, rows: &[(&str, f64)]) -> WorkerRead {
    WorkerRead {
        now: db_now,
        rows: rows
            .iter()
            .map(|(id, hb)| WorkerRow {
                id: id.to_string(),
                hb: Some(format!("{hb:.6}")),
            })
            .collect(),
    }
}

/// Reads every 30 s for `runs` runs; the worker heartbeats (by its own
/// clock, `offset` seconds off) just before each read when `beating`.
fn watch(fleet: &Fleet, t0: Instant, runs: u64, offset: f64, beating: bool) -> Vec<Judged> {
    let db0 = 1_000_000.0;
    (0..runs)
        .map(|i| {
            let db_now = db0 + 30.0 * i as f64;
            let written = if beating { db_now - 1.0 } else { db0 - 1.0 } + offset;
            let at = t0 + Duration::from_secs(30 * i);
            fleet.observe_at("prod", &read(db_now, &[("w1", written)]), at);
            fleet.judge_at("prod", &judge(), at)
        })
        .collect()
}

fn fleet() -> Fleet {
    let fleet = Fleet::default();
    fleet.add_project("prod");
    fleet.add_project("dev");
    fleet
}

#[test]
fn a_worker_whose_heartbeat_stops_dies_once_after_the_threshold() {
    let fleet = fleet();
    let t0 = Instant::now();
    let mut runs = watch(&fleet, t0, 2, 0.0, true);
    runs.extend(watch_from(&fleet, t0, 2, 8));
    let died: Vec<usize> = runs
        .iter()
        .enumerate()
        .filter(|(_, j)| !j.died.is_empty())
        .map(|(i, _)| i)
        .collect();
    // Last change seen at run 1 (30 s); dead once 120 s have passed
    // without one: at run 6 (180 s), announced once.
    assert_eq!(died, [6]);
    assert_eq!(fleet.owed("dev"), ["w1"]);
    assert_eq!(fleet.owed("prod"), ["w1"]);
}

/// Runs `from..to` of a worker that stopped beating after run `from - 1`.
fn watch_from(fleet: &Fleet, t0: Instant, from: u64, to: u64) -> Vec<Judged> {
    let db0 = 1_000_000.0;
    let last = db0 + 30.0 * (from - 1) as f64 - 1.0;
    (from..to)
        .map(|i| {
            let at = t0 + Duration::from_secs(30 * i);
            fleet.observe_at("prod", &read(db0 + 30.0 * i as f64, &[("w1", last)]), at);
            fleet.judge_at("prod", &judge(), at)
        })
        .collect()
}

#[test]
fn a_slow_clock_is_alive_while_it_beats_and_is_reported_once() {
    let fleet = fleet();
    let runs = watch(&fleet, Instant::now(), 10, -300.0, true);
    assert!(
        runs.iter()
            .all(|j| j.died.is_empty() && j.to_mark.is_empty())
    );
    let skews: Vec<&Skew> = runs.iter().flat_map(|j| &j.skews).collect();
    assert_eq!(skews.len(), 1, "{skews:?}");
    assert!(skews[0].offset < -250.0, "{skews:?}");
    let view = fleet.view_at(&judge(), true, Instant::now() + Duration::from_secs(270));
    assert_eq!(view.offsets.len(), 1);
    assert!(view.offsets[0].1 <= -299.0, "{view:?}");
}

#[test]
fn a_fast_clock_is_reported_at_once_and_still_dies() {
    let fleet = fleet();
    let t0 = Instant::now();
    let runs = watch(&fleet, t0, 1, 300.0, true);
    assert_eq!(runs[0].skews.len(), 1);
    assert!(runs[0].skews[0].offset > 250.0);
    // It stops: its future heartbeat does not keep it alive.
    let db0 = 1_000_000.0;
    let mut died_at = None;
    for i in 1..10u64 {
        let at = t0 + Duration::from_secs(30 * i);
        fleet.observe_at(
            "prod",
            &read(db0 + 30.0 * i as f64, &[("w1", db0 - 1.0 + 300.0)]),
            at,
        );
        if !fleet.judge_at("prod", &judge(), at).died.is_empty() {
            died_at.get_or_insert(i);
        }
    }
    assert_eq!(
        died_at,
        Some(5),
        "dead 120 s after first seen, never changed"
    );
}

#[test]
fn a_stale_heartbeat_is_believed_only_after_the_confirmation_time() {
    let fleet = fleet();
    let t0 = Instant::now();
    let db0 = 1_000_000.0;
    let stale = read(db0, &[("w1", db0 - 3600.0)]);
    fleet.observe_at("prod", &stale, t0);
    assert!(fleet.judge_at("prod", &judge(), t0).died.is_empty());
    let at = t0 + Duration::from_secs(45);
    fleet.observe_at("prod", &read(db0 + 45.0, &[("w1", db0 - 3600.0)]), at);
    let judged = fleet.judge_at("prod", &judge(), at);
    assert_eq!(judged.died, ["w1"]);
    assert_eq!(
        judged.to_mark,
        [("w1".to_string(), Some(format!("{:.6}", db0 - 3600.0)))]
    );
}

#[test]
fn a_worker_alive_in_another_project_is_not_dead() {
    let fleet = fleet();
    let t0 = Instant::now();
    let db0 = 1_000_000.0;
    for i in 0..8u64 {
        let at = t0 + Duration::from_secs(30 * i);
        let db_now = db0 + 30.0 * i as f64;
        fleet.observe_at("dev", &read(db_now, &[("w1", db0 - 3600.0)]), at);
        fleet.observe_at("prod", &read(db_now, &[("w1", db_now - 1.0)]), at);
        let judged = fleet.judge_at("dev", &judge(), at);
        assert!(
            judged.died.is_empty() && judged.to_mark.is_empty(),
            "run {i}"
        );
    }
}

#[test]
fn a_row_gone_offline_is_a_death_and_debts_stay_until_paid() {
    let fleet = fleet();
    let t0 = Instant::now();
    fleet.observe_at("prod", &read(1e6, &[("w1", 1e6)]), t0);
    fleet.judge_at("prod", &judge(), t0);
    fleet.observe_at("prod", &read(1e6 + 30.0, &[]), t0 + Duration::from_secs(30));
    let judged = fleet.judge_at("prod", &judge(), t0 + Duration::from_secs(30));
    assert_eq!(judged.died, ["w1"]);
    assert!(judged.to_mark.is_empty());
    fleet.paid("prod", &["w1".to_string()]);
    assert!(fleet.owed("prod").is_empty());
    assert_eq!(fleet.owed("dev"), ["w1"]);
    assert_eq!(fleet.tracked(), 0);
}

#[test]
fn holders_without_a_row_die_after_the_confirmation_time() {
    let fleet = fleet();
    let t0 = Instant::now();
    let holders = vec!["ghost".to_string()];
    assert!(
        fleet
            .judge_holders_at("prod", &holders, &judge(), t0)
            .is_empty()
    );
    assert!(fleet.holders_pending("prod"));
    let later = t0 + Duration::from_secs(45);
    assert_eq!(
        fleet.judge_holders_at("prod", &holders, &judge(), later),
        ["ghost"]
    );
    assert!(!fleet.holders_pending("prod"));
    assert_eq!(fleet.owed("dev"), ["ghost"]);
}

#[test]
fn an_unreachable_project_keeps_its_workers_unknown() {
    let fleet = fleet();
    let t0 = Instant::now();
    fleet.observe_at("dev", &read(1e6, &[("w1", 1e6)]), t0);
    // dev is never read again; prod sees the same worker stale.
    for i in 1..12u64 {
        let at = t0 + Duration::from_secs(30 * i);
        fleet.observe_at(
            "prod",
            &read(1e6 + 30.0 * i as f64, &[("w1", 1e6 - 3600.0)]),
            at,
        );
        assert!(
            fleet.judge_at("prod", &judge(), at).died.is_empty(),
            "run {i}"
        );
    }
}
