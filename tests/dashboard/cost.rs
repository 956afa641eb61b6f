//! What the dashboard costs the database: nothing while nobody looks.

use std::time::Duration;

use crate::common::http::metrics;
use crate::common::web::EventStream;
use crate::common::{self, TestDb, eventually};
use crate::{WAIT, failed_jobs, start};

/// A dashboard nobody opens costs the database nothing: with no page and
/// no stream, the dashboard sends no statement and holds no session, and
/// the database's transactions (`pg_stat_database`) are the checks' own
/// (at most one request a run, the stuck rule's often none); with a stream open, its reads come at most once per 5 s and are
/// all the database sees beyond the checks; once it closes they stop.
/// Prints the figures per minute.
#[test]
fn a_closed_dashboard_costs_the_database_nothing() {
    let mut db = TestDb::new("dash_cost");
    db.worker("w-1", "busy", "1 second");
    db.job(2, Some("w-1"), Some("5 seconds"), "acte:1");
    failed_jobs(&mut db, 3, "timeout");
    // This session's own statistics would otherwise reach the server once
    // it has been idle for 10 s, in the middle of a window.
    db.exec("SELECT pg_stat_force_next_flush()");
    let (monitor, addr) = start(
        &[("dev", &db)],
        &[
            ("MONITOR_CHECK_INTERVAL", "1s"),
            // No election: every check run is one statement at most.
            ("MONITOR_LEADER_ELECTION", "off"),
            // And nobody dies during the test (a death is more statements).
            ("MONITOR_DEAD_WORKER_AFTER", "10m"),
            ("LOG_LEVEL", "info"),
        ],
    );
    // Asked from another database, so that asking adds nothing there.
    let mut admin = postgres::Client::connect(&common::admin_url(), postgres::NoTls).unwrap();
    let name = db.name.clone();
    let mut database = move || -> (i64, i64) {
        let row = admin
            .query_one(
                "SELECT (SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database WHERE datname = $1),
                        (SELECT count(*) FROM pg_stat_activity
                         WHERE datname = $1 AND application_name = 'registre-monitor dashboard')",
                &[&name],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    let check_runs = || -> i64 {
        let (_, s) = common::http::get_json(addr, "/status");
        ["StuckJobResetter", "WorkerReaper", "HealthReporter"]
            .iter()
            .map(|c| {
                s["projects"]["dev"]["checks"][c]["runs"]
                    .as_i64()
                    .unwrap_or(0)
            })
            .sum()
    };
    let dashboard_statements = || {
        metrics(addr)
            .get("registre_monitor_dashboard_statements_total{environment=\"dev\"}")
            .copied()
            .unwrap_or(0.0) as i64
    };
    eventually("the checks run", WAIT, || check_runs() >= 9);

    // (transactions, check runs, dashboard statements, dashboard sessions
    // at the end) over a window, the stream open or not.
    const SECONDS: u64 = 20;
    let mut window = |open: bool| {
        let ((tx0, _), runs0, dash0) = (database(), check_runs(), dashboard_statements());
        let mut stream = open.then(|| EventStream::open(addr, "/events", &[]));
        match &mut stream {
            Some(s) => s.read_for(Duration::from_secs(SECONDS - 2)),
            None => std::thread::sleep(Duration::from_secs(SECONDS - 2)),
        }
        drop(stream);
        // The last statistics reach the server about a second late.
        std::thread::sleep(Duration::from_secs(2));
        let ((tx1, sessions), runs1, dash1) = (database(), check_runs(), dashboard_statements());
        (tx1 - tx0, runs1 - runs0, dash1 - dash0, sessions)
    };

    let closed = window(false);
    let open = window(true);
    let after = window(false);
    let per_minute = |n: i64| n * 60 / SECONDS as i64;
    for (what, (tx, runs, dash, sessions)) in
        [("closed", closed), ("open", open), ("closed again", after)]
    {
        eprintln!(
            "{what}: {} transactions a minute: {} check runs, {} dashboard statements ({sessions} dashboard session)",
            per_minute(tx),
            per_minute(runs),
            per_minute(dash)
        );
    }
    // A steady run sends at most one request, the stuck rule's often none
    // (the health probe answered its look): the checks' share of the
    // transactions is taken from the first closed window, and expected
    // again in the others.
    let (tx, runs, dash, sessions) = closed;
    assert_eq!(
        (dash, sessions),
        (0, 0),
        "the dashboard used the database while closed"
    );
    assert!(
        tx <= runs + 3 && tx * 2 >= runs,
        "closed: {tx} transactions for {runs} check runs"
    );
    assert_eq!(metrics(addr)["registre_monitor_dashboard_viewers"], 0.0);
    let per_run = tx as f64 / runs as f64;
    let checks = |runs: i64| (runs as f64 * per_run).round() as i64;
    // Which of the two checks runs first in an interval varies, and with it
    // how often the stuck rule looks itself.
    let slack = |runs: i64| 3 + checks(runs) / 10;

    let (tx, runs, dash, _) = open;
    assert!(
        (2..=5).contains(&dash),
        "open: {dash} dashboard statements in {SECONDS} s"
    );
    assert!(
        (tx - checks(runs) - dash).abs() <= slack(runs),
        "open: {tx} transactions for {runs} check runs (about {} requests) and {dash} dashboard statements",
        checks(runs)
    );

    let (tx, runs, dash, _) = after;
    assert_eq!(dash, 0, "statements after the stream closed");
    assert!(
        (tx - checks(runs)).abs() <= slack(runs),
        "closed again: {tx} transactions for {runs} check runs (about {} requests)",
        checks(runs)
    );
    drop(monitor);
}
