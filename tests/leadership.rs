//! The leader election can never stop the healing: real processes, real
//! databases, `kill -9`, directly and through PgBouncer in transaction mode
//! (on a port other than 6543), with and without the lease table
//! (`sql/leader.sql`). Each prints the time from the crash to the stuck job
//! back in the queue (`--nocapture` shows it).

mod common;

use std::time::{Duration, Instant};

use common::fleet::{WAIT, cycles, reports, troubled, wait_reported};
use common::pgbouncer::PgBouncer;
use common::{Monitor, TestDb, fast};

/// The lease table, as operators create it.
const LEADER_SQL: &str = include_str!("../sql/leader.sql");

/// The check interval here: long enough that process start-up and a
/// loaded machine are small beside it.
const INTERVAL: Duration = Duration::from_secs(2);
/// `MONITOR_DEAD_WORKER_AFTER` here.
const DEAD_AFTER: Duration = Duration::from_secs(2);

fn settings(url: &str) -> Vec<(String, String)> {
    let mut vars = fast(&[
        ("MONITOR_CHECK_INTERVAL", "2s"),
        ("MONITOR_STUCK_JOB_AFTER", "2s"),
        ("MONITOR_HEALTH_LOG_EVERY", "2s"),
        ("MONITOR_DEAD_WORKER_AFTER", "2s"),
    ]);
    vars.push(("A_SUPABASE_DB_URL".into(), url.into()));
    vars
}

/// Waits until `jobs` are back in the queue; returns when that was seen.
fn wait_back_in_queue(db: &mut TestDb, jobs: &[String]) -> Instant {
    common::eventually("the stuck jobs back in the queue", WAIT, || {
        jobs.iter().all(|j| db.job_status(j) == 1)
    });
    Instant::now()
}

/// Two monitors on one troubled project, directly: exactly one speaks
/// (acts, and warns about anomalies) and the other stands by (`lease`) or
/// heals as a backup (no lease table); `kill -9` of the speaking one, and
/// the survivor puts a job stuck since the crash back in the queue within
/// two check intervals.
fn the_survivor_heals_within_two_intervals(tag: &str, lease: bool) {
    let mut db = troubled(tag);
    if lease {
        db.exec(LEADER_SQL);
    }
    let vars = settings(&db.url);
    let (first, second) = (Monitor::start(&vars), Monitor::start(&vars));
    let both = [&first, &second];
    wait_reported(&both, "a", 3, 2);
    cycles(&both, "a", 3);
    let (jobs, workers) = reports(&both, "a");
    assert!(jobs.values().chain(workers.values()).all(|n| *n == 1));
    let speaking: Vec<usize> = (0..2)
        .filter(|i| !both[*i].find("👑 Acting", Some("a")).is_empty())
        .collect();
    assert_eq!(speaking.len(), 1, "exactly one speaks");
    let (speaker, other) = (both[speaking[0]], both[1 - speaking[0]]);
    let (said, role, healing) = if lease {
        ("💤 Standing by", "standby", 0.0)
    } else {
        ("🛟 Healing as backup", "backup", 1.0)
    };
    assert_eq!(other.find(said, Some("a")).len(), 1);
    assert!(!speaker.find("⚠️", Some("a")).is_empty());
    assert!(other.find("⚠️", Some("a")).is_empty(), "only one speaks");
    let addr = common::http::addr(other);
    let (_, status) = common::http::get_json(addr, "/status");
    assert_eq!(status["projects"]["a"]["role"], role, "{status}");
    let m = common::http::metrics(addr);
    assert_eq!(m["registre_monitor_acting{environment=\"a\"}"], 0.0);
    assert_eq!(m["registre_monitor_healing{environment=\"a\"}"], healing);

    speaker.signal("KILL");
    let crash = Instant::now();
    let stuck = db.job(2, Some("worker-hung"), Some("10 minutes"), "acte:99");
    let took = wait_back_in_queue(&mut db, std::slice::from_ref(&stuck)) - crash;
    eprintln!("direct, lease table: {lease}: crash -> job back in queue: {took:?}");
    assert!(took <= 2 * INTERVAL, "{took:?}: more than two intervals");
    assert!(reports(&[other], "a").0.contains_key(&stuck));
    if lease {
        other.wait_for(1, "👑 Acting for environment", Some("a"), WAIT);
    }
}

