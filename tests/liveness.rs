//! Healing that nothing can stop or fool, through the real binary: a dead
//! worker's job locked when it died, workers whose clocks lie, the same
//! worker in two projects, and a hundred thousand deaths at once.

mod common;

use std::time::Duration;

use common::heartbeat::Heartbeat;
use common::http::{addr, wait_more};
use common::{Monitor, TestDb, fast};

const WAIT: Duration = Duration::from_secs(30);

fn var(name: &str, db: &TestDb) -> (String, String) {
    (
        format!("{}_SUPABASE_DB_URL", name.to_uppercase()),
        db.url.clone(),
    )
}

/// The repro: a worker silent for an hour holds two jobs; another
/// session holds one of them locked for a while. The free one comes back
/// at once; the locked one the first run after the lock is gone, though
/// the stuck threshold (an hour) would never catch it.
#[test]
fn a_dead_workers_locked_job_comes_back_once_free() {
    let mut db = TestDb::new("lv_locked");
    db.worker("gone", "busy", "1 hour");
    let [free, locked] = db.jobs([
        (2, Some("gone"), Some("1 second")),
        (2, Some("gone"), Some("1 second")),
    ]);
    let lock = db.lock_job(&locked);
    let mut vars = fast(&[
        ("MONITOR_STUCK_JOB_AFTER", "1h"),
        ("MONITOR_DEAD_WORKER_AFTER", "2s"),
    ]);
    vars.push(var("dev", &db));
    let monitor = Monitor::start(&vars);
    let dead = monitor.wait_for(1, "💀 Cleaned up dead workers", Some("dev"), WAIT);
    assert_eq!(dead[0]["workers"], serde_json::json!(["gone"]));
    assert_eq!(db.statuses(&[&free, &locked]), [1, 2]);
    // Runs go by while it is locked: still owed, never forgotten.
    wait_more(addr(&monitor), "dev", "WorkerReaper", "runs", 5);
    assert_eq!(db.job_status(&locked), 2);
    drop(lock);
    monitor.wait_for(1, "💀 Released jobs of dead workers", Some("dev"), WAIT);
    assert_eq!(db.job_status(&locked), 1);
    assert_eq!(db.field(&locked, "worker_id"), None);
}

/// A worker whose clock is five minutes slow heartbeats: it is alive, said
/// to be skewed once, and keeps its job, which its clock wrote as older
/// than the stuck threshold. One whose clock is five minutes fast is said
/// to be skewed, and once it stops, it is found dead and its job comes back.
#[test]
fn lying_clocks_are_said_and_do_not_decide() {
    let mut db = TestDb::new("lv_clocks");
    db.workers(&[
        ("slow", "busy", "5 minutes"),
        ("fast", "busy", "-5 minutes"),
    ]);
    let [slow_job, fast_job] = db.jobs([
        (2, Some("slow"), Some("5 minutes 30 seconds")),
        (2, Some("fast"), Some("-4 minutes")),
    ]);
    let slow = Heartbeat::start(&db.url, "slow", "-5 minutes");
    let fast_beat = Heartbeat::start(&db.url, "fast", "5 minutes");
    let mut vars = fast(&[
        ("MONITOR_STUCK_JOB_AFTER", "2m"),
        ("MONITOR_DEAD_WORKER_AFTER", "3s"),
    ]);
    vars.push(var("dev", &db));
    let monitor = Monitor::start(&vars);
    let skews = monitor.wait_for(2, "⚠️  Worker clock skew", Some("dev"), WAIT);
    let offset = |w: &str| {
        skews.iter().find(|l| l["worker"] == w).unwrap()["offsetSeconds"]
            .as_i64()
            .unwrap()
    };
    assert!((-310..=-260).contains(&offset("slow")), "{skews:?}");
    assert!((260..=310).contains(&offset("fast")), "{skews:?}");
    // Well past the dead threshold and its confirmation: both alive.
    wait_more(addr(&monitor), "dev", "WorkerReaper", "runs", 25);
    assert_eq!(db.statuses(&[&slow_job, &fast_job]), [2, 2]);
    assert!(monitor.find("💀", None).is_empty());
    assert!(monitor.find("🔄 Auto-reset stuck jobs", None).is_empty());
    // The fast one stops: its future heartbeat does not keep it alive.
    fast_beat.stop();
    let dead = monitor.wait_for(1, "💀 Cleaned up dead workers", Some("dev"), WAIT);
    assert_eq!(dead[0]["workers"], serde_json::json!(["fast"]));
    assert_eq!(db.statuses(&[&slow_job, &fast_job]), [2, 1]);
    assert_eq!(
        monitor.find("⚠️  Worker clock skew", None).len(),
        2,
        "once per worker"
    );
    let metrics = common::http::metrics(addr(&monitor));
    assert_eq!(
        metrics["registre_monitor_skewed_workers_total{environment=\"dev\"}"],
        2.0
    );
    slow.stop();
}

/// The same worker has a stale row in one project while it heartbeats in
/// another right now: with the grace on and its job as its current one,
/// the job is not released, and the worker is not marked offline anywhere.
#[test]
fn a_worker_alive_in_another_project_keeps_its_job() {
    let mut dev = TestDb::new("lv_two_dev");
    let mut prod = TestDb::new("lv_two_prod");
    dev.worker("w1", "busy", "1 hour");
    prod.worker("w1", "busy", "1 second");
    let job = dev.job(2, Some("w1"), Some("10 seconds"), "acte:1");
    dev.exec(&format!(
        "UPDATE worker_status SET current_job_id = '{job}'"
    ));
    let beat = Heartbeat::start(&prod.url, "w1", "0 seconds");
    let mut vars = fast(&[
        ("MONITOR_DEAD_WORKER_AFTER", "2s"),
        ("MONITOR_LIVE_WORKER_GRACE", "10m"),
    ]);
    vars.push(var("dev", &dev));
    vars.push(var("prod", &prod));
    let monitor = Monitor::start(&vars);
    let a = addr(&monitor);
    wait_more(a, "dev", "WorkerReaper", "runs", 25);
    wait_more(a, "prod", "WorkerReaper", "runs", 1);
    assert_eq!(dev.job_status(&job), 2);
    assert!(
        monitor.find("💀", None).is_empty(),
        "{:?}",
        monitor.find("💀", None)
    );
    // It dies: now it is dead everywhere, and its job comes back.
    beat.stop();
    monitor.wait_for(1, "💀", None, WAIT);
    common::eventually("the job back in the queue", WAIT, || {
        dev.job_status(&job) == 1
    });
}
