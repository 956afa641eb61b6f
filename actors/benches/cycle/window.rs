//! One measurement window: the workers' own traffic (heartbeats, and in
//! the incident cycle the jobs that get stuck and the workers that die),
//! plus one side at the check interval, and what the database spent on it
//! as `pg_stat_database.active_time` sees it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use postgres::Client;

use super::sides::baseline_cycle;
use super::{Args, connect, scalar, simple};

/// What runs beside the workers in a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Nothing: the workers' traffic alone, subtracted from the others.
    Workers,
    /// The first system's statement list.
    Baseline,
    /// The real monitor binary (the `--monitor` list's index).
    Monitor(usize),
}

/// What a window measured.
#[derive(Debug, Clone, Default)]
pub struct Spent {
    /// Active time of the database's backends per cycle, ms.
    pub ms_per_cycle: f64,
    pub cycles: f64,
    /// `pg_stat_statements` per statement (ms per cycle, calls per cycle,
    /// query), when the extension is loaded.
    pub statements: Vec<(f64, f64, String)>,
}

/// Live workers heartbeat every interval: `worker-1` to `worker-19`.
const LIVE_WORKERS: u32 = 19;

/// Runs a window of `args.cycles` cycles after the start-up, on `db`.
pub fn window(
    admin: &mut Client,
    args: &Args,
    db: &str,
    side: Side,
    incident: bool,
    tag: usize,
) -> Spent {
    let interval = args.interval;
    let jobs = job_pool(&mut connect(&args.url, db), args.cycles * 2 + 40);
    let stop = Arc::new(AtomicBool::new(false));
    let driver = {
        let (url, db, stop) = (args.url.clone(), db.to_string(), stop.clone());
        thread::spawn(move || drive(&url, &db, interval, incident, jobs, tag, &stop))
    };
    let mut running = match side {
        Side::Workers => Running::Nothing,
        Side::Baseline => {
            let (url, db, stop) = (args.url.clone(), db.to_string(), stop.clone());
            let (stuck_after, dead_after) = (args.stuck_after, args.dead_after);
            Running::Thread(thread::spawn(move || {
                let mut c = connect(&url, &db);
                every(interval, &stop, |_| {
                    baseline_cycle(&mut c, stuck_after, dead_after)
                });
            }))
        }
        Side::Monitor(i) => Running::Process(start_monitor(args, &args.monitors[i], db)),
    };
    // Start-up: the monitor's first status line, then time for the
    // incident's first deaths to be judged (or a few cycles).
    if let Running::Process(m) = &mut running {
        m.wait_for("System health status", Duration::from_secs(120));
    }
    let settle = if incident {
        args.dead_after + 4 * interval
    } else {
        3 * interval
    };
    thread::sleep(settle);
    let pgss = statements_loaded(admin);
    let dbid = scalar(
        admin,
        &format!("SELECT oid FROM pg_database WHERE datname = '{db}'"),
    )
    .expect("the database's oid");
    if pgss {
        simple(
            admin,
            &format!("SELECT pg_stat_statements_reset(0, {dbid}, 0)"),
        );
    }
    let before = active_ms(admin, db);
    let started = Instant::now();
    thread::sleep(interval * args.cycles as u32);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    running.stop();
    driver.join().expect("the workers' driver");
    let after = settled_active_ms(admin, db);
    let cycles = elapsed.as_secs_f64() / interval.as_secs_f64();
    let statements = if pgss {
        per_statement(admin, &dbid, cycles)
    } else {
        Vec::new()
    };
    Spent {
        ms_per_cycle: (after - before) / cycles,
        cycles,
        statements,
    }
}

enum Running {
    Nothing,
    Thread(JoinHandle<()>),
    Process(Monitor),
}

impl Running {
    fn stop(self) {
        match self {
            Running::Nothing => {}
            Running::Thread(t) => t.join().expect("the baseline"),
            Running::Process(m) => m.stop(),
        }
    }
}

/// Calls `f` every `interval` on a fixed schedule until `stop`.
fn every(interval: Duration, stop: &AtomicBool, mut f: impl FnMut(usize)) {
    let start = Instant::now();
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        f(i);
        i += 1;
        let next = start + interval * i as u32;
        while !stop.load(Ordering::SeqCst) && Instant::now() < next {
            thread::sleep((next - Instant::now()).min(Duration::from_millis(50)));
        }
    }
}

/// Waiting jobs the incident makes stuck or gives to dying workers, taken
/// before the window.
fn job_pool(c: &mut Client, cycles: usize) -> Vec<String> {
    simple(
        c,
        &format!(
            "SELECT id FROM extraction_queue WHERE status_id = 1 ORDER BY id LIMIT {}",
            cycles * 11
        ),
    )
    .into_iter()
    .filter_map(|m| match m {
        postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    })
    .collect()
}

