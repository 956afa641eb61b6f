//! Each check's `run_once`, called directly (no actor, no schedule) on a
//! fresh database: what it changes and what it returns (the election's
//! are in `election.rs`).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestDb;
use registre_actors::check::{Check, Reporting, RunContext};
use registre_actors::features::Features;
use registre_actors::fleet::Fleet;
use registre_actors::role::Role;
use registre_actors::sql::{HealthCounts, StuckResets};
use registre_actors::state::MonitorState;
use registre_actors::worker_reaper::WorkerReaper;
use registre_actors::{HealthReporter, Settings, StuckJobResetter};

fn context() -> RunContext {
    RunContext {
        settings: Arc::new(Settings::default()),
        features: Features::new("test"),
        fleet: fleet(),
        stuck_verdict: Default::default(),
        held_verdict: Default::default(),
    }
}

/// A context where a silent worker is dead after 300 ms.
fn reaping_context(check_interval: Duration) -> RunContext {
    let settings = Settings {
        dead_worker_after: Duration::from_millis(300),
        check_interval,
        ..Settings::default()
    };
    RunContext {
        settings: Arc::new(settings),
        ..context()
    }
}

/// A fleet that knows the test's one project.
fn fleet() -> Arc<Fleet> {
    let fleet = Arc::new(Fleet::default());
    fleet.add_project("test");
    fleet
}

/// One run of a fresh resetter.
fn run_resetter(db: &TestDb, cx: &RunContext) -> StuckResets {
    db.run(async |db| StuckJobResetter::default().run_once(&db, cx).await.unwrap())
}

/// A job gets stuck after the health check's read found none: the
/// resetter's run takes that "none" and sends nothing; its next run looks
/// itself and resets the job.
fn reset_after_a_none(db: &mut TestDb, cx: &RunContext) {
    let stuck = db.job(2, Some("w1"), Some("1 hour"), "acte:2");
    assert!(
        run_resetter(db, cx).jobs.is_empty(),
        "the read found none stuck"
    );
    assert_eq!(
        run_resetter(db, cx).jobs.len(),
        1,
        "the next run looks itself"
    );
    assert_eq!(db.job_status(&stuck), 1);
}

/// A job gets stuck after the health check's read listed `listed`: the
/// resetter's run takes the list without a look, so it resets `listed`
/// and leaves the later one (returned) for its next run.
fn reset_as_listed(db: &mut TestDb, cx: &RunContext, listed: &String) -> String {
    let later = db.job(2, Some("w1"), Some("1 hour"), "acte:later");
    let resets = run_resetter(db, cx);
    assert_eq!(
        common::sorted_ids(&resets.jobs),
        std::slice::from_ref(listed),
        "reset as listed, without a look"
    );
    assert_eq!(db.statuses(&[listed, &later]), [1, 2]);
    later
}

/// The resetter probes the schema, then resets with what it allows: on the
/// real schema each reset counts as an attempt.
#[test]
fn the_resetter_counts_resets_as_the_schema_allows() {
    let mut db = TestDb::new("ck_reset");
    let [stale, fresh] = db.jobs([
        (2, Some("w1"), Some("10 minutes")),
        (2, Some("w1"), Some("1 minute")),
    ]);
    let cx = context();
    let resets = run_resetter(&db, &cx);
    assert_eq!(resets.jobs.len(), 1);
    assert_eq!(resets.jobs[0].id, stale);
    assert_eq!(resets.jobs[0].attempts, Some(1));
    assert!(resets.ocr.is_empty());
    assert_eq!(db.field(&stale, "attemtps").as_deref(), Some("1"));
    assert_eq!(db.statuses(&[&stale, &fresh]), [1, 2]);
}

/// A burst bigger than one look: 2,500 stuck jobs come back in one run, a
/// look and a write per 1,000; one locked by another session is left for
/// the next run, which resets it once it is free.
#[test]
fn the_resetter_takes_a_burst_in_batches_and_a_locked_job_later() {
    let mut db = TestDb::new("ck_burst");
    db.exec(
        "INSERT INTO extraction_queue (status_id, worker_id, processing_started_at, document_source, document_number)
         SELECT 2, 'w1', now() - interval '1 hour', 'acte', n::text FROM generate_series(1, 2500) n",
    );
    let locked = db.job(2, Some("w2"), Some("1 hour"), "acte:locked");
    let lock = db.lock_job(&locked);
    let cx = context();
    let first = run_resetter(&db, &cx);
    assert_eq!(first.jobs.len(), 2500);
    assert_eq!(db.job_status(&locked), 2, "left while locked");
    drop(lock);
    let second = run_resetter(&db, &cx);
    assert_eq!(second.jobs.len(), 1);
    assert_eq!(second.jobs[0].id, locked);
    assert_eq!(
        db.text("SELECT count(*)::text FROM extraction_queue WHERE status_id = 2"),
        Some("0".into())
    );
}

