//! `registre-monitor demo`: the monitor healing a misbehaving fleet, on a
//! scratch database, in under a minute.
//!
//! Creates a database of its own on a local Postgres, applies
//! `sql/schema.sql`, enqueues jobs, runs simulated [`worker`]s that sometimes
//! crash or hang, and runs the real monitor (the same actor tree as `run`, on
//! its own thread) with thresholds compressed from minutes to seconds. Shows
//! progress while it runs, then whether every job was finished and how long
//! the worst recovery took (a worker's crash or hang to its job back in the
//! queue). The scratch database is dropped at the end, Ctrl-C included.
//! The first line it prints is the address of the dashboard (the same
//! server as `run`'s, on a free loopback port), live while the demo runs.
//!
//! Parts: [`worker`] (the simulated worker), [`sql`] (the statements the
//! monitor never sends), `scratch` (the database's life), [`progress`] (the
//! live line, the summary and the recovery times).

pub mod progress;
mod scratch;
pub mod sql;
pub mod worker;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use registre_actors::{Database, MonitorState, Project, Settings, Supervisor};
use tokio_util::sync::CancellationToken;

use crate::config::HttpSettings;
use crate::config::cli::DemoArgs;
use crate::config::duration;
use crate::serve::http;
use crate::serve::liveness::Liveness;
use progress::{Progress, Summary};
use scratch::Scratch;
use worker::{Fate, Worker, WorkerConfig, WorkerStats};

/// Exit code when the demo could not start (no Postgres, bad argument).
const EXIT_CANNOT_START: u8 = 2;

/// The monitor's settings in the demo: minutes become seconds.
pub fn demo_settings() -> Settings {
    Settings {
        check_interval: Duration::from_millis(500),
        stuck_job_after: Duration::from_secs(6),
        dead_worker_after: Duration::from_secs(3),
        health_log_every: Duration::from_secs(30),
        failed_jobs_warn: 10,
        connect_timeout: Duration::from_secs(5),
        statement_timeout: Duration::from_secs(5),
        ..Settings::default()
    }
}

/// The simulated workers' behaviour in the demo, for worker `n` (from 1).
pub fn demo_worker(n: u32, seed: u64) -> WorkerConfig {
    let mut c = WorkerConfig::new(format!("demo-worker-{n}"));
    c.crash_probability = 0.06;
    c.hang_probability = 0.04;
    c.failure_probability = 0.03;
    c.job_duration = (Duration::from_millis(300), Duration::from_millis(1500));
    c.heartbeat_every = Duration::from_secs(1);
    // Past the stuck threshold and a check: the monitor takes the job first.
    c.hang_for = Duration::from_secs(10);
    c.restart_after = Some(Duration::from_secs(2));
    // Worker 1 crashes and worker 2 hangs on their first job, so even a small
    // demo shows both recoveries.
    c.first_fate = match n {
        1 => Some(Fate::Crash),
        2 => Some(Fate::Hang),
        _ => None,
    };
    c.seed ^= seed;
    c
}

/// Runs the demo; see the module documentation.
pub fn run(args: DemoArgs) -> ExitCode {
    let limit = match duration::parse(&args.duration) {
        Ok(d) => d,
        Err(problem) => {
            eprintln!(
                "registre-monitor demo: --duration {:?} {problem}; expected {}",
                args.duration,
                duration::EXPECTED
            );
            return ExitCode::from(EXIT_CANNOT_START);
        }
    };
    let server = match Project::parse("demo", &args.database_url) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("registre-monitor demo: --database-url / DEMO_DATABASE_URL {e}");
            return ExitCode::from(EXIT_CANNOT_START);
        }
    };
    // The dashboard's address first, so that it is the first thing seen.
    let listener = match http::bind((std::net::Ipv4Addr::LOCALHOST, 0).into()) {
        Ok((listener, addr)) => {
            println!("Dashboard: http://{addr}/ (live while the demo runs)");
            Some(listener)
        }
        Err(e) => {
            println!("No dashboard: {e}");
            None
        }
    };
    let system = actix_rt::System::new();
    let code = system.block_on(async move {
        let settings = demo_settings();
        // Listening before the database exists: a Ctrl-C at any point after
        // its creation still reaches the clean-up below.
        let interrupt = CancellationToken::new();
        let on_signal = interrupt.clone();
        actix_rt::spawn(async move {
            // A closed terminal (SIGHUP) ends the demo as Ctrl-C does: the
            // scratch database is still dropped.
            let hangup = async {
                use tokio::signal::unix::{SignalKind, signal};
                match signal(SignalKind::hangup()) {
                    Ok(mut s) => s.recv().await,
                    Err(_) => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = crate::serve::shutdown_signal() => {}
                _ = hangup => {}
            }
            on_signal.cancel();
        });
        let scratch = match Scratch::create(&server, settings.connect_timeout).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!(
                    "registre-monitor demo: cannot create a scratch database on {}: {e}\n\
                     The demo needs a Postgres server where it may create and drop a database. \
                     Start one locally, or point the demo at one with --database-url URL \
                     or DEMO_DATABASE_URL=URL (default postgres://postgres@127.0.0.1:5432/postgres).",
                    server.shown
                );
                return ExitCode::from(EXIT_CANNOT_START);
            }
        };
        println!(
            "Scratch database {} on {} ({} workers, {} jobs; stuck after {}, dead after {}, checks every {})",
            scratch.name.as_str(),
            server.shown,
            args.workers,
            args.jobs,
            duration::show(settings.stuck_job_after),
            duration::show(settings.dead_worker_after),
            duration::show(settings.check_interval),
        );
        let outcome = demo(&scratch, &settings, &args, limit, interrupt, listener).await;
        let dropped = scratch.drop_database().await;
        match outcome {
            Err(e) => {
                eprintln!("registre-monitor demo: {e}");
                ExitCode::FAILURE
            }
            Ok(summary) => {
                print!("{}", summary.render());
                match &dropped {
                    Ok(()) => println!("Scratch database {} dropped.", scratch.name.as_str()),
                    Err(e) => println!(
                        "Could not drop the scratch database {}: {e}",
                        scratch.name.as_str()
                    ),
                }
                if summary.all_finished() && dropped.is_ok() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
        }
    });
    System::current().stop();
    code
}

