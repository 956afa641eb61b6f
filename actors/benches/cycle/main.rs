//! What the database spends, per check interval, on everything the real
//! monitor sends, against the first system's statement list run at the
//! same cadence, on the same generated queue.
//!
//! For each queue size it builds (once, kept across runs with `--keep`) a
//! database `rmbench_<rows>_<open>` with the watched tables and a realistic
//! mix of jobs (90% finished, 5% extraction finished, 3.5% waiting, 1%
//! failed, 0.5% processing; 20 workers). Then, without and with the indexes
//! of `sql/indexes.sql`, each in its own window of `--cycles` intervals
//! after start-up:
//! - the workers alone (heartbeats every interval; in the incident cycle
//!   also 5 jobs stuck and 3 workers dying with 2 jobs each, every
//!   interval), which is subtracted from the other two;
//! - the first system's list (a select then an update per rule,
//!   thresholds from the client's clock, one request per statement);
//! - the monitor binary itself (`registre-monitor run`, default settings
//!   but the interval and the dead-worker threshold), everything it sends
//!   included: election, probes, session and transaction statements.
//!
//! Database time is `pg_stat_database.active_time` (PostgreSQL 14+: the
//! time client backends spent running statements, parse and plan
//! included), read before the window and after every backend of the
//! database has exited (a backend flushes its statistics on exit). With
//! `pg_stat_statements` in `shared_preload_libraries`, its per-statement
//! figures are printed too.
//!
//! ```text
//! cargo build --release --bin registre-monitor
//! cargo bench -p registre-actors --bench cycle -- --rows 1000000 --keep
//! ```
//!
//! Options: `--rows N[,N...]` (default 1000000), `--open-jobs N` (waiting +
//! processing + failed, the same for every size; default 5% of the rows),
//! `--cycles N` (default 20), `--interval MS` (default 1000), `--url URL`
//! (default `$TEST_DATABASE_URL` or
//! `postgres://postgres@127.0.0.1:5432/postgres`), `--monitor PATH`
//! (default `target/release/registre-monitor`; several, comma-separated,
//! are measured in turn on the same data), `--repeat N` (rounds of every
//! side in turn, the least kept; default 1), `--keep` (keep the
//! generated databases), `--only steady|incident`, `--indexes no|yes`,
//! `--visibility set|unset|both` (`unset`: 10% of the open jobs updated
//! since the last vacuum, autovacuum off; default `set`), `--detail` (the
//! monitor's log lines).

mod queue;
mod sides;
mod window;

use std::path::PathBuf;
use std::time::Duration;

use postgres::{Client, NoTls, SimpleQueryMessage};
use registre_actors::indexes;

use queue::{prepare, settle};
use window::{Side, statements_loaded, window};

/// The watched tables, as the tests create them.
const SCHEMA_SQL: &str = include_str!("../../../sql/schema.sql");

/// Workers in `worker_status`: 1-19 alive, 20 offline for a day.
const WORKERS: u32 = 20;
/// Processing jobs generated stale (made fresh before measuring).
const STALE_JOBS: u64 = 5;

pub struct Args {
    rows: Vec<u64>,
    open_jobs: Option<u64>,
    cycles: usize,
    interval: Duration,
    stuck_after: Duration,
    dead_after: Duration,
    url: String,
    monitors: Vec<PathBuf>,
    repeat: usize,
    keep: bool,
    detail: bool,
    cycle_kinds: Vec<bool>,
    with_indexes: Vec<bool>,
    vm_unset: Vec<bool>,
}

fn parse_args() -> Args {
    let mut args = Args {
        rows: vec![1_000_000],
        open_jobs: None,
        cycles: 20,
        interval: Duration::from_secs(1),
        stuck_after: Duration::from_secs(180),
        dead_after: Duration::from_secs(3),
        url: std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
        monitors: vec![
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/registre-monitor"),
        ],
        repeat: 1,
        keep: false,
        detail: false,
        cycle_kinds: vec![false, true],
        with_indexes: vec![false, true],
        vm_unset: vec![false],
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{a} needs a value")))
        };
        let number = |v: String| -> u64 {
            v.trim()
                .replace('_', "")
                .parse()
                .unwrap_or_else(|_| usage(&format!("{a}: {v}")))
        };
        match a.as_str() {
            "--rows" => args.rows = value().split(',').map(|n| number(n.into())).collect(),
            "--open-jobs" => args.open_jobs = Some(number(value())),
            "--cycles" => args.cycles = number(value()) as usize,
            "--interval" => args.interval = Duration::from_millis(number(value())),
            "--url" => args.url = value(),
            "--monitor" => args.monitors = value().split(',').map(PathBuf::from).collect(),
            "--repeat" => args.repeat = number(value()).max(1) as usize,
            "--keep" => args.keep = true,
            "--detail" => args.detail = true,
            "--only" => args.cycle_kinds = vec![value() == "incident"],
            "--indexes" => args.with_indexes = vec![value() == "yes"],
            "--visibility" => {
                args.vm_unset = match value().as_str() {
                    "set" => vec![false],
                    "unset" => vec![true],
                    "both" => vec![false, true],
                    v => usage(&format!("--visibility {v}")),
                }
            }
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
         [--rows N,N] [--open-jobs N] [--cycles N] [--interval MS] [--url URL] \
         [--monitor PATH,PATH] [--repeat N] [--keep] [--only steady|incident] [--indexes no|yes] [--visibility set|unset|both] [--detail]"
    );
    std::process::exit(2)
}