/// Without the attempts column the resetter still resets, uncounted.
#[test]
fn without_the_attempts_column_the_resetter_resets_uncounted() {
    let mut db = TestDb::with_schema("ck_noattempts", &common::schema_without_attempts());
    let stale = db.job(2, Some("w1"), Some("10 minutes"), "acte:1");
    let cx = context();
    let resets = run_resetter(&db, &cx);
    assert_eq!(resets.jobs[0].attempts, None);
    assert_eq!(db.job_status(&stale), 1);
}

/// The reaper, run after run on one fleet: a worker whose heartbeat keeps
/// changing lives whatever its clock wrote; a silent one is marked offline
/// and its jobs come back, including one locked by another session when
/// the death was found (released by the first run after it is free); a
/// job whose holder has no row at all comes back too.
#[test]
fn the_reaper_frees_every_job_of_the_dead_locked_or_not() {
    let mut db = TestDb::new("ck_reap");
    db.workers(&[
        ("dead", "busy", "10 minutes"),
        ("slow", "busy", "10 minutes"),
    ]);
    let [held, locked, ghost_job, slow_job] = db.jobs([
        (2, Some("dead"), Some("1 second")),
        (2, Some("dead"), Some("1 second")),
        (2, Some("ghost"), Some("1 second")),
        (2, Some("slow"), Some("10 minutes")),
    ]);
    let lock = db.lock_job(&locked);
    let cx = reaping_context(Duration::from_millis(100));
    let mut reaper = WorkerReaper::new();
    let mut marked = Vec::new();
    let mut released = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    // "slow" heartbeats before every run, ten minutes behind.
    let mut beat = 0;
    while !(marked.contains(&"dead".to_string()) && released.len() >= 2) {
        assert!(
            Instant::now() < deadline,
            "marked {marked:?}, released {released:?}"
        );
        beat += 1;
        db.exec(&format!(
            "UPDATE worker_status SET last_heartbeat = now() - interval '10 minutes' + interval '{beat} milliseconds' WHERE worker_id = 'slow'"
        ));
        let out = db.run(async |db| reaper.run_once(&db, &cx).await.unwrap());
        marked.extend(out.marked);
        released.extend(out.released.into_iter().map(|j| j.id));
    }
    released.sort();
    assert_eq!(released, common::sorted(&[&held, &ghost_job]));
    assert_eq!(
        cx.fleet.owed("test"),
        ["dead"],
        "the locked job is still owed"
    );
    drop(lock);
    let out = db.run(async |db| reaper.run_once(&db, &cx).await.unwrap());
    assert_eq!(
        common::sorted_ids(&out.released),
        common::sorted(&[&locked])
    );
    assert!(cx.fleet.owed("test").is_empty());
    assert_eq!(
        db.statuses(&[&held, &locked, &ghost_job, &slow_job]),
        [1, 1, 1, 2]
    );
}

/// The health reporter's run only counts.
#[test]
fn the_health_reporter_counts() {
    let mut db = TestDb::new("ck_health");
    db.worker("w1", "idle", "1 second");
    db.job(1, None, None, "acte:1");
    let cx = context();
    let health = db.run(async |db| HealthReporter::default().run_once(&db, &cx).await.unwrap());
    // The first run counts exactly.
    assert!(health.probe.is_none());
    assert_eq!(
        health.counts,
        HealthCounts {
            active_workers: 1,
            pending_jobs: 1,
            ..HealthCounts::default()
        }
    );
}

/// Without any of the indexes, the health count's pass over the table
/// answers the stuck rule's look: after a pass that found nothing stuck the
/// resetter sends nothing, once; the next run looks itself. A pass that
/// finds stuck jobs lists them, and the resetter's write takes them
/// without a look of its own.
#[test]
fn without_indexes_one_pass_serves_the_counts_and_the_look() {
    let mut db = TestDb::new("ck_pass");
    db.job(2, Some("w1"), Some("1 second"), "acte:1");
    let cx = context();
    let count = |db: &TestDb| {
        db.run(async |db| HealthReporter::default().run_once(&db, &cx).await.unwrap())
    };
    let health = count(&db);
    assert_eq!(health.counts.processing_jobs, 1);
    reset_after_a_none(&mut db, &cx);

    let again = db.job(2, Some("w1"), Some("1 hour"), "acte:3");
    assert_eq!(count(&db).counts.processing_jobs, 2);
    let later = reset_as_listed(&mut db, &cx, &again);
    assert_eq!(run_resetter(&db, &cx).jobs.len(), 1, "the next run looks");
    assert_eq!(db.job_status(&later), 1);
}

