//! The stuck-job rule's statements, called directly on a fresh database:
//! which rows each one changes, and what it returns.

mod common;

use std::time::Duration;

use common::TestDb;
use registre_actors::fleet::WorkerView;
use registre_actors::identifier::Identifier;
use registre_actors::sql::{
    self, AttemptColumns, LiveGrace, OcrRule, PROCESSING, STUCK_RESET_MESSAGE, StuckRules,
};

const FIVE_MINUTES: Duration = Duration::from_secs(300);

fn counted() -> Option<AttemptColumns> {
    Some(AttemptColumns {
        attempts: Identifier::from_static(PROCESSING.attempts),
        max: Some(PROCESSING.max_attempts),
    })
}

fn ids(jobs: &[sql::ReleasedJob]) -> Vec<&str> {
    jobs.iter().map(|j| j.id.as_str()).collect()
}

/// Jobs processing for longer than the threshold (by their start, or by
/// `updated_at` without one) go back to waiting, cleared, with the reset
/// message, longest first; fresh ones and other statuses stay; a second
/// run finds nothing. The dry run lists exactly those jobs beforehand, and
/// changes nothing.
#[test]
fn old_processing_jobs_go_back_to_waiting_and_nothing_else_moves() {
    let mut db = TestDb::new("st_plain");
    let [stale, fresh, no_start] = db.jobs([
        (2, Some("w1"), Some("10 minutes")),
        (2, Some("w1"), Some("1 second")),
        (2, Some("w2"), None),
    ]);
    db.exec(&format!(
        "UPDATE extraction_queue SET updated_at = now() - interval '1 hour' WHERE id = '{no_start}'"
    ));
    let [waiting, done] = db.jobs([(1, None, None), (3, Some("w1"), Some("2 hours"))]);

    let listed = db.run(async |db| sql::find_stuck_jobs(&db, FIVE_MINUTES).await.unwrap());
    assert_eq!(db.job_status(&stale), 2, "the dry run changed nothing");
    // The read-only look the resetter sends first sees them (with the
    // indexes or without), and nothing once they are reset.
    let plain = StuckRules::plain(FIVE_MINUTES);
    let (before, first, second, after) = db.run(async |db| {
        let before = [
            sql::stuck_candidates(&db, &plain, true).await.unwrap(),
            sql::stuck_candidates(&db, &plain, false).await.unwrap(),
        ];
        let first = sql::reset_stuck_jobs(&db, FIVE_MINUTES).await.unwrap();
        let second = sql::reset_stuck_jobs(&db, FIVE_MINUTES).await.unwrap();
        (
            before,
            first,
            second,
            sql::stuck_candidates(&db, &plain, false).await.unwrap(),
        )
    });
    for mut looked in before {
        looked.sort();
        let mut expected = vec![stale.clone(), no_start.clone()];
        expected.sort();
        assert_eq!(looked, expected, "the look finds the stuck jobs, no other");
    }
    assert!(after.is_empty(), "{after:?}");
    assert_eq!(ids(&first), [no_start.as_str(), stale.as_str()]);
    assert_eq!(ids(&listed), ids(&first));
    assert_eq!(first[1].worker.as_deref(), Some("w1"));
    assert_eq!(first[1].doc, "acte:1");
    assert!((600..610).contains(&first[1].seconds), "{first:?}");
    assert_eq!((first[1].attempts, first[1].failed), (None, false));
    assert!(second.is_empty());
    for id in [&stale, &no_start] {
        assert_eq!(db.job_status(id), 1);
        assert_eq!(db.field(id, "worker_id"), None);
        assert_eq!(db.field(id, "processing_started_at"), None);
        assert_eq!(
            db.field(id, "error_message").as_deref(),
            Some(STUCK_RESET_MESSAGE)
        );
        assert_eq!(db.field(id, "attemtps").as_deref(), Some("0"));
    }
    assert_eq!(db.statuses(&[&fresh, &waiting, &done]), [2, 1, 3]);
}