fn main() {
    let args = parse_args();
    for m in &args.monitors {
        assert!(
            m.exists(),
            "{} not found: cargo build --release --bin registre-monitor (or --monitor PATH)",
            m.display()
        );
    }
    let mut admin = connect(&args.url, "postgres");
    if !statements_loaded(&mut admin) {
        eprintln!("pg_stat_statements is not in shared_preload_libraries: no per-statement table");
    }
    let mut table = Vec::new();
    let mut tag = 0;
    for &rows in &args.rows {
        let open = args.open_jobs.unwrap_or(rows / 20).clamp(20, rows);
        let db = format!("rmbench_{rows}_{open}");
        prepare(&mut admin, &args.url, &db, rows, open);
        for &indexed in &args.with_indexes {
            set_indexes(&mut connect(&args.url, &db), indexed);
            for (&vm_unset, &incident) in args
                .vm_unset
                .iter()
                .flat_map(|u| args.cycle_kinds.iter().map(move |k| (u, k)))
            {
                let sides: Vec<Side> = [Side::Workers, Side::Baseline]
                    .into_iter()
                    .chain((0..args.monitors.len()).map(Side::Monitor))
                    .collect();
                // Rounds of every side in turn: a busy neighbour slows all
                // alike; each side's least round is kept.
                let mut spent = vec![Vec::new(); sides.len()];
                for _ in 0..args.repeat {
                    for (side, spent) in sides.iter().zip(spent.iter_mut()) {
                        settle(&mut connect(&args.url, &db), vm_unset);
                        tag += 1;
                        let s = window(&mut admin, &args, &db, *side, incident, tag);
                        eprintln!(
                            "{rows} rows, indexes {indexed}, vm unset {vm_unset}, {}, {side:?}: {:.2} ms/cycle over {:.1} cycles",
                            kind(incident),
                            s.ms_per_cycle,
                            s.cycles
                        );
                        for (ms, calls, query) in &s.statements {
                            eprintln!("    {ms:9.3} ms {calls:6.2} calls  {query}");
                        }
                        spent.push(s.ms_per_cycle);
                    }
                }
                table.push(Line {
                    rows,
                    open,
                    indexed,
                    vm_unset,
                    incident,
                    spent,
                });
            }
        }
        if !args.keep {
            simple(
                &mut admin,
                &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
            );
        }
    }
    print_table(&table, &args.monitors);
}

fn kind(incident: bool) -> &'static str {
    if incident { "incident" } else { "steady" }
}

/// Creates (plainly, same definitions as the file) or drops the indexes of
/// `sql/indexes.sql`.
fn set_indexes(c: &mut Client, on: bool) {
    for i in indexes::recommended() {
        if on {
            simple(c, &i.create.replace("CONCURRENTLY ", ""));
        } else {
            simple(c, &format!("DROP INDEX IF EXISTS {}", i.name));
        }
    }
}

/// One table line: the data, and each side's ms per cycle (one per round).
struct Line {
    rows: u64,
    open: u64,
    indexed: bool,
    vm_unset: bool,
    incident: bool,
    spent: Vec<Vec<f64>>,
}

/// The least of a side's rounds: on a shared machine noise only adds.
fn least(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

/// Each side's least round, the workers' traffic subtracted; every
/// round's raw figures after.
fn print_table(lines: &[Line], monitors: &[PathBuf]) {
    let names: Vec<String> = monitors
        .iter()
        .map(|m| {
            m.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let mut head =
        "| rows | open jobs | indexes | visibility map | cycle | workers ms | first system ms |"
            .to_string();
    for n in &names {
        head.push_str(&format!(" {n} ms | ratio |"));
    }
    println!("{head} rounds (workers; first system; monitors) |");
    println!(
        "|---:|---:|---|---|---|---:|---:|{}---|",
        "---:|---:|".repeat(names.len())
    );
    for l in lines {
        let spent = &l.spent;
        let floor = least(&spent[0]);
        let baseline = least(&spent[1]) - floor;
        let mut line = format!(
            "| {} | {} | {} | {} | {} | {floor:.2} | {baseline:.2} |",
            l.rows,
            l.open,
            if l.indexed { "yes" } else { "no" },
            if l.vm_unset { "10% unset" } else { "set" },
            kind(l.incident),
        );
        for m in &spent[2..] {
            let monitor = least(m) - floor;
            line.push_str(&format!(" {monitor:.2} | {:.2} |", monitor / baseline));
        }
        let rounds: Vec<String> = spent
            .iter()
            .map(|s| {
                s.iter()
                    .map(|v| format!("{v:.1}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        println!("{line} {} |", rounds.join("; "));
    }
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