/// With the indexes, the health probe between exact counts makes the stuck
/// rule's look too: after a probe that found nothing stuck the resetter
/// sends nothing, once; the next run looks itself. Jobs the probe listed
/// are reset without a look of the resetter's own.
#[test]
fn with_indexes_the_health_probe_answers_the_look() {
    let mut db = TestDb::new("ck_probe_look");
    for index in registre_actors::indexes::recommended() {
        db.exec(&index.create.replace("CONCURRENTLY ", ""));
    }
    db.job(2, Some("w1"), Some("1 second"), "acte:1");
    // A fleet whose processing jobs the probe can bound (2 × 2 + 1 → 8).
    db.workers(&[("w1", "busy", "1 second"), ("w2", "idle", "1 second")]);
    let cx = context();
    let state = MonitorState::new();
    state.add_project("test");
    let to = Reporting {
        project: "test",
        settings: &cx.settings,
        state: &state,
        role: Role::Alone,
    };
    let mut reporter = HealthReporter::default();
    let (exact, probed) = db.run(async |db| {
        let exact = reporter.run_once(&db, &cx).await.unwrap();
        reporter.on_success(exact, &to);
        (exact, reporter.run_once(&db, &cx).await.unwrap())
    });
    assert!(exact.probe.is_none() && probed.probe.is_some());
    reset_after_a_none(&mut db, &cx);

    let again = db.job(2, Some("w1"), Some("1 hour"), "acte:3");
    let probed = db.run(async |db| reporter.run_once(&db, &cx).await.unwrap());
    assert!(probed.probe.is_some());
    reset_as_listed(&mut db, &cx, &again);
}

/// Runs the reaper until it marks `worker` offline; returns what it
/// released in that run.
fn reap_until_marked(
    db: &TestDb,
    cx: &RunContext,
    reaper: &mut WorkerReaper,
    worker: &str,
) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "{worker} never marked offline");
        let out = db.run(async |db| reaper.run_once(&db, cx).await.unwrap());
        if out.marked.iter().any(|w| w == worker) {
            return out.released.into_iter().map(|j| j.id).collect();
        }
    }
}

/// Without any of the indexes, the health check's pass lists the jobs of
/// the workers found dead, and the reaper releases them by primary key
/// without a pass of its own: a worker found dead while a pass is recent
/// waits for the next pass (a job it took after that pass is left to the
/// sweep). With no pass recent, the reaper looks itself, in the same run.
#[test]
fn without_indexes_the_health_pass_lists_the_dead_workers_jobs() {
    let mut db = TestDb::new("ck_held");
    let cx = reaping_context(Duration::from_secs(60));
    let pass = |db: &TestDb| {
        db.run(async |db| HealthReporter::default().run_once(&db, &cx).await.unwrap())
    };
    let mut reaper = WorkerReaper::new();

    // No pass yet: the reaper looks itself.
    db.worker("a", "busy", "10 minutes");
    let [a_job] = db.jobs([(2, Some("a"), Some("1 second"))]);
    let released = reap_until_marked(&db, &cx, &mut reaper, "a");
    assert_eq!(
        released,
        std::slice::from_ref(&a_job),
        "looked for in the same run"
    );

    // A pass is recent, but did not ask about "b": the next one will.
    assert_eq!(pass(&db).counts.processing_jobs, 0);
    db.worker("b", "busy", "10 minutes");
    let [listed] = db.jobs([(2, Some("b"), Some("1 second"))]);
    let released = reap_until_marked(&db, &cx, &mut reaper, "b");
    assert!(released.is_empty(), "waits for the next pass: {released:?}");
    assert_eq!(cx.fleet.owed("test"), ["b"]);
    assert_eq!(pass(&db).counts.processing_jobs, 1);
    let [later] = db.jobs([(2, Some("b"), Some("1 second"))]);
    let out = db.run(async |db| reaper.run_once(&db, &cx).await.unwrap());
    assert_eq!(
        common::sorted_ids(&out.released),
        std::slice::from_ref(&listed),
        "released as listed, without a look"
    );
    assert_eq!(db.statuses(&[&a_job, &listed, &later]), [1, 1, 2]);
    assert!(cx.fleet.owed("test").is_empty());
}