/// With attempts counted, each reset adds one; a job reaching its limit
/// (3 when `max_attempts` is null) ends failed, saying how many times it
/// was stuck; a higher limit is honoured.
#[test]
fn counted_resets_fail_a_job_at_its_limit() {
    let mut db = TestDb::new("st_counted");
    let [last_try, first_try, patient] = db.jobs([
        (2, Some("w1"), Some("10 minutes")),
        (2, Some("w1"), Some("10 minutes")),
        (2, Some("w1"), Some("10 minutes")),
    ]);
    db.exec(&format!(
        "UPDATE extraction_queue SET attemtps = 2 WHERE id = '{last_try}';
         UPDATE extraction_queue SET max_attempts = NULL WHERE id = '{first_try}';
         UPDATE extraction_queue SET attemtps = 3, max_attempts = 5 WHERE id = '{patient}'"
    ));
    let rules = StuckRules {
        attempts: counted(),
        ..StuckRules::plain(FIVE_MINUTES)
    };
    let resets = db.run(async |db| sql::reset_stuck(&db, &rules).await.unwrap());
    let by_id = |id: &str| resets.jobs.iter().find(|j| j.id == id).unwrap().clone();
    assert_eq!(
        (by_id(&last_try).attempts, by_id(&last_try).failed),
        (Some(3), true)
    );
    assert_eq!(
        (by_id(&first_try).attempts, by_id(&first_try).failed),
        (Some(1), false)
    );
    assert_eq!(
        (by_id(&patient).attempts, by_id(&patient).failed),
        (Some(4), false)
    );
    assert_eq!(db.job_status(&last_try), 4);
    assert_eq!(
        db.field(&last_try, "error_message").as_deref(),
        Some("Failed by health monitor - stuck in processing 3 times")
    );
    assert_eq!(db.statuses(&[&first_try, &patient]), [1, 1]);
    assert_eq!(db.field(&patient, "attemtps").as_deref(), Some("4"));
}

/// With a grace, the job a live worker reports as its current one is kept
/// until the threshold plus the grace; a dead worker's job of the same age
/// is not.
#[test]
fn a_live_workers_job_gets_the_grace() {
    let mut db = TestDb::new("st_grace");
    db.workers(&[("alive", "busy", "1 second"), ("dead", "busy", "1 hour")]);
    let [kept, orphan, too_old] = db.jobs([
        (2, Some("alive"), Some("10 minutes")),
        (2, Some("dead"), Some("10 minutes")),
        (2, Some("alive"), Some("2 hours")),
    ]);
    db.exec(&format!(
        "UPDATE worker_status SET current_job_id = '{kept}' WHERE worker_id = 'alive';
         UPDATE worker_status SET current_job_id = '{orphan}' WHERE worker_id = 'dead'"
    ));
    let rules = StuckRules {
        live_grace: Some(LiveGrace {
            grace: Duration::from_secs(3600),
            dead_after: Duration::from_secs(120),
        }),
        workers: WorkerView {
            alive: vec!["alive".into()],
            ..WorkerView::default()
        },
        ..StuckRules::plain(FIVE_MINUTES)
    };
    let resets = db.run(async |db| sql::reset_stuck(&db, &rules).await.unwrap());
    assert_eq!(ids(&resets.jobs), [too_old.as_str(), orphan.as_str()]);
    assert_eq!(db.job_status(&kept), 2);
}

/// Start times written by skewed clocks are corrected by the offsets the
/// fleet found: a job of a clock five minutes slow, written eight minutes
/// ago, is three minutes old (kept); one of a clock five minutes fast,
/// written in the future, is old enough (reset); a worker whose clock is
/// not measured yet and whose heartbeat is stale keeps its job until the
/// fleet knows (its clock, or its death).
#[test]
fn skewed_clocks_are_corrected_and_unmeasured_stale_workers_wait() {
    let mut db = TestDb::new("st_skew");
    db.workers(&[("stale", "busy", "1 hour"), ("slow", "busy", "5 minutes")]);
    let [slow, fast, waiting, plain] = db.jobs([
        (2, Some("slow"), Some("8 minutes")),
        (2, Some("fast"), Some("-1 minute")),
        (2, Some("stale"), Some("1 hour")),
        (2, Some("other"), Some("6 minutes")),
    ]);
    let rules = StuckRules {
        workers: WorkerView {
            offsets: vec![("slow".into(), -300.0), ("fast".into(), 420.0)],
            stale_after: Some(Duration::from_secs(120)),
            alive: Vec::new(),
        },
        ..StuckRules::plain(FIVE_MINUTES)
    };
    let resets = db.run(async |db| sql::reset_stuck(&db, &rules).await.unwrap());
    let mut reset = ids(&resets.jobs);
    reset.sort();
    let mut expected = vec![fast.as_str(), plain.as_str()];
    expected.sort();
    assert_eq!(reset, expected);
    assert_eq!(db.statuses(&[&slow, &waiting]), [2, 2]);
}

