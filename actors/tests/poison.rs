//! One bad row must not stop a project: rows holding absurd values (huge,
//! negative or null attempts and limits, a null status, timestamps in the
//! future or infinite) beside normal stuck jobs. Every statement still
//! runs, the normal jobs are still put back, and each poison row gets a
//! sensible outcome instead of an error for all.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::TestDb;
use registre_actors::identifier::Identifier;
use registre_actors::sql::dashboard::{self as sql_dashboard, Judging};
use registre_actors::sql::stage::{MAX_AGE_SECONDS, MAX_COUNTER};
use registre_actors::sql::{self, AttemptColumns, LiveGrace, OCR, OcrRule, PROCESSING, StuckRules};

const FIVE_MINUTES: Duration = Duration::from_secs(300);

/// A poison row: its label, the `SET` clause that makes it from a job
/// processing for 10 minutes, and its status after one stuck-job run
/// (`None`: null).
const POISON: &[(&str, &str, Option<i64>)] = &[
    ("attempts at the maximum", "attemtps = 2147483647", Some(4)),
    ("attempts at the minimum", "attemtps = -2147483648", Some(1)),
    (
        "null attempts and limit",
        "attemtps = NULL, max_attempts = NULL",
        Some(1),
    ),
    (
        "limit at the maximum",
        "attemtps = 2147483646, max_attempts = 2147483647",
        Some(4),
    ),
    (
        "limit at the minimum",
        "max_attempts = -2147483648",
        Some(4),
    ),
    (
        "started tomorrow",
        "processing_started_at = now() + interval '1 day'",
        Some(2),
    ),
    (
        "started at infinity",
        "processing_started_at = 'infinity'",
        Some(2),
    ),
    (
        "started at -infinity",
        "processing_started_at = '-infinity'",
        Some(1),
    ),
    (
        "updated at infinity",
        "processing_started_at = NULL, updated_at = 'infinity'",
        Some(2),
    ),
    (
        "updated at -infinity",
        "processing_started_at = NULL, updated_at = '-infinity'",
        Some(1),
    ),
    (
        "no time at all",
        "processing_started_at = NULL, updated_at = NULL",
        Some(2),
    ),
    ("null status", "status_id = NULL", None),
    (
        "OCR at infinity",
        "status_id = 6, ocr_worker_id = 'w-poison', ocr_started_at = 'infinity'",
        Some(6),
    ),
    (
        "OCR at -infinity, attempts at the maximum",
        "status_id = 6, ocr_worker_id = 'w-poison', ocr_started_at = '-infinity', \
         ocr_attempts = 2147483647, ocr_max_attempts = NULL",
        Some(4),
    ),
    (
        "OCR with null attempts, negative limit",
        "status_id = 6, ocr_worker_id = 'w-poison', ocr_started_at = now() - interval '1 hour', \
         ocr_attempts = NULL, ocr_max_attempts = -1",
        Some(4),
    ),
    (
        "failed at infinity",
        "status_id = 4, updated_at = 'infinity', error_message = 'boom'",
        Some(4),
    ),
    (
        "failed at -infinity",
        "status_id = 4, updated_at = '-infinity', error_message = NULL",
        Some(4),
    ),
];

/// A fresh database whose tables accept nulls where `sql/schema.sql` has
/// `NOT NULL` (other databases may not have them), with the poison rows,
/// workers with absurd heartbeats, and two normal stuck jobs (processing
/// and OCR). Returns the poison rows' ids by label and the normal ids.
fn poisoned(tag: &str) -> (TestDb, HashMap<&'static str, String>, [String; 2]) {
    let mut db = TestDb::new(tag);
    db.exec(
        "ALTER TABLE extraction_queue ALTER status_id DROP NOT NULL,
             ALTER attemtps DROP NOT NULL, ALTER updated_at DROP NOT NULL;
         ALTER TABLE worker_status ALTER status DROP NOT NULL,
             ALTER last_heartbeat DROP NOT NULL;
         INSERT INTO worker_status (worker_id, status, last_heartbeat) VALUES
             ('w-future', 'busy', 'infinity'), ('w-past', 'busy', '-infinity'),
             ('w-null', NULL, NULL), ('w-poison', 'busy', now())",
    );
    let mut ids = HashMap::new();
    for (n, (label, set, _)) in POISON.iter().enumerate() {
        let id = db.job(
            2,
            Some("w-poison"),
            Some("10 minutes"),
            &format!("acte:{n}"),
        );
        db.exec(&format!(
            "UPDATE extraction_queue SET {set} WHERE id = '{id}'"
        ));
        ids.insert(*label, id);
    }
    let normal = db.job(2, Some("w-ok"), Some("10 minutes"), "index:1");
    let normal_ocr = db.job(3, None, None, "index:2");
    db.exec(&format!(
        "UPDATE extraction_queue SET status_id = 6, ocr_worker_id = 'ocr-ok',
         ocr_started_at = now() - interval '1 hour' WHERE id = '{normal_ocr}'"
    ));
    (db, ids, [normal, normal_ocr])
}