/// Everything between creating the scratch database and dropping it.
async fn demo(
    scratch: &Scratch,
    settings: &Settings,
    args: &DemoArgs,
    limit: Duration,
    interrupt: CancellationToken,
    dashboard: Option<std::net::TcpListener>,
) -> Result<Summary, String> {
    let project = scratch.project();
    let db = Database::new(
        &project,
        settings.connect_timeout,
        settings.statement_timeout,
    );
    sql::enqueue_jobs(&db, args.jobs)
        .await
        .map_err(|e| format!("cannot enqueue the jobs: {e}"))?;

    // The real monitor, on a thread of its own as in production.
    let state = MonitorState::new();
    let monitor = Arbiter::new();
    // Held to the end: an actor nobody holds an address of stops.
    let supervisor = {
        let (project, settings, state) = (project.clone(), settings.clone(), state.clone());
        Supervisor::start_in_arbiter(&monitor.handle(), move |_| {
            Supervisor::new(vec![project], settings, state)
        })
    };
    let server = dashboard.and_then(|listener| {
        let http = HttpSettings {
            addr: None,
            fault_injection: false,
            access: Default::default(),
        };
        let liveness = Liveness::new(state.clone(), Arc::new(settings.clone()));
        let projects = std::slice::from_ref(&project);
        http::serve(listener, liveness, supervisor.clone(), projects, &http).ok()
    });

    let started = Instant::now();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let stop_workers = CancellationToken::new();
    // Named apart from the monitor's sessions in pg_stat_activity.
    let mut worker_project = project.clone();
    worker_project.pg.application_name("registre-demo-worker");
    let mut live: Vec<Arc<Mutex<WorkerStats>>> = Vec::new();
    let mut handles = Vec::new();
    for n in 1..=args.workers {
        let worker = Worker::new(
            Database::new(
                &worker_project,
                settings.connect_timeout,
                settings.statement_timeout,
            ),
            demo_worker(n, seed.wrapping_add(u64::from(n))),
        );
        live.push(worker.stats());
        handles.push(actix_rt::spawn(worker.run(stop_workers.clone())));
    }

    let mut progress = Progress::new(std::io::stdout().is_terminal(), args.jobs);
    let deadline = started + limit;
    let mut interrupted = false;
    let mut last = None;
    loop {
        let tick = progress.tick();
        tokio::select! {
            _ = interrupt.cancelled() => { interrupted = true; break; }
            _ = tokio::time::sleep(tick) => {}
        }
        match sql::queue_progress(&db).await {
            Ok(q) => {
                progress.show(started.elapsed(), &q, &live, &state.project("demo"));
                last = Some(q);
                if q.waiting == 0 && q.processing == 0 && q.total > 0 {
                    break;
                }
            }
            Err(e) => progress.note(&format!("cannot read the queue: {e}")),
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    progress.end();

    stop_workers.cancel();
    let mut stats = Vec::new();
    for h in handles {
        if let Ok(s) = h.await {
            stats.push(s);
        }
    }
    if let Some(server) = server {
        server.stop(true).await;
    }
    monitor.stop();
    // The monitor's thread ends at once; its connections close with it.
    let _ = monitor.join();
    let last = match sql::queue_progress(&db).await {
        Ok(q) => Some(q),
        Err(_) => last,
    };
    Ok(Summary::new(
        started.elapsed(),
        limit,
        interrupted,
        last,
        stats,
        state.project("demo"),
    ))
}
