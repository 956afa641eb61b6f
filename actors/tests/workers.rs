//! The statements about workers and the fleet, called directly on a fresh
//! database: dead workers, the health counts, the election's lock.

mod common;

use std::time::Duration;

use common::TestDb;
use registre_actors::identifier::Identifier;
use registre_actors::sql::{self, AttemptColumns, ForeignDeath, HealthCounts, PROCESSING};

const TWO_MINUTES: Duration = Duration::from_secs(120);

/// A silent worker goes offline and every processing job it holds comes
/// back, said why; a live worker and an offline one are untouched, and the
/// dead one is not reported again.
#[test]
fn a_dead_worker_goes_offline_once_and_its_jobs_come_back() {
    let mut db = TestDb::new("wk_dead");
    db.workers(&[
        ("dead", "busy", "10 minutes"),
        ("live", "busy", "1 second"),
        ("gone", "offline", "1 day"),
    ]);
    let [held_a, held_b, live_job] = db.jobs([
        (2, Some("dead"), Some("1 second")),
        (2, Some("dead"), Some("1 second")),
        (2, Some("live"), Some("1 second")),
    ]);
    let (first, second) = db.run(async |db| {
        let first = sql::reap_dead_workers(&db, TWO_MINUTES, &[], None)
            .await
            .unwrap();
        let second = sql::reap_dead_workers(&db, TWO_MINUTES, &[], None)
            .await
            .unwrap();
        (first, second)
    });
    assert_eq!(first.dead, ["dead"]);
    assert_eq!(
        common::sorted_ids(&first.released),
        common::sorted(&[&held_a, &held_b])
    );
    assert!(!first.now.is_empty());
    assert!(
        second.dead.is_empty() && second.released.is_empty(),
        "{second:?}"
    );
    for id in [&held_a, &held_b] {
        assert_eq!(db.job_status(id), 1);
        assert_eq!(db.field(id, "worker_id"), None);
        assert_eq!(
            db.field(id, "error_message").as_deref(),
            Some("Released by health monitor - worker dead is dead")
        );
    }
    assert_eq!(db.job_status(&live_job), 2);
    let status = |db: &mut TestDb, w: &str| {
        db.text(&format!(
            "SELECT status FROM worker_status WHERE worker_id = '{w}'"
        ))
    };
    assert_eq!(status(&mut db, "dead").as_deref(), Some("offline"));
    assert_eq!(status(&mut db, "live").as_deref(), Some("busy"));
}

/// A worker found dead in another project has its jobs here freed, but only
/// those claimed before its death was seen (a new worker may reuse the id).
#[test]
fn a_foreign_death_frees_only_jobs_claimed_before_it_was_seen() {
    let mut db = TestDb::new("wk_foreign");
    let [before, after, other] = db.jobs([
        (2, Some("w-x"), Some("10 minutes")),
        (2, Some("w-x"), Some("1 minute")),
        (2, Some("w-y"), Some("10 minutes")),
    ]);
    let seen_at = db
        .text("SELECT to_json(now() - interval '5 minutes')#>>'{}'")
        .unwrap();
    let death = ForeignDeath {
        worker: "w-x".into(),
        seen_at,
    };
    let reaped = db.run(async |db| {
        sql::reap_dead_workers(&db, TWO_MINUTES, &[death], None)
            .await
            .unwrap()
    });
    assert!(reaped.dead.is_empty());
    let released: Vec<&str> = reaped.released.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(released, [before.as_str()]);
    assert_eq!(db.statuses(&[&before, &after, &other]), [1, 2, 2]);
}

/// Counted, a release is an attempt: a job at 2 of 3 ends failed.
#[test]
fn a_counted_release_fails_a_job_at_its_limit() {
    let mut db = TestDb::new("wk_counted");
    db.worker("dead", "busy", "10 minutes");
    let last_try = db.job(2, Some("dead"), Some("1 second"), "acte:1");
    db.exec(&format!(
        "UPDATE extraction_queue SET attemtps = 2 WHERE id = '{last_try}'"
    ));
    let cols = AttemptColumns {
        attempts: Identifier::from_static(PROCESSING.attempts),
        max: Some(PROCESSING.max_attempts),
    };
    let reaped = db.run(async |db| {
        sql::reap_dead_workers(&db, TWO_MINUTES, &[], Some(&cols))
            .await
            .unwrap()
    });
    assert_eq!(reaped.released[0].attempts, Some(3));
    assert!(reaped.released[0].failed);
    assert_eq!(db.job_status(&last_try), 4);
}

/// Active workers are those not offline with a recent heartbeat; jobs are
/// counted by the three open statuses only.
#[test]
fn the_health_counts_count_live_workers_and_open_jobs() {
    let mut db = TestDb::new("wk_health");
    db.workers(&[
        ("busy", "busy", "1 second"),
        ("idle", "idle", "10 seconds"),
        ("silent", "busy", "10 minutes"),
        ("off", "offline", "1 second"),
    ]);
    for (status, n) in [(1, 3), (2, 2), (4, 1), (3, 5)] {
        for _ in 0..n {
            db.job(status, None, None, "acte:1");
        }
    }
    let counts = db.run(async |db| sql::health_counts(&db, TWO_MINUTES).await.unwrap());
    assert_eq!(
        counts,
        HealthCounts {
            active_workers: 2,
            pending_jobs: 3,
            processing_jobs: 2,
            error_jobs: 1,
        }
    );
}

/// One session takes the lock and keeps it, run after run; another does
/// not get it and names who holds it; once the first session is gone, the
/// other takes it.
#[test]
fn one_session_holds_the_lock_and_the_other_sees_who() {
    let db = TestDb::new("wk_lock");
    db.run(async |db| {
        let first = db.dedicated().await.unwrap();
        let second = db.dedicated().await.unwrap();
        let a = sql::leadership(&db, &first, "host-a:1").await.unwrap();
        let b = sql::leadership(&db, &second, "host-b:2").await.unwrap();
        assert!(a.acting);
        assert!(!b.acting);
        assert_eq!(b.holder_instance().as_deref(), Some("host-a:1"));
        let again = sql::leadership(&db, &first, "host-a:1").await.unwrap();
        assert!(again.acting);
        assert_eq!(again.pid, a.pid);
        drop(first);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let b = sql::leadership(&db, &second, "host-b:2").await.unwrap();
            if b.acting {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the lock was never freed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}
