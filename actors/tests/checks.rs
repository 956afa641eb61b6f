//! Each check's `run_once`, called directly (no actor, no schedule) on a
//! fresh database: what it changes and what it returns (the election's
//! are in `election.rs`).

mod common;

use std::sync::{Arc, Mutex};

use actix::prelude::*;
use common::TestDb;
use registre_actors::check::{Check, RunContext};
use registre_actors::features::Features;
use registre_actors::sql::{ForeignDeath, HealthCounts};
use registre_actors::worker_reaper::{ForeignDeaths, WorkerReaper, WorkersDied};
use registre_actors::{HealthReporter, Settings, StuckJobResetter};

fn context() -> RunContext {
    RunContext {
        settings: Arc::new(Settings::default()),
        features: Features::new("test"),
    }
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
    let resets = db.run(async |db| StuckJobResetter.run_once(&db, &cx).await.unwrap());
    assert_eq!(resets.jobs.len(), 1);
    assert_eq!(resets.jobs[0].id, stale);
    assert_eq!(resets.jobs[0].attempts, Some(1));
    assert!(resets.ocr.is_empty());
    assert_eq!(db.field(&stale, "attemtps").as_deref(), Some("1"));
    assert_eq!(db.statuses(&[&stale, &fresh]), [1, 2]);
}

/// Without the attempts column the resetter still resets, uncounted.
#[test]
fn without_the_attempts_column_the_resetter_resets_uncounted() {
    let mut db = TestDb::with_schema("ck_noattempts", &common::schema_without_attempts());
    let stale = db.job(2, Some("w1"), Some("10 minutes"), "acte:1");
    let cx = context();
    let resets = db.run(async |db| StuckJobResetter.run_once(&db, &cx).await.unwrap());
    assert_eq!(resets.jobs[0].attempts, None);
    assert_eq!(db.job_status(&stale), 1);
}

/// Collects the deaths a reaper reports.
struct News(Arc<Mutex<Vec<WorkersDied>>>);

impl Actor for News {
    type Context = Context<Self>;
}

impl Handler<WorkersDied> for News {
    type Result = ();

    fn handle(&mut self, msg: WorkersDied, _: &mut Self::Context) {
        self.0.lock().unwrap().push(msg);
    }
}

/// The reaper reaps the silent worker, frees the jobs of the deaths it was
/// given from other projects, and returns both (`on_success` then forgets
/// the deaths it was given).
#[test]
fn the_reaper_reaps_and_frees_the_jobs_of_foreign_deaths() {
    let mut db = TestDb::new("ck_reap");
    db.worker("dead", "busy", "10 minutes");
    let [held, foreign_job] = db.jobs([
        (2, Some("dead"), Some("1 second")),
        (2, Some("w-elsewhere"), Some("10 minutes")),
    ]);
    let seen_at = db.text("SELECT to_json(now())#>>'{}'").unwrap();
    let death = ForeignDeath {
        worker: "w-elsewhere".into(),
        seen_at,
    };
    let foreign = ForeignDeaths::default();
    foreign.lock().unwrap().insert(death.clone());
    let cx = context();
    let (reaped, sent) = db.run(async |db| {
        let news = News(Arc::default()).start();
        let mut reaper = WorkerReaper::new(foreign.clone(), news.downgrade().recipient());
        reaper.run_once(&db, &cx).await.unwrap()
    });
    assert_eq!(reaped.dead, ["dead"]);
    assert_eq!(
        common::sorted_ids(&reaped.released),
        common::sorted(&[&held, &foreign_job])
    );
    assert_eq!(sent, [death]);
    assert_eq!(db.statuses(&[&held, &foreign_job]), [1, 1]);
}

/// The health reporter's run only counts.
#[test]
fn the_health_reporter_counts() {
    let mut db = TestDb::new("ck_health");
    db.worker("w1", "idle", "1 second");
    db.job(1, None, None, "acte:1");
    let cx = context();
    let counts = db.run(async |db| HealthReporter::default().run_once(&db, &cx).await.unwrap());
    assert_eq!(
        counts,
        HealthCounts {
            active_workers: 1,
            pending_jobs: 1,
            ..HealthCounts::default()
        }
    );
}
