//! The statements about workers and the fleet, called directly on a fresh
//! database: dead workers, the health counts, the election's lock.

mod common;

use std::time::Duration;

use common::TestDb;
use registre_actors::identifier::Identifier;
use registre_actors::sql::{self, AttemptColumns, HealthCounts, PROCESSING};

const TWO_MINUTES: Duration = Duration::from_secs(120);

/// The read returns the live rows with their heartbeats exactly as
/// written (null and infinite included) and the database's clock; offline
/// rows are left out.
#[test]
fn the_read_returns_live_rows_and_the_database_clock() {
    let mut db = TestDb::new("wk_read");
    db.workers(&[("a", "busy", "1 second"), ("gone", "offline", "1 day")]);
    db.exec("INSERT INTO worker_status (worker_id, status, last_heartbeat) VALUES ('inf', 'idle', 'infinity')");
    let read = db.run(async |db| sql::read_workers(&db).await.unwrap());
    let mut ids: Vec<&str> = read.rows.iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["a", "inf"]);
    let now: f64 = db
        .text("SELECT extract(epoch FROM now())::text")
        .unwrap()
        .parse()
        .unwrap();
    assert!((now - read.now).abs() < 60.0, "{} vs {now}", read.now);
    let inf = read.rows.iter().find(|r| r.id == "inf").unwrap();
    assert_eq!(inf.hb.as_deref(), Some("Infinity"));
}

/// A row is marked offline only if its heartbeat is still the one judged
/// and no other session holds it; an offline row is never marked again.
#[test]
fn marking_offline_is_guarded_by_the_heartbeat_and_skips_locked_rows() {
    let mut db = TestDb::new("wk_mark");
    db.workers(&[
        ("dead", "busy", "10 minutes"),
        ("beat", "busy", "10 minutes"),
        ("held", "busy", "10 minutes"),
    ]);
    let read = db.run(async |db| sql::read_workers(&db).await.unwrap());
    let judged: Vec<(String, Option<String>)> = read
        .rows
        .iter()
        .map(|r| (r.id.clone(), r.hb.clone()))
        .collect();
    // "beat" heartbeats after the read; "held" is locked by a session.
    db.exec("UPDATE worker_status SET last_heartbeat = now() WHERE worker_id = 'beat'");
    let lock = db.lock_rows("worker_status", "worker_id = 'held'");
    let first = db.run(async |db| sql::mark_offline(&db, &judged).await.unwrap());
    assert_eq!(first, ["dead"]);
    drop(lock);
    let second = db.run(async |db| sql::mark_offline(&db, &judged).await.unwrap());
    assert_eq!(second, ["held"]);
    let status = |db: &mut TestDb, w: &str| {
        db.text(&format!(
            "SELECT status FROM worker_status WHERE worker_id = '{w}'"
        ))
    };
    assert_eq!(status(&mut db, "beat").as_deref(), Some("busy"));
}

/// Every processing job of a dead worker comes back, whatever start time
/// its worker wrote; a job another session holds is reported as still
/// held, and released once free. With the index on the workers' jobs (one
/// statement) and without it (a read-only look, then by primary key).
#[test]
fn a_dead_workers_jobs_come_back_and_locked_ones_stay_owed() {
    for indexed in [true, false] {
        dead_workers_jobs_come_back(indexed);
    }
}

fn dead_workers_jobs_come_back(indexed: bool) {
    let mut db = TestDb::new(if indexed {
        "wk_release_ix"
    } else {
        "wk_release"
    });
    let [old, future, locked, other] = db.jobs([
        (2, Some("dead"), Some("10 minutes")),
        (2, Some("dead"), Some("-5 minutes")),
        (2, Some("dead"), Some("1 minute")),
        (2, Some("live"), Some("10 minutes")),
    ]);
    let lock = db.lock_job(&locked);
    let dead = vec!["dead".to_string()];
    let first = db.run(async |db| {
        sql::release_jobs_of(&db, &dead, None, indexed)
            .await
            .unwrap()
    });
    assert_eq!(
        common::sorted_ids(&first.released),
        common::sorted(&[&old, &future])
    );
    assert_eq!(first.remaining, ["dead"]);
    assert_eq!(
        db.field(&old, "error_message").as_deref(),
        Some("Released by health monitor - worker dead is dead")
    );
    drop(lock);
    let second = db.run(async |db| {
        sql::release_jobs_of(&db, &dead, None, indexed)
            .await
            .unwrap()
    });
    assert_eq!(
        common::sorted_ids(&second.released),
        common::sorted(&[&locked])
    );
    assert!(second.remaining.is_empty());
    assert_eq!(db.statuses(&[&old, &future, &locked, &other]), [1, 1, 1, 2]);
}

