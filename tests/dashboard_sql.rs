//! The dashboard's statements against a real database: what the read
//! shows, and each action's guard (it changes the rows still as the person
//! saw them, and nothing once a row has moved on).

mod common;

use std::time::Duration;

use common::TestDb;
use registre_actors::identifier::Identifier;
use registre_actors::sql::dashboard::{self, Judging, LiveRead};
use registre_actors::{Database, Project};

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn database(db: &TestDb) -> Database {
    let project = Project::parse("dev", &db.url).unwrap();
    Database::new(&project, Duration::from_secs(5), Duration::from_secs(5))
}

const ATTEMPTS: Identifier = Identifier::from_static("attemtps");

const JUDGING: Judging = Judging {
    dead_after: Duration::from_secs(120),
    stale_after: Duration::from_secs(60),
    long_after: Duration::from_secs(90),
    stuck_after: Duration::from_secs(180),
};

fn read(db: &TestDb) -> LiveRead {
    let database = database(db);
    block_on(async move { dashboard::live_read(&database, &JUDGING).await }).unwrap()
}

/// A failed job with `message`, failed `ago` ago; returns its id.
fn failed(db: &mut TestDb, message: Option<&str>, ago: &str, doc: &str) -> String {
    let id = db.job(4, None, None, doc);
    let message = message.map_or("NULL".to_string(), |m| format!("'{m}'"));
    db.exec(&format!(
        "UPDATE extraction_queue SET error_message = {message}, attemtps = 3,
         updated_at = now() - interval '{ago}' WHERE id = '{id}'"
    ));
    id
}

fn updated_at(db: &mut TestDb, id: &str) -> String {
    db.text(&format!(
        "SELECT to_json(updated_at)#>>'{{}}' FROM extraction_queue WHERE id = '{id}'"
    ))
    .unwrap()
}

/// Workers are judged alive, stale or dead by heartbeat age as the reaper
/// judges them, listed trouble first, with offline ones counted and only
/// the recent ones listed; long-processing jobs are listed oldest first
/// with the stuck ones marked; failed jobs come grouped by message, biggest
/// group first, with first and last seen and the newest job as sample.
#[test]
fn the_read_judges_workers_lists_long_jobs_and_groups_failures() {
    let mut db = TestDb::new("dash_read");
    db.worker("w-alive", "busy", "5 seconds");
    db.worker("w-stale", "idle", "90 seconds");
    db.worker("w-dead", "busy", "10 minutes");
    db.worker("w-gone-recent", "offline", "20 minutes");
    db.worker("w-gone-old", "offline", "3 hours");
    let stuck = db.job(2, Some("w-dead"), Some("5 minutes"), "acte:1");
    let long = db.job(2, Some("w-alive"), Some("2 minutes"), "index:2");
    db.job(2, Some("w-alive"), Some("10 seconds"), "index:3");
    for i in 0..5 {
        failed(
            &mut db,
            Some("timeout"),
            &format!("{} minutes", 10 - i),
            "acte:9",
        );
    }
    let newest = failed(&mut db, Some("timeout"), "1 minute", "plan_cadastraux:42");
    failed(&mut db, Some("bad pdf"), "30 minutes", "acte:7");
    failed(&mut db, None, "2 minutes", "acte:8");

    let r = read(&db);
    let c = r.worker_counts;
    assert_eq!((c.alive, c.stale, c.dead, c.offline), (1, 1, 1, 2));
    let order: Vec<(&str, &str)> = r
        .workers
        .iter()
        .map(|w| (w.id.as_str(), w.health.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            ("w-dead", "dead"),
            ("w-stale", "stale"),
            ("w-alive", "alive"),
            ("w-gone-recent", "offline")
        ]
    );
    assert!(r.workers[0].heartbeat_age_seconds.unwrap() >= 600);
    assert!(r.workers[0].last_heartbeat.is_some());

    assert_eq!(r.long_jobs_count, 2);
    let jobs: Vec<(&str, bool)> = r
        .long_jobs
        .iter()
        .map(|j| (j.id.as_str(), j.stuck))
        .collect();
    assert_eq!(jobs, [(stuck.as_str(), true), (long.as_str(), false)]);
    assert_eq!(r.long_jobs[0].worker.as_deref(), Some("w-dead"));

    assert_eq!((r.failed_total, r.failed_groups_count), (8, 3));
    let g = &r.failed_groups[0];
    assert_eq!((g.message.as_deref(), g.count), (Some("timeout"), 6));
    assert_eq!(g.jobs.len(), 3);
    assert_eq!(g.jobs[0].id, newest);
    assert_eq!(g.jobs[0].doc, "plan_cadastraux:42");
    assert_eq!(g.last_seen, g.jobs[0].updated_at);
    assert!(g.first_seen < g.last_seen);
    let null_group = r
        .failed_groups
        .iter()
        .find(|g| g.message.is_none())
        .unwrap();
    assert_eq!((null_group.key.as_str(), null_group.count), ("null", 1));
}