fn counted(stage: registre_actors::sql::Stage) -> Option<AttemptColumns> {
    Some(AttemptColumns {
        attempts: Identifier::from_static(stage.attempts),
        max: Some(stage.max_attempts),
    })
}

/// Every part of the stuck-job statement at once: grace, attempts, OCR.
fn full_rules() -> StuckRules {
    StuckRules {
        live_grace: Some(LiveGrace {
            grace: Duration::from_secs(60),
            dead_after: Duration::from_secs(120),
        }),
        attempts: counted(PROCESSING),
        ocr: Some(OcrRule {
            stuck_after: FIVE_MINUTES,
            attempts: counted(OCR),
        }),
        ..StuckRules::plain(FIVE_MINUTES)
    }
}

fn status(db: &mut TestDb, id: &str) -> Option<i64> {
    db.field(id, "status_id").map(|s| s.parse().unwrap())
}

/// The stuck-job statement, with every rule on, runs on a table of poison
/// rows: the normal jobs are put back; a counter at the integer maximum
/// ends failed without overflowing; a timestamp at `-infinity` is stuck
/// (its age clamped), one in the future or at `infinity` is not yet; a
/// second run runs too. The plain rule (`reset-stuck-jobs`) as well.
#[test]
fn poison_rows_never_stop_the_stuck_job_rule() {
    let (mut db, ids, [normal, normal_ocr]) = poisoned("po_stuck");
    let rules = full_rules();
    let (first, second) = db.run(async |db| {
        let first = sql::reset_stuck(&db, &rules).await;
        let second = sql::reset_stuck(&db, &rules).await;
        (first, second)
    });
    let first = first.expect("the stuck-job statement runs despite the poison rows");
    let second = second.expect("and runs again");
    assert!(
        second.jobs.is_empty() && second.ocr.is_empty(),
        "{second:?}"
    );

    assert_eq!(db.job_status(&normal), 1);
    assert_eq!(db.field(&normal, "attemtps").as_deref(), Some("1"));
    assert_eq!(db.job_status(&normal_ocr), 3);
    for (label, _, expected) in POISON {
        assert_eq!(status(&mut db, &ids[label]), *expected, "{label}");
    }
    let max = &ids["attempts at the maximum"];
    assert_eq!(db.field(max, "attemtps"), Some(MAX_COUNTER.to_string()));
    assert_eq!(
        db.field(max, "error_message").as_deref(),
        Some("Failed by health monitor - stuck in processing 2147483648 times")
    );
    let min = &ids["attempts at the minimum"];
    assert_eq!(db.field(min, "attemtps").as_deref(), Some("-2147483647"));
    let null = &ids["null attempts and limit"];
    assert_eq!(db.field(null, "attemtps").as_deref(), Some("1"));
    let at_limit = &ids["limit at the maximum"];
    assert_eq!(
        db.field(at_limit, "attemtps"),
        Some(MAX_COUNTER.to_string())
    );
    let ocr_max = &ids["OCR at -infinity, attempts at the maximum"];
    assert_eq!(
        db.field(ocr_max, "ocr_attempts"),
        Some(MAX_COUNTER.to_string())
    );

    let released = |id: &str| {
        first
            .jobs
            .iter()
            .chain(&first.ocr)
            .find(|j| j.id == id)
            .unwrap_or_else(|| panic!("{id} not in {first:?}"))
            .clone()
    };
    let forever = released(&ids["started at -infinity"]);
    assert_eq!((forever.seconds, forever.failed), (MAX_AGE_SECONDS, false));
    assert_eq!(released(max).attempts, Some(MAX_COUNTER));
    assert!(released(max).failed);
    assert_eq!(released(ocr_max).seconds, MAX_AGE_SECONDS);
    assert_eq!((first.jobs.len(), first.ocr.len()), (8, 3), "{first:?}");

    // The plain rule, as `reset-stuck-jobs` runs it, on the same rows.
    let never = &ids["started at infinity"];
    db.exec(&format!(
        "UPDATE extraction_queue SET status_id = 2, processing_started_at = '-infinity' WHERE id = '{max}'"
    ));
    let plain = db.run(async |db| sql::reset_stuck_jobs(&db, FIVE_MINUTES).await);
    let plain = plain.expect("the plain rule runs despite the poison rows");
    assert_eq!(common::sorted_ids(&plain), common::sorted(&[max]));
    assert_eq!(db.job_status(never), 2);
}