/// Worker names are data, whatever they hold: quotes, backslashes, the
/// characters of an array literal, the word NULL, a parameter's `$1`. Each is marked offline
/// and has its jobs released by its own name, by both release paths, and
/// a worker named like a part of another's name is left alone.
#[test]
fn odd_worker_names_are_marked_and_released_by_their_own_names() {
    const ODD: [&str; 5] = [r#"a"b\c,{}'x"#, "NULL", "w 1", "é,ü", "$1"];
    for indexed in [true, false] {
        let mut db = TestDb::new(if indexed { "wk_odd_ix" } else { "wk_odd" });
        for name in ODD.iter().chain(&["a", "w"]) {
            db.worker(name, "busy", "10 minutes");
        }
        let jobs: Vec<String> = ODD
            .iter()
            .map(|w| db.job(2, Some(w), Some("1 second"), "acte:1"))
            .collect();
        let bystander = db.job(2, Some("a"), Some("1 second"), "acte:1");
        let judged: Vec<(String, Option<String>)> = db
            .run(async |db| sql::read_workers(&db).await.unwrap())
            .rows
            .into_iter()
            .filter(|r| ODD.contains(&r.id.as_str()))
            .map(|r| (r.id, r.hb))
            .collect();
        assert_eq!(judged.len(), ODD.len());
        let mut marked = db.run(async |db| sql::mark_offline(&db, &judged).await.unwrap());
        marked.sort();
        let mut expected: Vec<String> = ODD.iter().map(|w| w.to_string()).collect();
        expected.sort();
        assert_eq!(marked, expected);
        let released = db.run(async |db| {
            sql::release_jobs_of(&db, &expected, None, indexed)
                .await
                .unwrap()
        });
        let mut ids = jobs.clone();
        ids.sort();
        assert_eq!(common::sorted_ids(&released.released), ids);
        assert!(released.remaining.is_empty(), "{released:?}");
        let mut workers: Vec<String> = released
            .released
            .iter()
            .filter_map(|j| j.worker.clone())
            .collect();
        workers.sort();
        assert_eq!(workers, expected);
        assert_eq!(db.job_status(&bystander), 2, "a worker named a is alive");
        let offline = db.text("SELECT count(*)::text FROM worker_status WHERE status = 'offline'");
        assert_eq!(offline.as_deref(), Some("5"));
    }
}

/// Counted, a release is an attempt: a job at 2 of 3 ends failed.
#[test]
fn a_counted_release_fails_a_job_at_its_limit() {
    let mut db = TestDb::new("wk_counted");
    let last_try = db.job(2, Some("dead"), Some("1 second"), "acte:1");
    db.exec(&format!(
        "UPDATE extraction_queue SET attemtps = 2 WHERE id = '{last_try}'"
    ));
    let cols = AttemptColumns {
        attempts: Identifier::from_static(PROCESSING.attempts),
        max: Some(PROCESSING.max_attempts),
    };
    let dead = vec!["dead".to_string()];
    let released = db.run(async |db| {
        sql::release_jobs_of(&db, &dead, Some(&cols), false)
            .await
            .unwrap()
    });
    assert_eq!(released.released[0].attempts, Some(3));
    assert!(released.released[0].failed);
    assert_eq!(db.job_status(&last_try), 4);
    // Nothing held: the look finds nothing, and nothing is written.
    let none = db.run(async |db| {
        sql::release_jobs_of(&db, &dead, Some(&cols), false)
            .await
            .unwrap()
    });
    assert_eq!(none, sql::Released::default());
}

/// The holders of processing jobs without a live row here: offline, or
/// never registered in this project.
#[test]
fn holders_without_a_live_row_are_found() {
    let mut db = TestDb::new("wk_holders");
    db.workers(&[("live", "busy", "1 second"), ("off", "offline", "1 second")]);
    db.jobs([
        (2, Some("live"), Some("1 second")),
        (2, Some("off"), Some("1 second")),
        (2, Some("ghost"), Some("1 second")),
        (1, Some("pending-ghost"), None),
    ]);
    let holders = db.run(async |db| sql::holders_without_live_row(&db).await.unwrap());
    assert_eq!(holders, ["ghost", "off"]);
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
    // Both shapes (three index ranges, one FILTER pass) count the same.
    for indexed in [true, false] {
        let counts =
            db.run(async |db| sql::health_counts(&db, TWO_MINUTES, indexed).await.unwrap());
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
    let (probe, candidates) = db.run(async |db| {
        sql::health_probe(&db, TWO_MINUTES, (2, 1), None)
            .await
            .unwrap()
    });
    assert_eq!(
        probe,
        sql::HealthProbe {
            active_workers: 2,
            pending: true,
            processing: 2,
            errors: 1,
        }
    );
    assert_eq!(candidates, None, "not asked");
    // Asked, the probe lists what the stuck look itself finds.
    for (after, stuck) in [(Duration::ZERO, 2), (Duration::from_secs(86_400), 0)] {
        let rules = sql::StuckRules::plain(after);
        let look_sql = sql::stuck_candidates_sql(&rules, true);
        let (candidates, look) = db.run(async |db| {
            let probe = sql::health_probe(&db, TWO_MINUTES, (2, 1), Some(&look_sql)).await;
            let look = sql::stuck_candidates(&db, &rules, true).await.unwrap();
            (probe.unwrap().1.unwrap(), look)
        });
        assert_eq!(candidates, look, "{after:?}");
        assert_eq!(candidates.len(), stuck, "{after:?}");
    }
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

/// The health check's pass over the table lists the processing jobs of the
/// workers it is asked about (odd names included), no others, up to one
/// more than a batch (so that a cut list shows).
#[test]
fn the_pass_lists_the_jobs_of_the_workers_asked_about() {
    let mut db = TestDb::new("wk_pass_held");
    let odd = r#"a"b\c,{}'x"#;
    let processing = i32::from(PROCESSING.status);
    let held = db.job(processing, Some(odd), Some("1 second"), "acte:1");
    db.job(1, Some(odd), None, "acte:2");
    db.job(processing, Some("other"), Some("1 second"), "acte:3");
    let look = "false";
    let asked = [odd.to_string(), "nobody".to_string()];
    let (counts, listed) = db.run(async |db| {
        sql::health_counts_and_look(&db, TWO_MINUTES, look, &asked)
            .await
            .unwrap()
    });
    assert_eq!(counts.processing_jobs, 2);
    assert_eq!(listed.held, [held]);
    assert!(listed.stuck_candidates.is_empty());
    let (_, none) = db.run(async |db| {
        sql::health_counts_and_look(&db, TWO_MINUTES, look, &[])
            .await
            .unwrap()
    });
    assert!(none.held.is_empty(), "{none:?}");

    db.exec(&format!(
        "INSERT INTO extraction_queue (status_id, worker_id, processing_started_at, document_source, document_number)
         SELECT {processing}, 'many', now(), 'acte', n::text FROM generate_series(1, {}) n",
        sql::BATCH + 5
    ));
    let many = ["many".to_string()];
    let (_, cut) = db.run(async |db| {
        sql::health_counts_and_look(&db, TWO_MINUTES, look, &many)
            .await
            .unwrap()
    });
    assert_eq!(cut.held.len(), sql::BATCH + 1);
}
