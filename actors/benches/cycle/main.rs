//! One monitoring cycle of the monitor against one of a naive baseline's
//! (a select then an update per rule, thresholds from the client's clock),
//! on the same database, in the same run.
//!
//! For each queue size it builds (once, kept across runs with `--keep`) a
//! database `rmbench_<rows>_<open>` with the watched tables and a realistic
//! mix of jobs, then measures both sides' cycle with `EXPLAIN (ANALYZE,
//! BUFFERS, TIMING OFF)`: database time (sum of the statements' execution
//! times, median of `--cycles` cycles after one warm-up), round trips
//! (requests sent per cycle), rows read (actual rows plus rows removed by a
//! filter, of every node that reads a table or index) and shared buffers
//! touched (hit + read).
//!
//! Two cycles are measured, each without and with the indexes of
//! `sql/indexes.sql`:
//! - `incident`: a handful of stuck jobs and three workers just found dead
//!   (the data as generated);
//! - `steady`: the same queue after the monitor has run once (nothing left to
//!   fix), which is what nearly every cycle of a healthy system looks like.
//!
//! Everything runs in one transaction that is rolled back at the end, each
//! cycle in a savepoint rolled back after it, so both sides see the same data
//! and the database is left as generated.
//!
//! ```text
//! cargo bench -p registre-actors --bench cycle -- --rows 100000,1000000
//! cargo bench -p registre-actors --bench cycle -- --rows 1000000,10000000 --open-jobs 50000
//! ```
//!
//! Options: `--rows N[,N...]` (default 100000,1000000), `--open-jobs N`
//! (waiting + processing + failed jobs, the same for every size; default 5%
//! of the rows), `--cycles N` (default 7), `--url URL` (default
//! `$TEST_DATABASE_URL` or `postgres://postgres@127.0.0.1:5432/postgres`),
//! `--keep` (keep the generated databases for the next run), `--detail`
//! (each statement of the last cycle), `--serial` (no parallel workers, so
//! the time is the work of one backend: the monitor's data-modifying
//! statements can never use parallel workers, the baseline's selects can).

mod explain;
mod queue;
mod sides;

use postgres::{Client, NoTls, SimpleQueryMessage};
use registre_actors::indexes;

use explain::{Cost, run_cycle};
use queue::prepare;
use sides::{baseline_dead_jobs, baseline_side, monitor_side};

/// The watched tables, as the tests create them.
const SCHEMA_SQL: &str = include_str!("../../../sql/schema.sql");

/// Workers in `worker_status`: 1-16 alive, 17-19 just dead (heartbeat ten
/// minutes old, still `busy`), 20 offline for a day.
const WORKERS: u32 = 20;
/// Processing jobs stuck for ten minutes (held by live workers 1-5).
const STALE_JOBS: u64 = 5;

struct Args {
    rows: Vec<u64>,
    open_jobs: Option<u64>,
    cycles: usize,
    url: String,
    keep: bool,
    detail: bool,
    serial: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        rows: vec![100_000, 1_000_000],
        open_jobs: None,
        cycles: 7,
        url: std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
        keep: false,
        detail: false,
        serial: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--rows" => {
                args.rows = value()
                    .split(',')
                    .map(|n| {
                        n.trim()
                            .replace('_', "")
                            .parse()
                            .unwrap_or_else(|_| usage("--rows"))
                    })
                    .collect()
            }
            "--open-jobs" => {
                args.open_jobs = Some(value().parse().unwrap_or_else(|_| usage("--open-jobs")))
            }
            "--cycles" => args.cycles = value().parse().unwrap_or_else(|_| usage("--cycles")),
            "--url" => args.url = value(),
            "--keep" => args.keep = true,
            "--detail" => args.detail = true,
            "--serial" => args.serial = true,
            // `cargo bench` passes `--bench`.
            "--bench" => {}
            other => usage(&format!("unknown argument {other}")),
        }
    }
    args
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "cycle: {problem}\nusage: cargo bench -p registre-actors --bench cycle -- \
         [--rows N,N] [--open-jobs N] [--cycles N] [--url URL] [--keep] [--detail] [--serial]"
    );
    std::process::exit(2)
}

fn main() {
    let args = parse_args();
    let mut admin = connect(&args.url, "postgres");
    let mut table = Vec::new();
    for &rows in &args.rows {
        let open = args.open_jobs.unwrap_or(rows / 20).clamp(20, rows);
        let db = format!("rmbench_{rows}_{open}");
        prepare(&mut admin, &args.url, &db, rows, open);
        let mut client = connect(&args.url, &db);
        if args.serial {
            simple(&mut client, "SET max_parallel_workers_per_gather = 0");
        }
        measure(&mut client, rows, open, &args, &mut table);
        drop(client);
        if !args.keep {
            simple(
                &mut admin,
                &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
            );
        }
    }
    print_table(&table);
}