/// The dead-worker statements, with attempts counted, on the same table:
/// the read returns every live row whatever its heartbeat (null, or
/// infinite either way), marking offline matches those values exactly,
/// and a dead worker's jobs come back whatever they hold, here or passed
/// from another project (`w-far` has no row here).
#[test]
fn poison_rows_never_stop_the_dead_worker_rule() {
    let (mut db, ids, _) = poisoned("po_reap");
    let far = db.job(2, Some("w-far"), Some("10 minutes"), "plan_cadastraux:1");
    db.exec(&format!(
        "UPDATE extraction_queue SET processing_started_at = '-infinity', attemtps = 2147483647
         WHERE id = '{far}'"
    ));
    let attempts = counted(PROCESSING);
    let dead = vec!["w-far".to_string(), "w-poison".to_string()];
    let (read, marked, released) = db.run(async |db| {
        let read = sql::read_workers(&db)
            .await
            .expect("the read runs despite the poison rows");
        let judged: Vec<(String, Option<String>)> = read
            .rows
            .iter()
            .map(|r| (r.id.clone(), r.hb.clone()))
            .collect();
        let marked = sql::mark_offline(&db, &judged).await.expect("marking runs");
        let released = sql::release_jobs_of(&db, &dead, attempts.as_ref(), true).await;
        (
            read,
            marked,
            released.expect("releasing runs despite the poison rows"),
        )
    });
    assert_eq!(
        marked.len(),
        read.rows.len(),
        "every row matched as read: {read:?}"
    );
    // Every processing job of the dead worker (status 2), and the far one.
    let held: Vec<&String> = POISON
        .iter()
        .filter(|(_, set, _)| !set.contains("status_id"))
        .map(|(label, _, _)| &ids[label])
        .chain([&far])
        .collect();
    assert_eq!(
        common::sorted_ids(&released.released),
        common::sorted(&held)
    );
    for id in held {
        let status = db.job_status(id);
        assert!(status == 1 || status == 4, "{id}: {status}");
    }
    assert_eq!(db.job_status(&far), 4);
}

/// The read-only statements survive the same rows: `diagnose` (a null
/// status counted as such, infinite heartbeats clamped),
/// `reset-stuck-jobs --dry-run`, the health counts and the dashboard's
/// read.
#[test]
fn poison_rows_never_stop_the_reads() {
    let (db, ids, [normal, _]) = poisoned("po_reads");
    let (diagnosis, listed, counts, live) = db.run(async |db| {
        (
            sql::diagnose(&db, FIVE_MINUTES, Duration::from_secs(120), &[]).await,
            sql::find_stuck_jobs(&db, FIVE_MINUTES).await,
            sql::health_counts(&db, Duration::from_secs(120), true).await,
            sql_dashboard::live_read(
                &db,
                &Judging {
                    dead_after: Duration::from_secs(120),
                    stale_after: Duration::from_secs(60),
                    long_after: Duration::from_secs(90),
                    stuck_after: FIVE_MINUTES,
                },
            )
            .await,
        )
    });
    let diagnosis = diagnosis.expect("diagnose runs despite the poison rows");
    let listed = listed.expect("the dry run runs despite the poison rows");
    counts.expect("the health counts run despite the poison rows");
    let live = live.expect("the dashboard's read runs despite the poison rows");

    let nulls: Vec<_> = diagnosis
        .jobs
        .iter()
        .filter(|j| j.status_id.is_none())
        .collect();
    assert_eq!(nulls.len(), 1, "{:?}", diagnosis.jobs);
    assert_eq!(nulls[0].count, 1);
    let age = |id: &str| {
        diagnosis
            .workers
            .iter()
            .find(|w| w.id == id)
            .unwrap()
            .heartbeat_age_seconds
    };
    assert_eq!(age("w-future"), Some(-MAX_AGE_SECONDS));
    assert_eq!(age("w-past"), Some(MAX_AGE_SECONDS));
    assert_eq!(age("w-null"), None);

    let mut stuck: Vec<&String> = [
        "attempts at the maximum",
        "attempts at the minimum",
        "null attempts and limit",
        "limit at the maximum",
        "limit at the minimum",
        "started at -infinity",
        "updated at -infinity",
    ]
    .iter()
    .map(|label| &ids[label])
    .collect();
    stuck.push(&normal);
    let expected = common::sorted(&stuck);
    assert_eq!(common::sorted_ids(&listed), expected);
    assert_eq!(common::sorted_ids(&diagnosis.stuck_jobs), expected);
    assert_eq!(listed[0].seconds, MAX_AGE_SECONDS);
    assert_eq!(live.long_jobs_count, 8);
    assert_eq!(live.long_jobs[0].seconds, MAX_AGE_SECONDS);
}
