//! The chaos soak: a fleet of misbehaving workers (two of them with clocks
//! minutes off), the real monitor as a separate process, and faults thrown
//! at the monitor while it works (its backends killed, its connections cut,
//! its database refused for seconds, a panic in each kind of check, rows
//! locked by other sessions, a thousand workers found dead at once, a job
//! with absurd attempts). At the end nothing may be lost.
//!
//! Size by `SOAK_WORKERS` (20) and `SOAK_JOBS` (2000). The figures are
//! printed (run with `--no-capture` to see them).

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::proxy::Proxy;
use common::{Monitor, TestDb, watching};
use registre_actors::{Database, Project};
use registre_monitor::commands::demo::progress::recoveries;
use registre_monitor::commands::demo::sql;
use registre_monitor::commands::demo::worker::{Fate, Worker, WorkerConfig, WorkerStats};
use tokio_util::sync::CancellationToken;

/// Thresholds well above the longest job and heartbeat gap, so that any
/// job taken from a live worker is the monitor's fault, not the test's.
const CHECK_INTERVAL: &str = "250ms";
const DEAD_WORKER_AFTER: &str = "3s";
const STUCK_JOB_AFTER: &str = "5s";
/// Longer than the stuck threshold plus the outage plus a retry, so every
/// hung job is the monitor's to heal, outage or not.
const HANG_FOR: Duration = Duration::from_secs(15);
const LIMIT: Duration = Duration::from_secs(240);

fn env_number(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What the fault thread did.
#[derive(Debug, Default)]
struct Faults {
    kills: u32,
    cuts: usize,
    outage: Duration,
    panics: Vec<&'static str>,
}

/// Terminates the monitor's sessions on `database`; returns how many.
fn kill_monitor_backends(client: &mut postgres::Client, database: &str) -> i64 {
    let sql = format!(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = '{database}' AND application_name LIKE 'registre-monitor%') t"
    );
    client.query_one(&sql, &[]).unwrap().get(0)
}

/// Ten backend kills, two connection cuts, a panic in each check, then an
/// outage of four seconds.
fn throw_faults(
    url: String,
    name: String,
    proxy: Arc<Proxy>,
    http: std::net::SocketAddr,
) -> Faults {
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let mut faults = Faults::default();
    let actors = ["StuckJobResetter", "WorkerReaper", "HealthReporter"];
    let mut round = 0;
    std::thread::sleep(Duration::from_millis(500));
    while faults.kills < 10 && round < 60 {
        round += 1;
        std::thread::sleep(Duration::from_millis(400));
        if kill_monitor_backends(&mut client, &name) > 0 {
            faults.kills += 1;
        }
        if matches!(round, 3 | 6 | 9) {
            let actor = actors[round / 3 - 1];
            let (code, body) = common::http::post(
                http,
                &format!("/debug/fault?environment=soak&actor={actor}&fault=panic"),
            );
            assert_eq!(code, 202, "{body}");
            faults.panics.push(actor);
        }
        if matches!(round, 4 | 8) {
            faults.cuts += proxy.cut();
        }
    }
    let started = Instant::now();
    proxy.refuse();
    std::thread::sleep(Duration::from_secs(4));
    proxy.restore();
    faults.outage = started.elapsed();
    faults
}

/// Workers found dead at once in the middle of the run, each holding a job.
const BURST: i64 = 1000;
/// The skewed workers' clocks, in milliseconds off the database's.
const SKEWED: [(&str, i64); 2] = [("soak-slow", -180_000), ("soak-fast", 180_000)];

/// A thousand dead workers' rows (heartbeats an hour old), each holding a
/// job; one of those jobs at the integer maximum of attempts.
fn burst_of_deaths(client: &mut postgres::Client) {
    client
        .batch_execute(&format!(
            "INSERT INTO worker_status (worker_id, status, last_heartbeat)
               SELECT 'burst-' || i, 'busy', now() - interval '1 hour' FROM generate_series(1, {BURST}) i;
             INSERT INTO extraction_queue (status_id, worker_id, processing_started_at, document_source, document_number, attemtps)
               SELECT 2, 'burst-' || i, now(), 'acte', 'burst-' || i,
                      CASE WHEN i = 1 THEN 2147483647 ELSE 0 END
               FROM generate_series(1, {BURST}) i"
        ))
        .unwrap();
}

/// Until `stop`, locks a processing job for a second at a time, as another
/// session (an operator, a migration) may: the monitor must skip it, never
/// wait for it, and heal it once free. Returns how many it locked.
fn lock_rows(url: String, stop: Arc<std::sync::atomic::AtomicBool>) -> u32 {
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let mut locked = 0;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let mut tx = client.transaction().unwrap();
        let rows = tx
            .query(
                "SELECT id FROM extraction_queue WHERE status_id = 2 ORDER BY random() LIMIT 3 FOR UPDATE SKIP LOCKED",
                &[],
            )
            .unwrap();
        locked += rows.len() as u32;
        std::thread::sleep(Duration::from_millis(1000)); // the other session's work
        tx.rollback().unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    locked
}