/// [`dashboard::retry_failed_job`], run to its end.
fn retry_job(
    database: &Database,
    id: &str,
    seen: &str,
    attempts: Option<&Identifier>,
) -> dashboard::Changed {
    block_on(dashboard::retry_failed_job(database, id, seen, attempts)).unwrap()
}

/// Retrying one failed job puts it back in the queue with its attempts at
/// zero, once; a job changed since it was seen (another `updated_at`) or no
/// longer failed is left alone.
#[test]
fn retrying_a_job_changes_it_only_as_seen() {
    let mut db = TestDb::new("dash_retry_job");
    let id = failed(&mut db, Some("boom"), "1 minute", "acte:1");
    let seen = updated_at(&mut db, &id);
    let database = database(&db);

    // Someone else touched it since the page was drawn.
    db.exec(&format!(
        "UPDATE extraction_queue SET updated_at = now() WHERE id = '{id}'"
    ));
    let changed = retry_job(&database, &id, &seen, Some(&ATTEMPTS));
    assert_eq!(changed.count, 0);
    assert_eq!(db.job_status(&id), 4);

    let seen = updated_at(&mut db, &id);
    let changed = retry_job(&database, &id, &seen, Some(&ATTEMPTS));
    assert_eq!(changed.count, 1);
    assert_eq!(changed.jobs[0].id, id);
    assert_eq!(db.job_status(&id), 1);
    assert_eq!(
        db.count(&format!(
            "SELECT attemtps::bigint FROM extraction_queue WHERE id = '{id}'"
        )),
        0
    );
    let message = db
        .text(&format!(
            "SELECT error_message FROM extraction_queue WHERE id = '{id}'"
        ))
        .unwrap();
    assert_eq!(message, "Retried from the dashboard; last error: boom");
    // The same click again: the job is no longer failed.
    let again = retry_job(&database, &id, &seen, None);
    assert_eq!(again.count, 0);
}

/// Retrying a group retries exactly the jobs still failed with that message
/// up to the last failure the person saw: not a job that failed the same
/// way afterwards, not another group, not a job already retried.
#[test]
fn retrying_a_group_changes_exactly_the_jobs_seen() {
    let mut db = TestDb::new("dash_retry_group");
    let a = failed(&mut db, Some("timeout"), "10 minutes", "acte:1");
    let b = failed(&mut db, Some("timeout"), "5 minutes", "acte:2");
    let c = failed(&mut db, Some("timeout"), "3 minutes", "acte:3");
    let other = failed(&mut db, Some("bad pdf"), "4 minutes", "acte:4");
    let r = read(&db);
    let group = r
        .failed_groups
        .iter()
        .find(|g| g.message.as_deref() == Some("timeout"))
        .unwrap()
        .clone();
    assert_eq!(group.count, 3);
    // After the page was drawn: c is retried by someone else, a new job
    // fails with the same message.
    db.exec(&format!(
        "UPDATE extraction_queue SET status_id = 1, updated_at = now() WHERE id = '{c}'"
    ));
    let later = failed(&mut db, Some("timeout"), "0 seconds", "acte:5");

    let database = database(&db);
    let changed = block_on(dashboard::retry_failed_group(
        &database,
        &group.key,
        &group.last_seen,
        Some(&ATTEMPTS),
    ))
    .unwrap();
    assert_eq!(changed.count, 2);
    let mut ids: Vec<&str> = changed.jobs.iter().map(|j| j.id.as_str()).collect();
    ids.sort();
    let mut want = [a.as_str(), b.as_str()];
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(db.job_status(&a), 1);
    assert_eq!(db.job_status(&b), 1);
    assert_eq!(db.job_status(&later), 4, "failed after the page was drawn");
    assert_eq!(db.job_status(&other), 4, "another group");
    assert_eq!(
        db.text(&format!(
            "SELECT error_message FROM extraction_queue WHERE id = '{c}'"
        ))
        .as_deref(),
        Some("timeout"),
        "retried by someone else: not rewritten"
    );
}

