//! The monitor heals a real queue: the real binary against fresh databases.

mod common;

use std::time::Duration;

use common::heartbeat::Heartbeat;
use common::{Monitor, TestDb, watching};

const WAIT: Duration = Duration::from_secs(20);

/// Stale processing jobs go back to waiting with the reset message, judged
/// by `processing_started_at` (or `updated_at` when that is missing), while
/// fresh processing jobs and other statuses are left alone.
#[test]
fn stale_jobs_are_reset_and_fresh_ones_left_alone() {
    let mut db = TestDb::new("stale");
    let stale = db.job(2, Some("worker-ac"), Some("10 minutes"), "index:12345");
    let fresh = db.job(2, Some("worker-ac"), Some("1 second"), "acte:67890");
    let no_start = db.job(2, Some("worker-zz"), None, "plan_cadastraux:7");
    db.exec(&format!(
        "UPDATE extraction_queue SET updated_at = now() - interval '1 hour' WHERE id = '{no_start}'"
    ));
    let pending = db.job(1, None, None, "acte:1");
    let done = db.job(3, Some("worker-ac"), Some("2 hours"), "acte:2");

    let vars = watching(&[("dev", &db.url)], &[("MONITOR_STUCK_JOB_AFTER", "5m")]);
    let monitor = Monitor::start(&vars);
    let lines = monitor.wait_for(1, "🔄 Auto-reset stuck jobs", Some("dev"), WAIT);

    let line = &lines[0];
    assert_eq!(line["level"], "WARN");
    assert_eq!(line["count"], 2);
    let jobs = line["jobs"].as_array().unwrap();
    let ids: Vec<&str> = jobs.iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert!(
        ids.contains(&stale.as_str()) && ids.contains(&no_start.as_str()),
        "{line}"
    );
    assert!(
        jobs.iter()
            .any(|j| j["worker"] == "worker-ac" && j["doc"] == "index:12345"),
        "{line}"
    );

    for id in [&stale, &no_start] {
        assert_eq!(db.job_status(id), 1);
        let row = db.client.query_one(
            "SELECT worker_id, processing_started_at IS NULL, error_message FROM extraction_queue WHERE id::text = $1",
            &[id],
        ).unwrap();
        assert_eq!(row.get::<_, Option<String>>(0), None);
        assert!(row.get::<_, bool>(1));
        assert_eq!(
            row.get::<_, String>(2),
            "Auto-reset by health monitor - exceeded processing time limit"
        );
    }
    // A few more cycles: nothing else moves.
    monitor.wait_for(1, "📊 System health status", Some("dev"), WAIT);
    let addr = common::http::addr(&monitor);
    common::http::wait_more(addr, "dev", "StuckJobResetter", "runs", 3);
    assert_eq!(db.job_status(&fresh), 2);
    assert_eq!(db.job_status(&pending), 1);
    assert_eq!(db.job_status(&done), 3);
    assert_eq!(monitor.find("🔄 Auto-reset stuck jobs", None).len(), 1);
}

