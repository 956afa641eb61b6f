//! The rules beyond the plain stuck and dead-worker rules: poison jobs end
//! failed, a live worker's job may get a grace, stuck OCR jobs come back.
//! The real binary against fresh databases.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Monitor, TestDb, eventually, watching};

const WAIT: Duration = Duration::from_secs(30);

/// Settings for `db` (jobs stuck after a second), then `extra`.
fn vars_for(db: &TestDb, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let base = [
        ("MONITOR_STUCK_JOB_AFTER", "1s"),
        ("MONITOR_HEALTH_LOG_EVERY", "200ms"),
    ];
    watching(&[("dev", &db.url)], &[&base[..], extra].concat())
}

/// A worker claims the job again and hangs, as a poison job makes it do.
fn stick_again(db: &mut TestDb, id: &str) {
    db.exec(&format!(
        "UPDATE extraction_queue SET status_id = 2, worker_id = 'worker-hang',
         processing_started_at = now() - interval '10 minutes' WHERE id = '{id}' AND status_id = 1"
    ));
}

fn attempts(db: &mut TestDb, id: &str) -> i64 {
    db.count(&format!(
        "SELECT attemtps::bigint FROM extraction_queue WHERE id = '{id}'"
    ))
}

/// Lets many cycles pass (a status line each).
fn cycles(monitor: &Monitor, n: usize) {
    let seen = monitor.find("📊 System health status", Some("dev")).len();
    monitor.wait_for(seen + n, "📊 System health status", Some("dev"), WAIT);
}

/// A job that hangs its worker every time is put back twice, each reset
/// counted in `attemtps`; stuck a third time it reaches its `max_attempts`
/// (3, the default) and ends failed (status 4) with a message saying it was
/// stuck 3 times; it is never reset a fourth time.
#[test]
fn a_job_stuck_three_times_ends_failed_and_is_not_reset_again() {
    let mut db = TestDb::new("poison");
    let job = db.job(2, Some("worker-hang"), Some("10 minutes"), "acte:666");
    let other = db.job(2, Some("worker-ok"), Some("10 minutes"), "acte:1");
    db.exec(&format!(
        "UPDATE extraction_queue SET max_attempts = NULL WHERE id = '{job}'"
    ));
    let monitor = Monitor::start(&vars_for(&db, &[]));

    for n in 1..=2 {
        let lines = monitor.wait_for(n, "🔄 Auto-reset stuck jobs", Some("dev"), WAIT);
        assert_eq!(db.job_status(&job), 1, "{:?}", lines[n - 1]);
        assert_eq!(attempts(&mut db, &job), n as i64);
        stick_again(&mut db, &job);
    }
    let failed = monitor.wait_for(
        1,
        "☠️  Failed stuck jobs: out of attempts",
        Some("dev"),
        WAIT,
    );
    assert_eq!(failed[0]["level"], "WARN");
    assert_eq!(failed[0]["count"], 1);
    assert_eq!(failed[0]["jobs"][0]["id"], job.as_str());
    assert_eq!(failed[0]["jobs"][0]["attempts"], 3);
    assert_eq!(db.job_status(&job), 4);
    assert_eq!(attempts(&mut db, &job), 3);
    assert_eq!(
        db.field(&job, "error_message").as_deref(),
        Some("Failed by health monitor - stuck in processing 3 times")
    );
    // The first reset carried the other job too, counted once.
    assert_eq!(db.job_status(&other), 1);
    assert_eq!(attempts(&mut db, &other), 1);

    cycles(&monitor, 10);
    assert_eq!(db.job_status(&job), 4);
    assert_eq!(monitor.find("🔄 Auto-reset stuck jobs", None).len(), 2);
    assert_eq!(monitor.find("☠️  Failed stuck jobs", None).len(), 1);
}

/// With `MONITOR_COUNT_RESETS_AS_ATTEMPTS=false` the same job comes back to the queue every time, well past
/// its `max_attempts`, and its attempts are not touched.
#[test]
fn without_counting_a_poison_job_keeps_coming_back() {
    let mut db = TestDb::new("poisonoff");
    let job = db.job(2, Some("worker-hang"), Some("10 minutes"), "acte:666");
    let monitor = Monitor::start(&vars_for(
        &db,
        &[("MONITOR_COUNT_RESETS_AS_ATTEMPTS", "false")],
    ));
    for n in 1..=5 {
        monitor.wait_for(n, "🔄 Auto-reset stuck jobs", Some("dev"), WAIT);
        assert_eq!(db.job_status(&job), 1);
        assert_eq!(
            db.field(&job, "error_message").as_deref(),
            Some("Auto-reset by health monitor - exceeded processing time limit")
        );
        stick_again(&mut db, &job);
    }
    assert_eq!(attempts(&mut db, &job), 0);
    assert!(monitor.find("☠️", None).is_empty());
}