/// The workers: heartbeats every interval; in the incident cycle, also
/// every interval 5 jobs stuck for ten minutes (held by a live worker) and
/// 3 new workers holding 2 jobs each that never heartbeat again.
#[allow(clippy::too_many_arguments)]
fn drive(
    url: &str,
    db: &str,
    interval: Duration,
    incident: bool,
    jobs: Vec<String>,
    tag: usize,
    stop: &AtomicBool,
) {
    let mut c = connect(url, db);
    let live: Vec<String> = (1..=LIVE_WORKERS)
        .map(|i| format!("'worker-{i}'"))
        .collect();
    let beat = format!(
        "UPDATE worker_status SET last_heartbeat = now() WHERE worker_id IN ({})",
        live.join(", ")
    );
    let mut pool = jobs.chunks(11);
    every(interval, stop, |i| {
        simple(&mut c, &beat);
        if !incident {
            return;
        }
        let Some(ids) = pool.next().filter(|ids| ids.len() == 11) else {
            return;
        };
        let quoted = |ids: &[String]| {
            ids.iter()
                .map(|id| format!("'{id}'"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut sql = format!(
            "UPDATE extraction_queue SET status_id = 2, worker_id = 'worker-1',
                 processing_started_at = now() - interval '10 minutes', document_source = 'rmbench'
             WHERE id IN ({});",
            quoted(&ids[..5])
        );
        for k in 0..3 {
            let worker = format!("rmbench-{tag}-{i}-{k}");
            let held = &ids[5 + 2 * k..7 + 2 * k];
            sql.push_str(&format!(
                "INSERT INTO worker_status (worker_id, status, current_job_id, last_heartbeat)
                 VALUES ('{worker}', 'busy', '{}', now());
                 UPDATE extraction_queue SET status_id = 2, worker_id = '{worker}',
                     processing_started_at = now(), document_source = 'rmbench'
                 WHERE id IN ({});",
                held[0],
                quoted(held)
            ));
        }
        c.batch_execute(&sql).expect("the incident");
    });
}

/// The monitor binary, running.
struct Monitor {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    _dir: std::path::PathBuf,
}

fn start_monitor(args: &Args, binary: &std::path::Path, db: &str) -> Monitor {
    let mut url: url::Url = args.url.parse().expect("--url is a URL");
    url.set_path(db);
    let dir = std::env::temp_dir().join(format!("rmbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a working directory");
    let ms = |d: Duration| format!("{}ms", d.as_millis());
    let mut child = Command::new(binary)
        .arg("run")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("BENCH_SUPABASE_DB_URL", url.as_str())
        .env("MONITOR_CHECK_INTERVAL", ms(args.interval))
        .env("MONITOR_DEAD_WORKER_AFTER", ms(args.dead_after))
        .env("MONITOR_STUCK_JOB_AFTER", ms(args.stuck_after))
        .env("MONITOR_HTTP_ADDR", "127.0.0.1:0")
        .env("LOG_LEVEL", "info")
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
    let lines = Arc::new(Mutex::new(Vec::new()));
    let show = args.detail;
    for stream in [
        Box::new(child.stderr.take().expect("stderr")) as Box<dyn std::io::Read + Send>,
        Box::new(child.stdout.take().expect("stdout")),
    ] {
        let lines = lines.clone();
        thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if show {
                    eprintln!("monitor| {line}");
                }
                lines.lock().expect("lines").push(line);
            }
        });
    }
    Monitor {
        child,
        lines,
        _dir: dir,
    }
}

impl Monitor {
    fn wait_for(&mut self, text: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self
            .lines
            .lock()
            .expect("lines")
            .iter()
            .any(|l| l.contains(text))
        {
            if let Some(status) = self.child.try_wait().expect("the monitor") {
                panic!(
                    "the monitor exited ({status}):\n{}",
                    self.lines.lock().expect("lines").join("\n")
                );
            }
            assert!(Instant::now() < deadline, "no {text:?} within {within:?}");
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then its end.
    fn stop(mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().expect("the monitor").is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The database's `active_time`, ms (client backends only).
fn active_ms(admin: &mut Client, db: &str) -> f64 {
    scalar(
        admin,
        &format!("SELECT active_time FROM pg_stat_database WHERE datname = '{db}'"),
    )
    .and_then(|v| v.parse().ok())
    .expect("pg_stat_database.active_time (PostgreSQL 14 or later)")
}

/// `active_time` once every backend of `db` has gone (each flushes its
/// statistics as it exits) and the figure stops moving.
fn settled_active_ms(admin: &mut Client, db: &str) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    while scalar(
        admin,
        &format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}'"),
    )
    .as_deref()
        != Some("0")
    {
        assert!(Instant::now() < deadline, "backends of {db} still there");
        thread::sleep(Duration::from_millis(50));
    }
    let mut last = active_ms(admin, db);
    loop {
        thread::sleep(Duration::from_millis(300));
        let now = active_ms(admin, db);
        if now == last {
            return now;
        }
        last = now;
    }
}

/// Whether `pg_stat_statements` is loaded (`shared_preload_libraries`) and
/// installed in the admin database.
pub fn statements_loaded(admin: &mut Client) -> bool {
    let loaded = scalar(admin, "SHOW shared_preload_libraries")
        .unwrap_or_default()
        .contains("pg_stat_statements");
    loaded
        && admin
            .simple_query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .is_ok()
}

/// The statements of database `dbid` since the reset, costliest first.
fn per_statement(admin: &mut Client, dbid: &str, cycles: f64) -> Vec<(f64, f64, String)> {
    simple(
        admin,
        &format!(
            "SELECT (total_exec_time + total_plan_time)::text, calls::text,
                    regexp_replace(left(query, 90), '\\s+', ' ', 'g')
             FROM pg_stat_statements WHERE dbid = {dbid}
             ORDER BY total_exec_time + total_plan_time DESC LIMIT 12"
        ),
    )
    .into_iter()
    .filter_map(|m| match m {
        postgres::SimpleQueryMessage::Row(r) => Some((
            r.get(0)?.parse::<f64>().ok()? / cycles,
            r.get(1)?.parse::<f64>().ok()? / cycles,
            r.get(2)?.to_string(),
        )),
        _ => None,
    })
    .collect()
}