#[test]
fn with_the_lease_table_one_speaks_and_the_survivor_heals_within_two_intervals() {
    the_survivor_heals_within_two_intervals("lease_direct", true);
}

#[test]
fn with_the_lock_one_speaks_and_the_backup_heals_within_two_intervals() {
    the_survivor_heals_within_two_intervals("lock_direct", false);
}

/// Through PgBouncer in transaction mode on a random port (never 6543),
/// with four server connections: two monitors, both `kill -9`ed (without
/// the lease table, the lock they took stays on a pooled server connection
/// held by nobody). Jobs stuck and a worker dead since the crash: a fresh
/// instance puts the jobs back and reaps the worker within two check
/// intervals of the crash.
fn a_fresh_instance_heals_through_pgbouncer(tag: &str, lease: bool) {
    let Some(bouncer) = PgBouncer::start_with_pool(4) else {
        return;
    };
    assert_ne!(bouncer.port, 6543);
    let mut db = TestDb::new(tag);
    if lease {
        db.exec(LEADER_SQL);
    }
    let vars = settings(&bouncer.url(&db.name, PgBouncer::PASSWORD));
    let (mut first, mut second) = (Monitor::start(&vars), Monitor::start(&vars));
    for m in [&first, &second] {
        m.wait_for(3, "📊 System health status", Some("a"), WAIT);
    }
    if lease {
        let speaking = [&first, &second]
            .iter()
            .filter(|m| !m.find("👑 Acting", Some("a")).is_empty())
            .count();
        assert_eq!(speaking, 1, "through the pooler too, one holds the lease");
    }
    for m in [&mut first, &mut second] {
        m.signal("KILL");
        m.wait_exit(WAIT).expect("killed");
    }
    let crash = Instant::now();
    if !lease {
        let held = db.count(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 1380271949
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        );
        assert_eq!(held, 1, "the lock stays on a pooled connection");
    }
    let stuck: Vec<String> = (0..3)
        .map(|n| {
            db.job(
                2,
                Some("worker-hung"),
                Some("10 minutes"),
                &format!("acte:{n}"),
            )
        })
        .collect();
    db.worker("worker-dead", "busy", "10 minutes");
    let held = db.job(2, Some("worker-dead"), Some("1 second"), "index:9");
    let fresh = Monitor::start(&vars);
    let back = wait_back_in_queue(&mut db, &stuck);
    // A fresh process believes a heartbeat already stale only after
    // watching it for the dead threshold (2 s here): a slow clock could
    // have written it (docs/operations.md, whose clock).
    wait_back_in_queue(&mut db, std::slice::from_ref(&held));
    common::eventually("the dead worker reaped", WAIT, || {
        db.text("SELECT status FROM worker_status WHERE worker_id = 'worker-dead'")
            .as_deref()
            == Some("offline")
    });
    let (took, reaped) = (back - crash, crash.elapsed());
    eprintln!(
        "pgbouncer transaction, lease table: {lease}: crash -> jobs back in queue: {took:?}, \
         worker reaped: {reaped:?}"
    );
    assert!(took <= 2 * INTERVAL, "{took:?}: more than two intervals");
    assert!(
        reaped <= 2 * INTERVAL + DEAD_AFTER,
        "reaped after {reaped:?}"
    );
    // Said once its jobs are seen to: without the indexes, after the
    // health check's next pass, an interval or two after the row went
    // offline (docs/operations.md).
    fresh.wait_for(1, "💀 Cleaned up dead workers", Some("a"), WAIT);
}

#[test]
fn through_pgbouncer_with_the_lease_table_a_fresh_instance_heals_after_kill_9_of_both() {
    a_fresh_instance_heals_through_pgbouncer("lease_bouncer", true);
}

#[test]
fn through_pgbouncer_without_the_lease_table_a_fresh_instance_heals_after_kill_9_of_both() {
    a_fresh_instance_heals_through_pgbouncer("lock_bouncer", false);
}