/// A job released because its worker died counts as an attempt too: a
/// job already at 2 of 3 attempts ends failed rather than queued.
#[test]
fn a_release_of_a_dead_workers_job_counts_as_an_attempt() {
    let mut db = TestDb::new("poisondead");
    db.worker("worker-dead", "busy", "10 minutes");
    let last_try = db.job(2, Some("worker-dead"), Some("1 second"), "acte:1");
    let first_try = db.job(2, Some("worker-dead"), Some("1 second"), "acte:2");
    db.exec(&format!(
        "UPDATE extraction_queue SET attemtps = 2 WHERE id = '{last_try}'"
    ));
    let monitor = Monitor::start(&vars_for(
        &db,
        &[
            ("MONITOR_STUCK_JOB_AFTER", "1m"),
            ("MONITOR_DEAD_WORKER_AFTER", "2s"),
        ],
    ));
    let line = monitor.wait_for(1, "💀 Cleaned up dead workers", Some("dev"), WAIT);
    assert_eq!(line[0]["releasedJobs"].as_array().unwrap().len(), 2);
    assert_eq!(db.job_status(&last_try), 4);
    assert_eq!(db.job_status(&first_try), 1);
    assert_eq!(attempts(&mut db, &first_try), 1);
    assert_eq!(
        db.field(&last_try, "error_message").as_deref(),
        Some("Failed by health monitor - stuck in processing 3 times")
    );
}