/// A worker silent for longer than the dead threshold goes offline and every
/// processing job it holds comes back, reported once however many cycles
/// pass; a live worker and its job are untouched. The second worker is alive
/// at start and dies during the run: the threshold is the database's clock.
#[test]
fn dead_workers_go_offline_and_their_jobs_come_back_reported_once() {
    let mut db = TestDb::new("dead");
    db.worker("worker-dead", "busy", "10 minutes");
    db.worker("worker-live", "busy", "0 seconds");
    db.worker("worker-dies", "idle", "0 seconds");
    db.worker("worker-gone", "offline", "1 day");
    let held_a = db.job(2, Some("worker-dead"), Some("1 second"), "acte:1");
    let held_b = db.job(2, Some("worker-dead"), Some("1 second"), "index:2");
    let live_job = db.job(2, Some("worker-live"), Some("1 second"), "acte:3");

    let vars = watching(
        &[("dev", &db.url)],
        &[
            ("MONITOR_DEAD_WORKER_AFTER", "2s"),
            ("MONITOR_HEALTH_LOG_EVERY", "200ms"),
        ],
    );
    let monitor = Monitor::start(&vars);

    // The live worker keeps heartbeating; the one that dies does not.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let beat = {
        let (url, stop) = (db.url.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                c.batch_execute("UPDATE worker_status SET last_heartbeat = now() WHERE worker_id = 'worker-live'").unwrap();
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };

    // Each death is said once, with the jobs it held. The worker silent
    // since before the start is believed after the dead threshold (its
    // heartbeat could have come from a slow clock); the one alive at start
    // dies once it has been silent that long: both about 2 s in.
    let dead_workers = |m: &Monitor| -> Vec<String> {
        let mut all: Vec<String> = m
            .find("💀 Cleaned up dead workers", Some("dev"))
            .iter()
            .flat_map(|l| l["workers"].as_array().unwrap().clone())
            .map(|w| w.as_str().unwrap().to_string())
            .collect();
        all.sort();
        all
    };
    common::eventually("both deaths said", WAIT, || {
        dead_workers(&monitor).len() >= 2
    });
    assert_eq!(dead_workers(&monitor), ["worker-dead", "worker-dies"]);
    let released: usize = monitor
        .find("💀 Cleaned up dead workers", Some("dev"))
        .iter()
        .map(|l| l["releasedJobs"].as_array().unwrap().len())
        .sum();
    assert_eq!(released, 2);
    for id in [&held_a, &held_b] {
        assert_eq!(db.job_status(id), 1);
        let msg = db.field(id, "error_message");
        assert_eq!(
            msg.as_deref(),
            Some("Released by health monitor - worker worker-dead is dead")
        );
    }

    // Many more cycles (a status line each): nobody is reported again.
    let seen = monitor.find("📊 System health status", None).len();
    monitor.wait_for(seen + 10, "📊 System health status", Some("dev"), WAIT);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    beat.join().unwrap();

    assert_eq!(dead_workers(&monitor), ["worker-dead", "worker-dies"]);
    let status = |db: &mut TestDb, w: &str| {
        db.text(&format!(
            "SELECT status FROM worker_status WHERE worker_id = '{w}'"
        ))
        .unwrap()
    };
    assert_eq!(status(&mut db, "worker-dead"), "offline");
    assert_eq!(status(&mut db, "worker-dies"), "offline");
    assert_eq!(status(&mut db, "worker-live"), "busy");
    assert_eq!(db.job_status(&live_job), 2);
}

/// Workers heartbeat in one project and take jobs from all: a worker found
/// dead in project A has its processing job in project B released.
#[test]
fn a_worker_dead_in_one_project_frees_its_jobs_in_another() {
    let mut home = TestDb::new("home");
    let mut other = TestDb::new("other");
    home.worker("worker-ac", "busy", "10 minutes");
    // worker-zz heartbeats in home and works in other: alive.
    home.worker("worker-zz", "busy", "0 seconds");
    let _zz = Heartbeat::start(&home.url, "worker-zz", "0 seconds");
    let held = other.job(2, Some("worker-ac"), Some("5 seconds"), "acte:42");
    let someone_else = other.job(2, Some("worker-zz"), Some("5 seconds"), "acte:43");

    let vars = watching(
        &[("home", &home.url), ("other", &other.url)],
        &[("MONITOR_DEAD_WORKER_AFTER", "2s")],
    );
    let monitor = Monitor::start(&vars);

    monitor.wait_for(1, "💀 Cleaned up dead workers", Some("home"), WAIT);
    let freed = monitor.wait_for(1, "💀 Released jobs of dead workers", Some("other"), WAIT);
    assert_eq!(freed[0]["count"], 1);
    assert_eq!(freed[0]["jobs"][0]["id"], held.as_str());
    assert_eq!(other.job_status(&held), 1);
    assert_eq!(other.job_status(&someone_else), 2);
}