fn connect(url: &str, db: &str) -> Client {
    let mut config: postgres::Config = url.parse().expect("a valid --url");
    config.dbname(db);
    config.application_name("rmbench");
    config
        .connect(NoTls)
        .unwrap_or_else(|e| panic!("cannot connect to {db}: {e}"))
}

fn simple(c: &mut Client, sql: &str) -> Vec<SimpleQueryMessage> {
    c.simple_query(sql).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{sql}",
            e.as_db_error().map(|d| d.message()).unwrap_or("")
        )
    })
}

fn scalar(c: &mut Client, sql: &str) -> Option<String> {
    simple(c, sql).into_iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
        _ => None,
    })?
}

/// One row of the result table.
struct Line {
    rows: u64,
    open: u64,
    indexes: bool,
    cycle: &'static str,
    baseline: (usize, Cost),
    monitor: (usize, Cost),
}

fn measure(c: &mut Client, rows: u64, open: u64, args: &Args, table: &mut Vec<Line>) {
    let recommended = indexes::recommended();
    // Plain CREATE INDEX (CONCURRENTLY cannot run in a transaction), same
    // definitions as the file.
    let create: Vec<String> = recommended
        .iter()
        .map(|i| i.create.replace("CONCURRENTLY ", ""))
        .collect();
    let drop: Vec<String> = recommended
        .iter()
        .map(|i| format!("DROP INDEX IF EXISTS {}", i.name))
        .collect();
    simple(c, "BEGIN");
    for d in &drop {
        simple(c, d);
    }
    // incident, without then with indexes; then the monitor's cycle for
    // real; then steady, with then without.
    let mut phase = |c: &mut Client, indexes: bool, cycle: &'static str| {
        let dead_jobs = baseline_dead_jobs(c);
        let sides = [baseline_side(&dead_jobs), monitor_side()];
        // Cycles alternate between the sides, so a busy neighbour slows
        // both alike.
        let mut totals: [Vec<Cost>; 2] = [Vec::new(), Vec::new()];
        for i in 0..=args.cycles {
            for (side, totals) in sides.iter().zip(totals.iter_mut()) {
                let (total, detail) = run_cycle(c, side);
                if args.detail && i == args.cycles {
                    eprintln!(
                        "-- {rows} rows, {open} open, indexes {indexes}, {cycle}, {}",
                        side.name
                    );
                    for (label, cost) in &detail {
                        eprintln!(
                            "   {label:32} {:9.3} ms  {:>10.0} rows  {:>8} buffers",
                            cost.exec_ms, cost.rows_read, cost.buffers
                        );
                    }
                }
                // The first cycle warms the caches.
                if i > 0 {
                    totals.push(total);
                }
            }
        }
        let mut results: Vec<(usize, Cost)> = sides
            .iter()
            .zip(totals)
            .map(|(side, mut totals)| {
                totals.sort_by(|a, b| a.exec_ms.total_cmp(&b.exec_ms));
                (side.statements.len(), totals[totals.len() / 2].clone())
            })
            .collect();
        let monitor = results.pop().expect("two sides");
        let baseline = results.pop().expect("two sides");
        eprintln!(
            "{rows} rows, indexes {indexes}, {cycle}: baseline {:.2} ms, monitor {:.2} ms",
            baseline.1.exec_ms, monitor.1.exec_ms
        );
        table.push(Line {
            rows,
            open,
            indexes,
            cycle,
            baseline,
            monitor,
        });
    };
    phase(c, false, "incident");
    for s in &create {
        simple(c, s);
    }
    // As autovacuum soon would: the planner needs the statistics of the
    // stuck-job expression index to see how narrow its range is.
    simple(c, "ANALYZE extraction_queue");
    phase(c, true, "incident");
    for (_, prefix, statement) in monitor_side().statements {
        simple(c, &format!("{prefix}{statement}"));
    }
    phase(c, true, "steady");
    for d in &drop {
        simple(c, d);
    }
    phase(c, false, "steady");
    simple(c, "ROLLBACK");
}

fn print_table(lines: &[Line]) {
    println!(
        "| rows | open jobs | indexes | cycle | baseline trips | baseline ms | baseline rows read | baseline buffers \
         | monitor trips | monitor ms | monitor rows read | monitor buffers | ratio ms | ratio rows | ratio buffers |"
    );
    println!("|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for l in lines {
        let (bt, b) = &l.baseline;
        let (mt, m) = &l.monitor;
        println!(
            "| {} | {} | {} | {} | {} | {:.2} | {:.0} | {} | {} | {:.2} | {:.0} | {} | {:.2} | {:.3} | {:.3} |",
            l.rows,
            l.open,
            if l.indexes { "yes" } else { "no" },
            l.cycle,
            bt,
            b.exec_ms,
            b.rows_read,
            b.buffers,
            mt,
            m.exec_ms,
            m.rows_read,
            m.buffers,
            m.exec_ms / b.exec_ms,
            m.rows_read / b.rows_read.max(1.0),
            m.buffers as f64 / (b.buffers.max(1)) as f64,
        );
    }
}
