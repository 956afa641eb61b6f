//! A hundred thousand workers dying at once, through the real binary: every
//! job comes back in both projects in bounded batches under a one-second
//! statement timeout, log lines stay short, a death after the incident is
//! still reaped, and the memory comes back down.

mod common;

use std::time::Duration;

use common::{Monitor, TestDb, fast};

const DEAD: i64 = 100_000;

fn var(name: &str, db: &TestDb) -> (String, String) {
    (
        format!("{}_SUPABASE_DB_URL", name.to_uppercase()),
        db.url.clone(),
    )
}

/// Resident memory of a process, and its peak, in kB.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[test]
fn a_hundred_thousand_deaths_are_healed_in_batches_everywhere() {
    let mut dev = TestDb::new("md_dev");
    let mut prod = TestDb::new("md_prod");
    let mut vars = fast(&[
        ("MONITOR_STUCK_JOB_AFTER", "1h"),
        ("MONITOR_DEAD_WORKER_AFTER", "2s"),
        ("MONITOR_STATEMENT_TIMEOUT", "1s"),
        ("MONITOR_CHECK_INTERVAL", "500ms"),
    ]);
    vars.push(var("dev", &dev));
    vars.push(var("prod", &prod));
    let monitor = Monitor::start(&vars);
    // Idle first, on the empty projects; then they all die at once.
    common::http::wait_more(
        common::http::addr(&monitor),
        "dev",
        "WorkerReaper",
        "runs",
        3,
    );
    let (idle_rss, _) = memory(monitor.pid());
    dev.exec(&format!(
        "INSERT INTO worker_status (worker_id, status, last_heartbeat)
           SELECT 'w-' || i, 'busy', now() - interval '1 hour' FROM generate_series(1, {DEAD}) i;
         INSERT INTO extraction_queue (status_id, worker_id, processing_started_at, document_source, document_number)
           SELECT 2, 'w-' || i, now(), 'acte', i::text FROM generate_series(1, {DEAD}) i;
         ANALYZE"
    ));
    // The same workers took jobs in prod, where they have no row.
    prod.exec(
        "INSERT INTO extraction_queue (status_id, worker_id, processing_started_at, document_source, document_number)
           SELECT 2, 'w-' || (i * 97), now(), 'acte', i::text FROM generate_series(1, 1000) i;
         ANALYZE",
    );
    let held = "SELECT count(*) FROM extraction_queue WHERE status_id = 2";
    common::eventually("every dev job back", Duration::from_secs(240), || {
        dev.count(held) == 0
    });
    common::eventually("every prod job back", Duration::from_secs(120), || {
        prod.count(held) == 0
    });
    let live = "SELECT count(*) FROM worker_status WHERE status <> 'offline'";
    common::eventually(
        "every dead worker offline",
        Duration::from_secs(120),
        || dev.count(live) == 0,
    );
    // After the incident, a worker dying in prod is reaped as any other.
    prod.worker("late", "busy", "1 hour");
    let late = prod.job(2, Some("late"), Some("1 second"), "acte:late");
    let lines = monitor.wait_for(
        1,
        "💀 Cleaned up dead workers",
        Some("prod"),
        Duration::from_secs(30),
    );
    assert_eq!(lines[0]["workers"], serde_json::json!(["late"]));
    assert_eq!(prod.job_status(&late), 1);
    let dead_lines = monitor.find("💀 Cleaned up dead workers", Some("dev"));
    let reaped: u64 = dead_lines
        .iter()
        .map(|l| l["count"].as_u64().unwrap())
        .sum();
    assert_eq!(reaped, DEAD as u64, "each death said once, counted");
    let longest = monitor.raw_lines().iter().map(String::len).max().unwrap();
    assert!(longest < 16_000, "a log line of {longest} bytes");
    let (rss, peak) = memory(monitor.pid());
    eprintln!("memory: idle {idle_rss} kB, peak {peak} kB, after {rss} kB");
    assert!(
        rss < idle_rss + 40_000,
        "memory stayed up: {rss} kB after, {idle_rss} kB idle"
    );
}