/// A project whose database refuses connections is reported once, at
/// ERROR, and retried; the good project is healed all the same.
#[test]
fn an_unreachable_project_does_not_stop_the_others() {
    let mut good = TestDb::new("good");
    let stale = good.job(2, Some("worker-ac"), Some("10 minutes"), "acte:1");

    let vars = watching(
        &[
            ("good", &good.url),
            ("down", "postgres://postgres:hunter2@127.0.0.1:1/nowhere"),
        ],
        &[
            ("MONITOR_STUCK_JOB_AFTER", "1s"),
            ("MONITOR_HEALTH_LOG_EVERY", "200ms"),
        ],
    );
    let monitor = Monitor::start(&vars);

    monitor.wait_for(1, "🔄 Auto-reset stuck jobs", Some("good"), WAIT);
    assert_eq!(good.job_status(&stale), 1);
    // Later jobs still get healed while the other project keeps failing.
    let later = good.job(2, Some("worker-ac"), Some("10 minutes"), "acte:2");
    monitor.wait_for(2, "🔄 Auto-reset stuck jobs", Some("good"), WAIT);
    assert_eq!(good.job_status(&later), 1);
    let seen = monitor.find("📊 System health status", Some("good")).len();
    monitor.wait_for(seen + 5, "📊 System health status", Some("good"), WAIT);

    let errors: Vec<_> = monitor
        .logs()
        .into_iter()
        .filter(|l| l["level"] == "ERROR" && l["environment"] == "down")
        .collect();
    assert_eq!(errors.len(), 1, "the outage is reported once: {errors:?}");
    let text = errors[0]["message"].as_str().unwrap();
    assert!(
        text.contains("unreachable") && text.contains("refused"),
        "{text}"
    );
    let retries = monitor
        .logs()
        .into_iter()
        .filter(|l| l["environment"] == "down" && l["level"] == "DEBUG")
        .count();
    assert!(retries >= 1, "the down project is retried");
    assert!(!monitor.logged("hunter2"), "password in the logs");
}

/// A backend killed under the monitor costs at most one failed run: the
/// next cycle works on a fresh connection. The pool's own `Connection
/// error` line (and every line the driver writes) names the project.
#[test]
fn a_killed_backend_is_replaced_on_the_next_cycle() {
    let mut db = TestDb::new("kill");
    let vars = watching(
        &[("dev", &db.url)],
        &[
            ("MONITOR_STUCK_JOB_AFTER", "1s"),
            ("MONITOR_HEALTH_LOG_EVERY", "200ms"),
            // The driver's and the pool's own lines too.
            ("RUST_LOG", "debug"),
        ],
    );
    let monitor = Monitor::start(&vars);
    monitor.wait_for(1, "📊 System health status", Some("dev"), WAIT);

    assert!(db.kill_backends() >= 1, "the monitor held a connection");
    let stale = db.job(2, Some("worker-ac"), Some("10 minutes"), "acte:1");
    monitor.wait_for(1, "🔄 Auto-reset stuck jobs", Some("dev"), WAIT);
    assert_eq!(db.job_status(&stale), 1);
    let lost = monitor.wait_for(1, "Connection error: ", None, WAIT);
    assert_eq!(lost[0]["environment"], "dev", "{lost:?}");
    assert_eq!(lost[0]["level"], "WARN", "{lost:?}");
    let unnamed: Vec<_> = monitor
        .logs()
        .into_iter()
        .filter(|l| {
            l["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("tokio_postgres") || t.starts_with("deadpool"))
        })
        .filter(|l| l["environment"] != "dev")
        .collect();
    assert!(
        unnamed.is_empty(),
        "driver lines without the project: {unnamed:?}"
    );
}

/// SIGTERM ends the process cleanly, with exit code 0, well within 10 s,
/// even while a project is unreachable.
#[test]
fn sigterm_exits_zero_within_ten_seconds() {
    let db = TestDb::new("term");
    let vars = watching(
        &[
            ("dev", &db.url),
            ("down", "postgres://postgres@127.0.0.1:1/nowhere"),
        ],
        &[],
    );
    let mut monitor = Monitor::start(&vars);
    monitor.wait_for(1, "📊 System health status", Some("dev"), WAIT);
    monitor.signal("TERM");
    let status = monitor
        .wait_exit(Duration::from_secs(10))
        .expect("exited within 10 s");
    assert_eq!(status.code(), Some(0));
    monitor.wait_for(1, "🛑 Shutting down", None, WAIT);
}