/// Resetting a processing job takes it back only from the worker that held
/// it since the time shown; a job claimed again meanwhile is left alone.
#[test]
fn resetting_a_job_needs_the_same_worker_and_start() {
    let mut db = TestDb::new("dash_reset_job");
    let id = db.job(2, Some("w-1"), Some("5 minutes"), "acte:1");
    let started = db
        .text(&format!(
            "SELECT to_json(processing_started_at)#>>'{{}}' FROM extraction_queue WHERE id = '{id}'"
        ))
        .unwrap();
    let database = database(&db);
    let wrong_worker = block_on(dashboard::reset_processing_job(
        &database,
        &id,
        Some("w-2"),
        Some(&started),
    ))
    .unwrap();
    assert_eq!(wrong_worker.count, 0);
    let wrong_start = block_on(dashboard::reset_processing_job(
        &database,
        &id,
        Some("w-1"),
        Some("2001-01-01T00:00:00Z"),
    ))
    .unwrap();
    assert_eq!(wrong_start.count, 0);
    assert_eq!(db.job_status(&id), 2);

    let changed = block_on(dashboard::reset_processing_job(
        &database,
        &id,
        Some("w-1"),
        Some(&started),
    ))
    .unwrap();
    assert_eq!(changed.count, 1);
    assert_eq!(changed.jobs[0].worker.as_deref(), Some("w-1"));
    assert!(changed.jobs[0].seconds.unwrap() >= 300);
    assert_eq!(db.job_status(&id), 1);
    assert_eq!(
        db.text(&format!(
            "SELECT worker_id FROM extraction_queue WHERE id = '{id}'"
        )),
        None
    );
}

/// Marking a worker offline frees every job it holds, and nothing else;
/// a worker that heartbeated since it was seen is alive: left alone.
#[test]
fn marking_a_worker_offline_needs_the_heartbeat_seen() {
    let mut db = TestDb::new("dash_offline");
    db.worker("w-1", "busy", "3 minutes");
    db.worker("w-2", "busy", "3 minutes");
    let held = db.job(2, Some("w-1"), Some("4 minutes"), "acte:1");
    let held_too = db.job(2, Some("w-1"), Some("1 minute"), "acte:2");
    let others = db.job(2, Some("w-2"), Some("4 minutes"), "acte:3");
    let r = read(&db);
    let seen = |id: &str| {
        r.workers
            .iter()
            .find(|w| w.id == id)
            .unwrap()
            .last_heartbeat
            .clone()
    };
    let (seen_1, seen_2) = (seen("w-1"), seen("w-2"));
    // w-2 heartbeats after the page was drawn.
    db.exec("UPDATE worker_status SET last_heartbeat = now() WHERE worker_id = 'w-2'");

    let database = database(&db);
    let alive = block_on(dashboard::mark_worker_offline(
        &database,
        "w-2",
        seen_2.as_deref(),
    ))
    .unwrap();
    assert_eq!((alive.count, alive.worker), (0, None));
    assert_eq!(db.job_status(&others), 2);

    let gone = block_on(dashboard::mark_worker_offline(
        &database,
        "w-1",
        seen_1.as_deref(),
    ))
    .unwrap();
    assert_eq!((gone.count, gone.worker.as_deref()), (2, Some("w-1")));
    assert_eq!(db.job_status(&held), 1);
    assert_eq!(db.job_status(&held_too), 1);
    assert_eq!(db.job_status(&others), 2);
    assert_eq!(
        db.text("SELECT status FROM worker_status WHERE worker_id = 'w-1'")
            .as_deref(),
        Some("offline")
    );
    // Again: already offline, nothing to do.
    let again = block_on(dashboard::mark_worker_offline(
        &database,
        "w-1",
        seen_1.as_deref(),
    ))
    .unwrap();
    assert_eq!(again.count, 0);
}
