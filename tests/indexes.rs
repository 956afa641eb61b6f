//! The recommended indexes of `sql/indexes.sql` apply to the real schema, and
//! with them the statements heal exactly as they do with a bare table.

mod common;

use std::time::Duration;

use common::heartbeat::Heartbeat;
use common::{Monitor, TestDb, eventually, watching};
use registre_actors::indexes;

const WAIT: Duration = Duration::from_secs(20);

/// A database with the watched tables, every recommended index, and
/// sequential scans discouraged, so the checks take the index paths.
fn indexed(tag: &str) -> TestDb {
    let mut db = TestDb::new(tag);
    for index in indexes::recommended() {
        db.exec(&index.create);
    }
    db.exec(&format!(
        "ALTER DATABASE {} SET enable_seqscan = off; ANALYZE extraction_queue",
        db.name
    ));
    db
}

/// Through the indexes: stale jobs are reset and fresh ones kept; a dead
/// worker's jobs are released in its own project and in another one; the
/// counts are right.
#[test]
fn with_the_recommended_indexes_the_checks_heal_the_same() {
    let mut home = indexed("idxhome");
    let mut other = indexed("idxother");
    home.worker("worker-dead", "busy", "10 minutes");
    home.worker("worker-live", "busy", "0 seconds");
    let _live = Heartbeat::start(&home.url, "worker-live", "0 seconds");
    let stale = home.job(2, Some("worker-live"), Some("10 minutes"), "acte:1");
    let fresh = home.job(2, Some("worker-live"), Some("1 second"), "acte:2");
    let held = home.job(2, Some("worker-dead"), Some("1 second"), "index:3");
    home.job(1, None, None, "acte:4");
    home.job(4, None, None, "acte:5");
    let held_elsewhere = other.job(2, Some("worker-dead"), Some("1 second"), "acte:6");
    let not_dead = other.job(2, Some("worker-live"), Some("1 second"), "acte:7");

    let vars = watching(
        &[("home", &home.url), ("other", &other.url)],
        &[
            ("MONITOR_STUCK_JOB_AFTER", "5m"),
            ("MONITOR_DEAD_WORKER_AFTER", "2s"),
        ],
    );
    let monitor = Monitor::start(&vars);

    let reset = monitor.wait_for(1, "🔄 Auto-reset stuck jobs", Some("home"), WAIT);
    assert_eq!(reset[0]["count"], 1);
    assert_eq!(reset[0]["jobs"][0]["id"], stale.as_str());
    let dead = monitor.wait_for(1, "💀 Cleaned up dead workers", Some("home"), WAIT);
    assert_eq!(dead[0]["workers"], serde_json::json!(["worker-dead"]));
    let freed = monitor.wait_for(1, "💀 Released jobs of dead workers", Some("other"), WAIT);
    assert_eq!(freed[0]["count"], 1);
    assert_eq!(freed[0]["jobs"][0]["id"], held_elsewhere.as_str());

    assert_eq!(home.job_status(&stale), 1);
    // Freed by the run that marked it offline, or, when the other project's
    // run judged the death first, by the next one.
    eventually("the dead worker's job released", WAIT, || {
        home.job_status(&held) == 1
    });
    assert_eq!(home.job_status(&fresh), 2);
    assert_eq!(other.job_status(&held_elsewhere), 1);
    assert_eq!(other.job_status(&not_dead), 2);

    // Counted through the status index; worker-live's heartbeat is a day
    // ahead, so it stays active whatever the test's pace.
    let health = monitor.wait_for(1, "📊 System health status", Some("home"), WAIT);
    assert_eq!(health[0]["activeWorkers"], 1);
    assert_eq!(health[0]["errorJobs"], 1);
}
