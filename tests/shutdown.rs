//! Shutdown cancels the statements still running on the server: a
//! statement waiting on a lock does not outlive the process (and cannot
//! commit after it). The real binary against a fresh database.

mod common;

use std::time::{Duration, Instant};

use common::{Monitor, TestDb, eventually, fast};

const WAIT: Duration = Duration::from_secs(30);

/// The monitor's statement waiting on a lock, if any: its backend's pid.
fn waiting_backend(db: &mut TestDb) -> Option<i32> {
    db.client
        .query_opt(
            "SELECT pid FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND application_name LIKE 'registre-monitor%' AND state = 'active'
               AND wait_event_type = 'Lock' AND query LIKE '%worker_status%'
             LIMIT 1",
            &[],
        )
        .unwrap()
        .map(|row| row.get(0))
}

/// Whether backend `pid` still runs a statement.
fn still_running(db: &mut TestDb, pid: i32) -> bool {
    let state: Option<String> = db
        .client
        .query_opt("SELECT state FROM pg_stat_activity WHERE pid = $1", &[&pid])
        .unwrap()
        .and_then(|row| row.get(0));
    state.as_deref() == Some("active")
}

/// The workers' table is locked by another session, so the reaper's read
/// waits on it (its statement timeout a minute away). On
/// SIGTERM the monitor cancels it: the backend stops running it at once,
/// the log says what was cancelled, the process exits 0; once the lock is
/// released, neither the worker nor its job has changed.
#[test]
fn sigterm_cancels_a_statement_waiting_on_a_lock() {
    let mut db = TestDb::new("sd_cancel");
    db.worker("w-dead", "busy", "1 hour");
    let job = db.job(2, Some("w-dead"), Some("10 seconds"), "acte:1");
    let mut holder = db.connect();
    let mut lock = holder.transaction().unwrap();
    // Every statement skips locked rows: a lock on the whole table is what
    // makes one wait (the reaper's read of the workers, the counts).
    lock.batch_execute("LOCK TABLE worker_status IN ACCESS EXCLUSIVE MODE")
        .unwrap();

    let mut vars = fast(&[
        ("MONITOR_STUCK_JOB_AFTER", "1h"),
        ("MONITOR_DEAD_WORKER_AFTER", "1m"),
        ("MONITOR_STATEMENT_TIMEOUT", "60s"),
    ]);
    vars.push(("DEV_SUPABASE_DB_URL".into(), db.url.clone()));
    let mut monitor = Monitor::start(&vars);
    let mut pid = None;
    eventually("the reaper's statement waits on the lock", WAIT, || {
        pid = waiting_backend(&mut db);
        pid.is_some()
    });
    let pid = pid.unwrap();

    monitor.signal("TERM");
    let signalled = Instant::now();
    eventually(
        "the waiting statement is cancelled",
        Duration::from_secs(5),
        || !still_running(&mut db, pid),
    );
    let gone_after = signalled.elapsed();
    eprintln!("the cancelled statement stopped running {gone_after:?} after SIGTERM");
    assert!(gone_after < Duration::from_secs(3), "{gone_after:?}");

    let status = monitor.wait_exit(WAIT).expect("the monitor exits");
    assert!(status.success(), "{status:?}");
    let cancelled = monitor.find("🛑 Cancelled the statements still running", None);
    assert_eq!(cancelled.len(), 1, "{:?}", monitor.raw_lines());
    assert_eq!(cancelled[0]["level"], "WARN");
    assert!(cancelled[0]["count"].as_u64() >= Some(1), "{cancelled:?}");
    assert_eq!(cancelled[0]["environments"], serde_json::json!(["dev"]));
    assert!(
        monitor.find("🛑 Could not cancel", None).is_empty(),
        "{:?}",
        monitor.raw_lines()
    );
    let errors = monitor.errors();
    assert!(errors.is_empty(), "{errors:?}");

    lock.rollback().unwrap();
    assert_eq!(db.job_status(&job), 2);
    assert_eq!(db.field(&job, "worker_id").as_deref(), Some("w-dead"));
    assert_eq!(
        db.text("SELECT status FROM worker_status WHERE worker_id = 'w-dead'")
            .as_deref(),
        Some("busy")
    );
}

/// A shutdown while the checks run every 200 ms: whatever was in flight
/// is cancelled quietly (no check reports it as an error), exit 0.
#[test]
fn a_shutdown_logs_no_error_for_what_it_cancelled() {
    let db = TestDb::new("sd_quiet");
    let mut vars = fast(&[("MONITOR_HEALTH_LOG_EVERY", "200ms")]);
    vars.push(("DEV_SUPABASE_DB_URL".into(), db.url.clone()));
    let mut monitor = Monitor::start(&vars);
    monitor.wait_for(3, "📊 System health status", Some("dev"), WAIT);
    monitor.signal("TERM");
    let status = monitor.wait_exit(WAIT).expect("the monitor exits");
    assert!(status.success(), "{status:?}");
    monitor.wait_for(1, "🛑 Shutting down", None, WAIT);
    let errors = monitor.errors();
    assert!(errors.is_empty(), "{errors:?}");
    assert!(monitor.find("🛑 Could not cancel", None).is_empty());
}