/// With a grace, a job whose worker is alive (fresh heartbeat) and reports
/// it as its `current_job_id` survives past the stuck threshold, while a
/// job of the same age whose worker is gone is reset at the threshold; once
/// the grace is over, the live worker's job is reset too.
#[test]
fn a_live_workers_job_gets_the_grace_and_is_reset_after_it() {
    let mut db = TestDb::new("grace");
    db.worker("worker-live", "busy", "0 seconds");
    let live = db.job(2, Some("worker-live"), Some("0 seconds"), "acte:1");
    let orphan = db.job(2, Some("worker-gone"), Some("0 seconds"), "acte:2");
    db.exec(&format!(
        "UPDATE worker_status SET current_job_id = '{live}' WHERE worker_id = 'worker-live'"
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let beat = {
        let (url, stop) = (db.url.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            while !stop.load(Ordering::SeqCst) {
                c.batch_execute(
                    "UPDATE worker_status SET last_heartbeat = now() WHERE worker_id = 'worker-live'",
                )
                .unwrap();
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let monitor = Monitor::start(&vars_for(&db, &[("MONITOR_LIVE_WORKER_GRACE", "5s")]));

    let first = monitor.wait_for(1, "🔄 Auto-reset stuck jobs", Some("dev"), WAIT);
    assert_eq!(first[0]["count"], 1, "{}", first[0]);
    assert_eq!(first[0]["jobs"][0]["id"], orphan.as_str());
    assert_eq!(db.job_status(&orphan), 1);

    // By the database's clock, the live job gets well past the threshold
    // (1 s) while still processing.
    let age_sql = format!(
        "SELECT CASE WHEN status_id = 2 THEN floor(extract(epoch FROM now() - processing_started_at))::bigint ELSE -1 END
         FROM extraction_queue WHERE id = '{live}'"
    );
    eventually("the live job is 3 s old", WAIT, || {
        let age = db.count(&age_sql);
        assert!(
            age != -1,
            "the live worker's job was reset within its grace"
        );
        age >= 3
    });

    let second = monitor.wait_for(2, "🔄 Auto-reset stuck jobs", Some("dev"), WAIT);
    assert_eq!(second[1]["jobs"][0]["id"], live.as_str());
    assert_eq!(db.job_status(&live), 1);
    stop.store(true, Ordering::SeqCst);
    beat.join().unwrap();
}

/// OCR jobs stuck in status 6 go back to status 3 (ready for OCR), their
/// OCR worker and start time cleared and `ocr_error` set, counted in
/// `ocr_attempts`; one that reaches `ocr_max_attempts` goes to failed; a
/// fresh one is left alone.
#[test]
fn stuck_ocr_jobs_go_back_to_ready_for_ocr() {
    let mut db = TestDb::new("ocr");
    let ocr_job = |db: &mut TestDb, ago: &str, tries: i32| -> String {
        db.text(&format!(
            "INSERT INTO extraction_queue (status_id, document_source, document_number, ocr_worker_id, ocr_started_at, ocr_attempts)
             VALUES (6, 'acte', '{ago}', 'ocr-worker', now() - interval '{ago}', {tries}) RETURNING id::text"
        ))
        .unwrap()
    };
    let stuck = ocr_job(&mut db, "20 minutes", 0);
    let last_try = ocr_job(&mut db, "30 minutes", 2);
    let fresh = ocr_job(&mut db, "1 second", 0);
    let monitor = Monitor::start(&vars_for(&db, &[("MONITOR_STUCK_OCR_AFTER", "5m")]));

    let reset = monitor.wait_for(1, "🔄 Auto-reset stuck OCR jobs", Some("dev"), WAIT);
    assert_eq!(reset[0]["level"], "WARN");
    assert_eq!(reset[0]["count"], 1);
    assert_eq!(reset[0]["jobs"][0]["id"], stuck.as_str());
    assert_eq!(reset[0]["jobs"][0]["worker"], "ocr-worker");
    let failed = monitor.wait_for(
        1,
        "☠️  Failed stuck OCR jobs: out of attempts",
        Some("dev"),
        WAIT,
    );
    assert_eq!(failed[0]["jobs"][0]["id"], last_try.as_str());

    let row = db
        .client
        .query_one(
            "SELECT status_id, ocr_worker_id, ocr_started_at IS NULL, ocr_error, ocr_attempts
             FROM extraction_queue WHERE id::text = $1",
            &[&stuck],
        )
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 3);
    assert_eq!(row.get::<_, Option<String>>(1), None);
    assert!(row.get::<_, bool>(2));
    assert_eq!(
        row.get::<_, String>(3),
        "Auto-reset by health monitor - exceeded OCR processing time limit"
    );
    assert_eq!(row.get::<_, i32>(4), 1);
    assert_eq!(db.job_status(&last_try), 4);
    assert_eq!(
        db.field(&last_try, "error_message").as_deref(),
        Some("Failed by health monitor - stuck in processing 3 times")
    );
    cycles(&monitor, 5);
    assert_eq!(db.job_status(&fresh), 6);
    assert_eq!(monitor.find("🔄 Auto-reset stuck OCR jobs", None).len(), 1);
}

/// A database without the OCR columns (an older one): one INFO line says
/// the OCR rule is off, and nothing else is said about it, cycle after
/// cycle: no error, no warning; the main rule still works.
#[test]
fn without_ocr_columns_the_rule_is_off_with_one_info_line() {
    let mut db = TestDb::with_schema("noocr", &common::schema_without_ocr());
    let stale = db.job(2, Some("w"), Some("10 minutes"), "acte:1");
    let monitor = Monitor::start(&vars_for(&db, &[]));
    monitor.wait_for(1, "🔄 Auto-reset stuck jobs", Some("dev"), WAIT);
    assert_eq!(db.job_status(&stale), 1);
    cycles(&monitor, 10);

    let off = monitor.find("ℹ️  Stuck OCR rule off", Some("dev"));
    assert_eq!(off.len(), 1, "{off:?}");
    assert_eq!(off[0]["level"], "INFO");
    let noise: Vec<_> = monitor
        .logs()
        .into_iter()
        .filter(|l| l["level"] == "ERROR" || l["message"].as_str().unwrap_or("").contains("OCR"))
        .filter(|l| {
            !l["message"]
                .as_str()
                .unwrap_or("")
                .starts_with("ℹ️  Stuck OCR rule off")
        })
        .collect();
    assert!(noise.is_empty(), "{noise:?}");
    assert!(monitor.find("ℹ️  Poison-job limit off", None).is_empty());
}

/// A database without the attempts column: one INFO line says the
/// poison-job limit is off there, jobs are reset as before, cycle after
/// cycle, and nothing fails.
#[test]
fn without_the_attempts_column_the_limit_is_off_with_one_info_line() {
    let mut db = TestDb::with_schema("noattempts", &common::schema_without_attempts());
    let job = db.job(2, Some("worker-hang"), Some("10 minutes"), "acte:666");
    let monitor = Monitor::start(&vars_for(&db, &[]));
    for n in 1..=4 {
        monitor.wait_for(n, "🔄 Auto-reset stuck jobs", Some("dev"), WAIT);
        assert_eq!(db.job_status(&job), 1);
        stick_again(&mut db, &job);
    }
    let off = monitor.find("ℹ️  Poison-job limit off", Some("dev"));
    assert_eq!(off.len(), 1, "{off:?}");
    assert_eq!(off[0]["level"], "INFO");
    assert_eq!(off[0]["column"], "attemtps");
    let errors = monitor.errors();
    assert!(errors.is_empty(), "{errors:?}");
}