/// OCR jobs stuck in status 6 go back to 3, their OCR worker and start
/// cleared, `ocr_error` set, counted in `ocr_attempts`; one at its limit
/// fails; a fresh one stays; processing jobs are not touched by this rule.
#[test]
fn stuck_ocr_jobs_go_back_to_ready_for_ocr() {
    let mut db = TestDb::new("st_ocr");
    let ocr = |db: &mut TestDb, ago: &str, tries: i32| {
        db.text(&format!(
            "INSERT INTO extraction_queue (status_id, document_source, document_number,
                                           ocr_worker_id, ocr_started_at, ocr_attempts)
             VALUES (6, 'acte', '1', 'ocr-w', now() - interval '{ago}', {tries}) RETURNING id::text"
        ))
        .unwrap()
    };
    let stuck = ocr(&mut db, "20 minutes", 0);
    let last_try = ocr(&mut db, "30 minutes", 2);
    let fresh = ocr(&mut db, "1 second", 0);
    let rules = StuckRules {
        ocr: Some(OcrRule {
            stuck_after: Duration::from_secs(600),
            attempts: Some(AttemptColumns {
                attempts: Identifier::from_static("ocr_attempts"),
                max: Some("ocr_max_attempts"),
            }),
        }),
        ..StuckRules::plain(FIVE_MINUTES)
    };
    let resets = db.run(async |db| sql::reset_stuck(&db, &rules).await.unwrap());
    assert!(resets.jobs.is_empty());
    assert_eq!(ids(&resets.ocr), [last_try.as_str(), stuck.as_str()]);
    assert_eq!(resets.ocr[1].worker.as_deref(), Some("ocr-w"));
    assert_eq!(db.job_status(&stuck), 3);
    assert_eq!(db.field(&stuck, "ocr_worker_id"), None);
    assert_eq!(db.field(&stuck, "ocr_started_at"), None);
    assert_eq!(db.field(&stuck, "ocr_attempts").as_deref(), Some("1"));
    assert_eq!(
        db.field(&stuck, "ocr_error").as_deref(),
        Some(sql::OCR_RESET_MESSAGE)
    );
    assert_eq!(db.job_status(&last_try), 4);
    assert_eq!(
        db.field(&last_try, "error_message").as_deref(),
        Some("Failed by health monitor - stuck in processing 3 times")
    );
    assert_eq!(db.job_status(&fresh), 6);
}

/// A row another transaction holds is skipped, not waited for, and taken
/// by the next run.
#[test]
fn a_locked_row_is_left_for_the_next_run() {
    let mut db = TestDb::new("st_locked");
    let stale = db.job(2, Some("w1"), Some("10 minutes"), "acte:1");
    let mut other = db.connect();
    let mut tx = other.transaction().unwrap();
    tx.batch_execute(&format!(
        "SELECT 1 FROM extraction_queue WHERE id = '{stale}' FOR UPDATE"
    ))
    .unwrap();
    let while_locked = db.run(async |db| sql::reset_stuck_jobs(&db, FIVE_MINUTES).await.unwrap());
    assert!(while_locked.is_empty());
    tx.rollback().unwrap();
    let after = db.run(async |db| sql::reset_stuck_jobs(&db, FIVE_MINUTES).await.unwrap());
    assert_eq!(ids(&after), [stale.as_str()]);
}

/// A reserved word as the attempts column works: the name is quoted.
#[test]
fn a_reserved_word_works_as_the_attempts_column() {
    let schema = format!(
        "{}\nALTER TABLE extraction_queue ADD COLUMN \"order\" integer NOT NULL DEFAULT 0;",
        common::SCHEMA
    );
    let mut db = TestDb::with_schema("st_order", &schema);
    let stale = db.job(2, Some("w1"), Some("10 minutes"), "acte:1");
    let order = Identifier::new("order").unwrap();
    let rules = StuckRules {
        attempts: Some(AttemptColumns {
            attempts: order.clone(),
            max: None,
        }),
        ..StuckRules::plain(FIVE_MINUTES)
    };
    let (columns, resets) = db.run(async |db| {
        let columns = sql::probe_columns(&db, &order).await.unwrap();
        (columns, sql::reset_stuck(&db, &rules).await.unwrap())
    });
    assert!(columns.has("order"), "{columns:?}");
    assert_eq!(resets.jobs[0].attempts, Some(1));
    assert_eq!(db.field(&stale, "\"order\"").as_deref(), Some("1"));
}