/// Nothing is lost: every job ends finished or failed with a reason, none
/// is left processing or held by an offline worker, no job is taken from a
/// live worker before its threshold, every crash and hang is healed, and
/// the monitor lives through every fault, each of its restarts logged.
#[test]
fn chaos_soak_loses_nothing() {
    let workers = env_number("SOAK_WORKERS", 20);
    let jobs = env_number("SOAK_JOBS", 2000);
    let mut db = TestDb::new("soak");
    let proxy = Arc::new(Proxy::start());
    let vars = watching(
        &[("soak", &proxy.url(&db.name))],
        &[
            ("MONITOR_CHECK_INTERVAL", CHECK_INTERVAL),
            ("MONITOR_DEAD_WORKER_AFTER", DEAD_WORKER_AFTER),
            ("MONITOR_STUCK_JOB_AFTER", STUCK_JOB_AFTER),
            ("MONITOR_HEALTH_LOG_EVERY", "2s"),
            ("MONITOR_CONNECT_TIMEOUT", "1s"),
            ("MONITOR_STATEMENT_TIMEOUT", "2s"),
            ("MONITOR_ENABLE_FAULT_INJECTION", "true"),
            ("LOG_LEVEL", "info"),
        ],
    );
    let mut monitor = Monitor::start(&vars);
    let http = common::http::addr(&monitor);
    monitor.wait_for(
        1,
        "📊 System health status",
        Some("soak"),
        Duration::from_secs(20),
    );

    // The workers' own name, so the backend kills hit only the monitor.
    let project =
        Project::parse("soak", &format!("{}?application_name=soak-workers", db.url)).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    let started = Instant::now();
    let fault_thread = {
        let (url, name, proxy) = (db.url.clone(), db.name.clone(), proxy.clone());
        std::thread::spawn(move || throw_faults(url, name, proxy, http))
    };
    let stop_locking = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let lock_thread = {
        let (url, stop) = (db.url.clone(), stop_locking.clone());
        std::thread::spawn(move || lock_rows(url, stop))
    };
    burst_of_deaths(&mut db.client);
    let stats: Vec<WorkerStats> = local.block_on(&runtime, async {
        let queue = Database::new(&project, Duration::from_secs(5), Duration::from_secs(10));
        assert_eq!(
            sql::enqueue_jobs(&queue, jobs).await.unwrap(),
            i64::from(jobs)
        );
        let cancel = CancellationToken::new();
        let mut live: Vec<Arc<Mutex<WorkerStats>>> = Vec::new();
        let mut handles = Vec::new();
        let names = (0..workers).map(|n| (format!("soak-worker-{n}"), 0)).chain(
            SKEWED
                .iter()
                .map(|(name, offset)| (name.to_string(), *offset)),
        );
        for (n, (name, offset)) in names.enumerate() {
            let mut config = WorkerConfig::new(name);
            config.clock_offset_ms = offset;
            config.job_duration = (Duration::from_millis(50), Duration::from_millis(150));
            config.heartbeat_every = Duration::from_millis(250);
            config.hang_for = HANG_FOR;
            config.restart_after = Some(Duration::from_secs(1));
            config.idle_poll = Duration::from_millis(100);
            config.crash_probability = 0.002;
            config.hang_probability = 0.003;
            config.failure_probability = 0.02;
            // One worker in five crashes on its first job.
            config.first_fate = (n % 5 == 0 && offset == 0).then_some(Fate::Crash);
            let worker = Worker::new(
                Database::new(&project, Duration::from_secs(5), Duration::from_secs(10)),
                config,
            );
            live.push(worker.stats());
            handles.push(tokio::task::spawn_local(worker.run(cancel.clone())));
        }
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if let Ok(q) = sql::queue_progress(&queue).await
                && q.waiting == 0
                && q.processing == 0
            {
                break;
            }
            assert!(
                started.elapsed() < LIMIT,
                "the queue did not drain within {LIMIT:?}"
            );
        }
        cancel.cancel();
        let mut all = Vec::new();
        for h in handles {
            all.push(h.await.unwrap());
        }
        all
    });
    let faults = fault_thread.join().expect("fault thread");
    stop_locking.store(true, std::sync::atomic::Ordering::SeqCst);
    let rows_locked = lock_thread.join().expect("lock thread");
    let elapsed = started.elapsed();
    assert!(monitor.running(), "the monitor process died");

    // Every job finished or failed with a reason; none left behind.
    let count = |db: &mut TestDb, cond: &str| {
        db.count(&format!(
            "SELECT count(*) FROM extraction_queue WHERE {cond}"
        ))
    };
    let all_jobs = i64::from(jobs) + BURST;
    assert_eq!(count(&mut db, "status_id IN (3, 4)"), all_jobs);
    assert_eq!(
        db.count("SELECT count(*) FROM worker_status WHERE worker_id LIKE 'burst-%' AND status <> 'offline'"),
        0,
        "every dead worker of the burst offline"
    );
    // The absurd one was released, out of attempts, without an overflow.
    assert_eq!(
        count(
            &mut db,
            "document_number = 'burst-1' AND status_id = 4 AND attemtps = 2147483647"
        ),
        1
    );
    // The skewed clocks were said, once each, and decided nothing.
    let skews = monitor.find("⚠️  Worker clock skew", Some("soak"));
    for (name, _) in SKEWED {
        assert_eq!(
            skews.iter().filter(|l| l["worker"] == name).count(),
            1,
            "{name}: {skews:?}"
        );
    }
    assert_eq!(count(&mut db, "status_id = 4 AND error_message IS NULL"), 0);
    assert_eq!(count(&mut db, "status_id IN (1, 2)"), 0);
    let held_by_offline = db.count(
        "SELECT count(*) FROM extraction_queue q JOIN worker_status w USING (worker_id)
         WHERE q.status_id = 2 AND w.status = 'offline'",
    );
    assert_eq!(held_by_offline, 0);
    let stolen: u64 = stats.iter().map(|s| s.stolen).sum();
    assert_eq!(
        stolen, 0,
        "jobs taken from live workers before their threshold"
    );

    // Every crash and hang was healed by the monitor.
    let healed = recoveries(&stats);
    // A job whose crash was its last attempt is healed by going to
    // failed, out of attempts: nobody takes it again to say so.
    let failed_out = |db: &mut TestDb, job: &str| {
        db.count(&format!(
            "SELECT count(*) FROM extraction_queue WHERE id = '{job}' AND status_id = 4
               AND error_message LIKE 'Failed by health monitor%'"
        )) == 1
    };
    let unhealed: Vec<_> = healed
        .iter()
        .filter(|r| r.took.is_none() && !failed_out(&mut db, &r.incident.job))
        .collect();
    // What the monitor said of each unhealed job, to tell a slow release
    // from a job taken early.
    let said: Vec<String> = unhealed
        .iter()
        .flat_map(|r| {
            let job = r.incident.job.clone();
            monitor.raw_lines().into_iter().filter(move |l| {
                l.contains(&job) || l.contains(&format!("\"{}\"", r.incident.worker))
            })
        })
        .collect();
    assert!(
        unhealed.is_empty(),
        "not healed: {unhealed:?}\n{}",
        said.join("\n")
    );
    let worst = healed
        .iter()
        .filter_map(|r| r.took)
        .max()
        .unwrap_or_default();

    // The monitor took every fault: each panic restarted its check, logged.
    assert_eq!(faults.kills, 10, "{faults:?}");
    assert_eq!(faults.panics.len(), 3);
    let restarts = monitor.find("🔁", Some("soak"));
    for actor in &faults.panics {
        assert!(
            restarts.iter().any(|l| l["actor"] == *actor),
            "no restart logged for {actor}: {restarts:?}"
        );
    }
    assert_eq!(
        restarts.len(),
        monitor.find("💥 Panic", None).len(),
        "every restart has its panic logged"
    );
    monitor.wait_for(
        1,
        "✅ Environment healthy again",
        Some("soak"),
        Duration::from_secs(20),
    );

    let sum = |prefix: &str, field: &str| -> u64 {
        monitor
            .find(prefix, Some("soak"))
            .iter()
            .map(|l| l[field].as_u64().unwrap_or(0))
            .sum()
    };
    let crashes: u64 = stats.iter().map(|s| s.crashes).sum();
    let hangs: u64 = stats.iter().map(|s| s.hangs).sum();
    let failed = count(&mut db, "status_id = 4");
    println!(
        "soak: {all_jobs} jobs ({failed} failed after max attempts) by {workers} workers and two with \
         clocks 3 min off, {BURST} found dead at once, {rows_locked} rows locked meanwhile, in {:.1}s; \
         {crashes} crashes, {hangs} hangs; monitor: {} stuck jobs reset, {} dead workers reaped, \
         {} jobs released, {} restarts; faults: {} backend kills, {} connections cut, {:.1}s outage, \
         panics in {:?}; worst recovery {:.1}s",
        elapsed.as_secs_f64(),
        sum("🔄 Auto-reset stuck jobs", "count"),
        sum("💀 Cleaned up dead workers", "count"),
        monitor
            .find("💀 Cleaned up dead workers", Some("soak"))
            .iter()
            .map(|l| l["releasedJobs"].as_array().map_or(0, |a| a.len()))
            .sum::<usize>(),
        restarts.len(),
        faults.kills,
        faults.cuts,
        faults.outage.as_secs_f64(),
        faults.panics,
        worst.as_secs_f64(),
    );
    assert!(
        crashes >= u64::from(workers / 5),
        "one worker in five crashed"
    );
}
