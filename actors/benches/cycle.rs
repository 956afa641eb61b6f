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

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postgres::{Client, NoTls, SimpleQueryMessage};
use registre_actors::settings::Settings;
use registre_actors::sql;
use registre_actors::{features, indexes};
use serde_json::Value;

/// The watched tables, as the tests create them.
const SCHEMA_SQL: &str = include_str!("../../sql/schema.sql");

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

/// What one statement cost, from its `EXPLAIN ANALYZE`.
#[derive(Debug, Clone, Default)]
struct Cost {
    exec_ms: f64,
    plan_ms: f64,
    rows_read: f64,
    buffers: u64,
}

impl std::ops::AddAssign for Cost {
    fn add_assign(&mut self, o: Cost) {
        self.exec_ms += o.exec_ms;
        self.plan_ms += o.plan_ms;
        self.rows_read += o.rows_read;
        self.buffers += o.buffers;
    }
}

/// A side's cycle: the requests it sends, in order.
struct Side {
    name: &'static str,
    /// `(label, prefix sent in the same request, statement)`.
    statements: Vec<(String, String, String)>,
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

/// Creates `db` with the queue unless a finished one is there already.
fn prepare(admin: &mut Client, url: &str, db: &str, rows: u64, open: u64) {
    if scalar(
        admin,
        &format!("SELECT 1 FROM pg_database WHERE datname = '{db}'"),
    )
    .is_some()
    {
        let mut c = connect(url, db);
        let done = c.simple_query("SELECT done FROM rmbench_meta").is_ok();
        drop(c);
        if done {
            eprintln!("{db}: reusing the queue generated earlier");
            return;
        }
        simple(admin, &format!("DROP DATABASE {db} WITH (FORCE)"));
    }
    eprintln!("{db}: generating {rows} jobs, {open} of them open ...");
    let started = std::time::Instant::now();
    simple(admin, &format!("CREATE DATABASE {db}"));
    let mut c = connect(url, db);
    c.batch_execute(SCHEMA_SQL).expect("schema");
    let processing = (open / 10).max(STALE_JOBS + 6 + 1);
    let failed = open / 5;
    let step = (rows / open).max(1);
    // One INSERT ... SELECT. Open jobs are spread evenly through the table
    // (every `step`-th row), finished ones are 95% status 3 and 5% status 5.
    // Processing jobs that must stay fresh start a day in the future and live
    // workers' heartbeats likewise, so the data means the same however long
    // the benchmark runs; stale ones are ten minutes old.
    let insert = format!(
        "SET session_replication_role = replica;
        SET maintenance_work_mem = '256MB';
        ALTER TABLE extraction_queue DROP CONSTRAINT extraction_queue_pkey;
        INSERT INTO extraction_queue (id, status_id, worker_id, processing_started_at, error_message,
                                      document_source, document_number, attemtps, created_at, updated_at)
        SELECT gen_random_uuid(), st,
               CASE WHEN st = 2 THEN 'worker-' || w END,
               CASE WHEN st = 2 THEN CASE WHEN k < {STALE_JOBS} THEN now() - interval '10 minutes'
                                          ELSE now() + interval '1 day' END END,
               CASE WHEN st = 4 THEN 'Extraction failed: timeout' END,
               (ARRAY['acte', 'index', 'plan_cadastraux'])[1 + g % 3],
               lpad(g::text, 9, '0'),
               CASE WHEN st = 4 THEN 3 WHEN st IN (3, 5) THEN 1 ELSE 0 END,
               now() - ({rows} - g) * interval '1 second',
               now() - ({rows} - g) * interval '1 second' + interval '5 minutes'
        FROM (
            SELECT g, k,
                   CASE WHEN k IS NULL THEN CASE WHEN g % 19 = 0 THEN 5 ELSE 3 END
                        WHEN k < {processing} THEN 2
                        WHEN k < {processing} + {failed} THEN 4
                        ELSE 1 END AS st,
                   -- stale jobs: live workers 1-5; dead workers 17-19 hold
                   -- two jobs each; the rest: live workers 1-16.
                   CASE WHEN k < {STALE_JOBS} THEN 1 + k
                        WHEN k < {STALE_JOBS} + 6 THEN 17 + (k - {STALE_JOBS}) / 2
                        ELSE 1 + k % 16 END AS w
            FROM (SELECT g, CASE WHEN g % {step} = 0 AND g / {step} <= {open} THEN g / {step} - 1 END AS k
                  FROM generate_series(1, {rows}) g) a
        ) b;
        ALTER TABLE extraction_queue ADD PRIMARY KEY (id);
        INSERT INTO worker_status (worker_id, status, last_heartbeat, started_at)
        SELECT 'worker-' || i,
               CASE WHEN i = {WORKERS} THEN 'offline' ELSE 'busy' END,
               CASE WHEN i = {WORKERS} THEN now() - interval '1 day'
                    WHEN i >= 17 THEN now() - interval '10 minutes'
                    ELSE now() + interval '1 day' END,
               now() - interval '2 days'
        FROM generate_series(1, {WORKERS}) i;
        UPDATE worker_status w
        SET current_job_id = (SELECT id FROM extraction_queue q
                              WHERE q.status_id = 2 AND q.worker_id = w.worker_id LIMIT 1)
        WHERE status <> 'offline';
        RESET session_replication_role;"
    );
    c.batch_execute(&insert)
        .unwrap_or_else(|e| panic!("generating: {e:?}"));
    simple(&mut c, "VACUUM (ANALYZE) extraction_queue");
    simple(&mut c, "VACUUM (ANALYZE) worker_status");
    simple(&mut c, "CREATE TABLE rmbench_meta AS SELECT true AS done");
    let size = scalar(
        &mut c,
        "SELECT pg_size_pretty(pg_total_relation_size('extraction_queue'))",
    );
    eprintln!(
        "{db}: generated in {:.0} s, table and indexes {}",
        started.elapsed().as_secs_f64(),
        size.unwrap_or_default()
    );
}

/// The monitor's cycle: its three statements, each one request after its
/// `SET LOCAL statement_timeout`, as `Database::query_json` sends them.
fn monitor_side() -> Side {
    // What the monitor sends by default on the real schema: resets counted
    // as attempts, the OCR rule on.
    let settings = Settings::default();
    let allowed = features::decide(
        &sql::Columns {
            table: true,
            columns: sql::OPTIONAL_COLUMNS
                .iter()
                .map(|c| c.to_string())
                .chain([settings.attempts_column.as_str().to_string()])
                .collect(),
        },
        &settings,
    );
    let set = format!(
        "SET LOCAL statement_timeout = {}; ",
        Settings::STATEMENT_TIMEOUT_DEFAULT.as_millis()
    );
    Side {
        name: "monitor",
        statements: vec![
            (
                "reset_stuck_jobs".into(),
                set.clone(),
                sql::reset_stuck_sql(&allowed.stuck_rules(&settings)),
            ),
            (
                "reap_dead_workers".into(),
                set.clone(),
                sql::reap_dead_workers_sql(
                    Settings::DEAD_WORKER_AFTER_DEFAULT,
                    &[],
                    allowed.attempts.as_ref(),
                ),
            ),
            (
                "health_counts".into(),
                set,
                sql::health_counts_sql(Settings::DEAD_WORKER_AFTER_DEFAULT),
            ),
        ],
    }
}

/// The baseline's cycle, statement by statement, thresholds from the
/// client's clock as it computed them. `dead_jobs` are the `current_job_id`s
/// of the workers its stale-worker select returns (one update each).
fn baseline_side(dead_jobs: &[String]) -> Side {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let ts = |ago: Duration| format!("to_timestamp({:.3})", now - ago.as_secs_f64());
    let stuck = ts(Settings::STUCK_JOB_AFTER_DEFAULT);
    let dead = ts(Settings::DEAD_WORKER_AFTER_DEFAULT);
    let now = ts(Duration::ZERO);
    let mut s: Vec<(String, String, String)> = vec![
        (
            "select stuck jobs".into(),
            String::new(),
            format!(
                "SELECT * FROM extraction_queue WHERE status_id = 2 AND processing_started_at < {stuck}"
            ),
        ),
        (
            "update stuck jobs".into(),
            String::new(),
            format!(
                "UPDATE extraction_queue SET status_id = 1, worker_id = NULL, processing_started_at = NULL, \
                  error_message = {msg}, updated_at = {now} \
                  WHERE status_id = 2 AND processing_started_at < {stuck}",
                msg = sql::literal(sql::STUCK_RESET_MESSAGE)
            ),
        ),
        (
            "select stale workers".into(),
            String::new(),
            format!("SELECT * FROM worker_status WHERE last_heartbeat < {dead}"),
        ),
    ];
    for job in dead_jobs {
        s.push((
            "release a dead worker's job".into(),
            String::new(),
            format!(
                "UPDATE extraction_queue SET status_id = 1, worker_id = NULL, \
                         processing_started_at = NULL, updated_at = {now} WHERE id = '{job}'"
            ),
        ));
    }
    s.push((
        "mark stale workers offline".into(),
        String::new(),
        format!("UPDATE worker_status SET status = 'offline' WHERE last_heartbeat < {dead}"),
    ));
    s.push((
        "count active workers".into(),
        String::new(),
        format!("SELECT count(*) FROM worker_status WHERE last_heartbeat >= {dead}"),
    ));
    for status in [1, 2, 4] {
        s.push((
            format!("count status {status}"),
            String::new(),
            format!("SELECT count(*) FROM extraction_queue WHERE status_id = {status}"),
        ));
    }
    Side {
        name: "baseline",
        statements: s,
    }
}

/// What the baseline's stale-worker select would return: the jobs it then
/// updates one by one.
fn baseline_dead_jobs(c: &mut Client) -> Vec<String> {
    simple(
        c,
        &format!(
            "SELECT current_job_id FROM worker_status
             WHERE last_heartbeat < now() - interval '{} seconds' AND current_job_id IS NOT NULL",
            Settings::DEAD_WORKER_AFTER_DEFAULT.as_secs()
        ),
    )
    .into_iter()
    .filter_map(|m| match m {
        SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    })
    .collect()
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

/// Runs every statement of `side` under EXPLAIN ANALYZE in a savepoint that
/// is then rolled back.
fn run_cycle(c: &mut Client, side: &Side) -> (Cost, Vec<(String, Cost)>) {
    simple(c, "SAVEPOINT cycle");
    let mut total = Cost::default();
    let mut detail = Vec::new();
    for (label, prefix, statement) in &side.statements {
        let text =
            format!("{prefix}EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, FORMAT JSON) {statement}");
        let json = simple(c, &text)
            .into_iter()
            .find_map(|m| match m {
                SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            })
            .expect("EXPLAIN returns its plan");
        let v: Value = serde_json::from_str(&json).expect("EXPLAIN JSON");
        let top = &v[0];
        let plan = &top["Plan"];
        let cost = Cost {
            exec_ms: top["Execution Time"].as_f64().unwrap_or(0.0),
            plan_ms: top["Planning Time"].as_f64().unwrap_or(0.0),
            rows_read: rows_read(plan),
            buffers: plan["Shared Hit Blocks"].as_u64().unwrap_or(0)
                + plan["Shared Read Blocks"].as_u64().unwrap_or(0),
        };
        total += cost.clone();
        detail.push((label.clone(), cost));
    }
    simple(c, "ROLLBACK TO SAVEPOINT cycle");
    (total, detail)
}

/// Rows a plan read from tables and indexes: for every node that scans a
/// relation, its rows out plus those its filter removed, over all loops
/// (EXPLAIN shows per-loop averages).
fn rows_read(node: &Value) -> f64 {
    let mut n = 0.0;
    let kind = node["Node Type"].as_str().unwrap_or("");
    if node.get("Relation Name").is_some() && kind != "ModifyTable" {
        let loops = node["Actual Loops"].as_f64().unwrap_or(1.0);
        let per_loop = node["Actual Rows"].as_f64().unwrap_or(0.0)
            + node["Rows Removed by Filter"].as_f64().unwrap_or(0.0)
            + node["Rows Removed by Index Recheck"]
                .as_f64()
                .unwrap_or(0.0);
        n += per_loop * loops;
    }
    if let Some(children) = node["Plans"].as_array() {
        n += children.iter().map(rows_read).sum::<f64>();
    }
    n
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
