//! The health line and anomaly warnings, through the real binary.

mod common;

use std::time::Duration;

use common::{Monitor, TestDb, watching};

const WAIT: Duration = Duration::from_secs(20);

/// The status line carries its fields (`activeWorkers`, `pendingJobs`, ...); each anomaly is warned about
/// when it starts, repeated at most once per `MONITOR_HEALTH_LOG_EVERY`
/// while it lasts (not every cycle), and its end is logged at INFO.
#[test]
fn anomalies_are_warned_repeated_on_a_clock_and_cleared() {
    let mut db = TestDb::new("health");
    for n in 0..3 {
        db.job(1, None, None, &format!("acte:{n}"));
    }
    for n in 0..12 {
        db.job(4, None, None, &format!("index:{n}"));
    }
    let vars = watching(
        &[("dev", &db.url)],
        &[
            ("MONITOR_HEALTH_LOG_EVERY", "1s"),
            ("MONITOR_FAILED_JOBS_WARN", "10"),
        ],
    );
    let monitor = Monitor::start(&vars);

    let status = monitor.wait_for(1, "📊 System health status", Some("dev"), WAIT);
    assert_eq!(status[0]["level"], "INFO");
    assert_eq!(status[0]["activeWorkers"], 0);
    assert_eq!(status[0]["pendingJobs"], 3);
    assert_eq!(status[0]["processingJobs"], 0);
    assert_eq!(status[0]["errorJobs"], 12);
    let no_workers = monitor.wait_for(
        1,
        "⚠️  No active workers but jobs are pending!",
        Some("dev"),
        WAIT,
    );
    assert_eq!(no_workers[0]["level"], "WARN");
    assert_eq!(no_workers[0]["pendingJobs"], 3);
    let failed = monitor.wait_for(1, "⚠️  High number of failed jobs", Some("dev"), WAIT);
    assert_eq!(failed[0]["errorJobs"], 12);

    // Three status periods (some fifteen cycles): repeated, but on the clock.
    monitor.wait_for(4, "📊 System health status", Some("dev"), WAIT);
    let statuses = monitor.find("📊 System health status", None).len();
    let repeats = monitor.find("⚠️  No active workers", None).len();
    assert!(
        (2..=statuses + 1).contains(&repeats),
        "{repeats} warnings for {statuses} status lines"
    );

    // A worker appears, with more jobs than it can hold: one anomaly clears,
    // another starts.
    db.worker("worker-1", "busy", "0 seconds");
    for n in 0..3 {
        db.job(2, Some("worker-1"), Some("1 second"), &format!("acte:p{n}"));
    }
    let cleared = monitor.wait_for(1, "✅ Anomaly cleared", Some("dev"), WAIT);
    assert_eq!(cleared[0]["anomaly"], "no_active_workers");
    let busy = monitor.wait_for(
        1,
        "⚠️  More processing jobs than expected for active workers",
        Some("dev"),
        WAIT,
    );
    assert_eq!(busy[0]["processingJobs"], 3);
    assert_eq!(busy[0]["activeWorkers"], 1);
}

/// Between status lines the monitor only probes (whether jobs wait, failed
/// jobs up to the threshold plus one, processing jobs up to twice the
/// workers plus one), yet an anomaly that starts is warned about with the
/// exact counts of that moment, and the status line keeps its cadence with
/// exact counts.
#[test]
fn probes_between_status_lines_warn_with_exact_counts() {
    let mut db = TestDb::new("health_probes");
    for n in 0..10 {
        db.job(4, None, None, &format!("index:{n}"));
    }
    let vars = watching(
        &[("dev", &db.url)],
        &[
            ("MONITOR_HEALTH_LOG_EVERY", "1h"),
            ("MONITOR_FAILED_JOBS_WARN", "10"),
        ],
    );
    let monitor = Monitor::start(&vars);
    let status = monitor.wait_for(1, "📊 System health status", Some("dev"), WAIT);
    assert_eq!(status[0]["errorJobs"], 10);
    assert_eq!(status[0]["pendingJobs"], 0);

    // Past the threshold by three: the probe stops counting at eleven, the
    // warning says how many there are.
    for n in 10..13 {
        db.job(4, None, None, &format!("index:{n}"));
    }
    let failed = monitor.wait_for(1, "⚠️  High number of failed jobs", Some("dev"), WAIT);
    assert_eq!(failed[0]["errorJobs"], 13);

    // One job waits, nobody works: an EXISTS finds it, the exact count is
    // in the warning.
    db.job(1, None, None, "acte:1");
    db.job(1, None, None, "acte:2");
    let no_workers = monitor.wait_for(
        1,
        "⚠️  No active workers but jobs are pending!",
        Some("dev"),
        WAIT,
    );
    assert_eq!(no_workers[0]["pendingJobs"], 2);
    // The status line stays on its clock: one at start, the next in an hour.
    assert_eq!(monitor.find("📊 System health status", None).len(), 1);
    assert_eq!(
        monitor.find("⚠️  High number of failed jobs", None).len(),
        1
    );
}
