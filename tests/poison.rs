//! One bad row must not stop a project, and a reserved word works as the
//! attempts column: the real binary against fresh databases. (Every poison
//! value, statement by statement, is in `actors/tests/poison.rs`.)

mod common;

use std::time::Duration;

use common::heartbeat::Heartbeat;
use common::{Monitor, TestDb, fast};

const WAIT: Duration = Duration::from_secs(30);

fn vars_for(db: &TestDb, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    // Dead workers believed 2 s after start (see docs/operations.md).
    let mut vars = fast(&[&[("MONITOR_DEAD_WORKER_AFTER", "2s")], extra].concat());
    vars.push(("DEV_SUPABASE_DB_URL".into(), db.url.clone()));
    vars
}

/// Runs the binary with `args`; returns (exit code, stdout and stderr).
fn run(args: &[&str], db: &TestDb) -> (i32, String) {
    let vars = [("DEV_SUPABASE_DB_URL", db.url.as_str())];
    let (code, out, err) = common::run_binary(args, &vars, WAIT);
    (code.unwrap_or(-1), out + &err)
}

/// A project whose queue holds a counter at the integer maximum, infinite
/// and future timestamps and workers with infinite heartbeats: the running
/// monitor still resets the normal stuck job (and fails the poison one,
/// out of attempts), reaps the dead worker, counts, and logs no error;
/// `diagnose` and `reset-stuck-jobs --dry-run` work on it too.
#[test]
fn poison_rows_stop_nothing() {
    let mut db = TestDb::new("poison_run");
    let normal = db.job(2, Some("w-ok"), Some("10 minutes"), "acte:1");
    let [max, forever, future, dead_held] = db.jobs([
        (2, Some("w-hang"), Some("10 minutes")),
        (2, Some("w-hang"), Some("10 minutes")),
        (2, Some("w-hang"), Some("10 minutes")),
        (2, Some("w-past"), Some("1 second")),
    ]);
    db.exec(&format!(
        "UPDATE extraction_queue SET attemtps = 2147483647 WHERE id = '{max}';
         UPDATE extraction_queue SET processing_started_at = '-infinity' WHERE id = '{forever}';
         UPDATE extraction_queue SET processing_started_at = 'infinity', updated_at = 'infinity'
             WHERE id = '{future}';
         INSERT INTO extraction_queue (status_id, document_source, document_number, updated_at, error_message)
             VALUES (4, 'acte', '9', 'infinity', 'boom'), (4, 'acte', '9', '-infinity', 'boom');
         INSERT INTO worker_status (worker_id, status, last_heartbeat) VALUES
             ('w-future', 'busy', 'infinity'), ('w-past', 'busy', '-infinity')"
    ));
    let (code, out) = run(&["diagnose", "--env", "dev", "--json"], &db);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(
        &["reset-stuck-jobs", "--older-than", "5m", "--dry-run"],
        &db,
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("dev: would reset 3 jobs"), "{out}");

    // w-ok and w-hang are alive: only the stuck rule judges their jobs.
    db.workers(&[
        ("w-ok", "busy", "0 seconds"),
        ("w-hang", "busy", "0 seconds"),
    ]);
    let _beats = [
        Heartbeat::start(&db.url, "w-ok", "0 seconds"),
        Heartbeat::start(&db.url, "w-hang", "0 seconds"),
    ];
    let monitor = Monitor::start(&vars_for(
        &db,
        &[
            ("MONITOR_STUCK_JOB_AFTER", "5m"),
            ("MONITOR_HEALTH_LOG_EVERY", "200ms"),
        ],
    ));
    monitor.wait_for(1, "🔄 Auto-reset stuck jobs", Some("dev"), WAIT);
    monitor.wait_for(1, "💀 Cleaned up dead workers", Some("dev"), WAIT);
    let seen = monitor.find("📊 System health status", Some("dev")).len();
    monitor.wait_for(seen + 3, "📊 System health status", Some("dev"), WAIT);
    assert_eq!(
        db.statuses(&[&normal, &max, &forever, &future, &dead_held]),
        [1, 4, 1, 2, 1]
    );
    assert_eq!(db.field(&max, "attemtps").as_deref(), Some("2147483647"));
    assert!(monitor.errors().is_empty(), "{:?}", monitor.errors());
}

/// `MONITOR_ATTEMPTS_COLUMN=order` (a reserved word, for a column that
/// exists): the stuck rule and the reaper both count their resets in it,
/// and nothing fails.
#[test]
fn a_reserved_word_works_as_the_attempts_column() {
    let schema = format!(
        "{}\nALTER TABLE extraction_queue ADD COLUMN \"order\" integer NOT NULL DEFAULT 0;",
        common::SCHEMA
    );
    let mut db = TestDb::with_schema("order_run", &schema);
    db.worker("w-dead", "busy", "1 hour");
    let stuck = db.job(2, Some("w-ok"), Some("2 hours"), "acte:1");
    let held = db.job(2, Some("w-dead"), Some("1 second"), "acte:2");
    let monitor = Monitor::start(&vars_for(
        &db,
        &[
            ("MONITOR_ATTEMPTS_COLUMN", "order"),
            ("MONITOR_STUCK_JOB_AFTER", "1h"),
        ],
    ));
    let reset = monitor.wait_for(1, "🔄 Auto-reset stuck jobs", Some("dev"), WAIT);
    monitor.wait_for(1, "💀 Cleaned up dead workers", Some("dev"), WAIT);
    assert_eq!(reset[0]["jobs"][0]["attempts"], 1, "{reset:?}");
    for id in [&stuck, &held] {
        assert_eq!(db.job_status(id), 1);
        assert_eq!(db.field(id, "\"order\"").as_deref(), Some("1"));
        assert_eq!(db.field(id, "attemtps").as_deref(), Some("0"));
    }
    assert!(monitor.errors().is_empty(), "{:?}", monitor.errors());
}
