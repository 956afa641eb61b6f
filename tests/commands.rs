//! The operator commands and the demo, through the real binary against
//! fresh databases: `check`, `diagnose --json`, `reset-stuck-jobs` and
//! `demo`.

mod common;

use std::time::Duration;

use common::{SCHEMA, TempDir, TestDb, admin_url, command, run_binary};
use postgres::{Client, NoTls};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// Runs the binary with `args` and `vars`; returns (exit code, stdout, stderr).
fn run(args: &[&str], vars: &[(&str, &str)], timeout: Duration) -> (i32, String, String) {
    let (code, out, err) = run_binary(args, vars, timeout);
    (code.unwrap_or(-1), out, err)
}

/// `check` says `ok` and exits 0 on the real schema; with a column missing
/// in another project (and a third unreachable) it names the column and the
/// reason, one line per project, and exits 1.
#[test]
fn check_passes_on_the_real_schema_and_names_what_is_wrong() {
    let good = TestDb::new("check_good");
    let broken_schema = SCHEMA.replace("    error_message         text,\n", "");
    assert_ne!(broken_schema, SCHEMA);
    let broken = TestDb::with_schema("check_broken", &broken_schema);

    let (code, out, err) = run(&["check"], &[("GOOD_SUPABASE_DB_URL", &good.url)], WAIT);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("good: ok ("), "{out}");

    let (code, out, err) = run(
        &["check"],
        &[
            ("GOOD_SUPABASE_DB_URL", &good.url),
            ("BROKEN_SUPABASE_DB_URL", &broken.url),
            ("GONE_SUPABASE_DB_URL", "postgres://u:hunter2@127.0.0.1:1/x"),
        ],
        WAIT,
    );
    assert_eq!(code, 1, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("broken: missing column extraction_queue.error_message (text) ("),
        "{out}"
    );
    assert!(lines[1].starts_with("gone: database unreachable"), "{out}");
    assert!(lines[2].starts_with("good: ok"), "{out}");
    assert!(!out.contains("hunter2"), "{out}");
}

fn statuses(project: &Value) -> Vec<(i64, String, i64)> {
    project["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["statusId"].as_i64().unwrap(),
                j["name"].as_str().unwrap_or_default().to_string(),
                j["count"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn diagnose_json(db: &TestDb) -> Value {
    let (code, out, err) = run(
        &["diagnose", "--env", "dev", "--json"],
        &[
            ("DEV_SUPABASE_DB_URL", &db.url),
            ("OTHER_SUPABASE_DB_URL", "postgres://u@127.0.0.1:1/x"),
            ("MONITOR_STUCK_JOB_AFTER", "5m"),
            ("MONITOR_DEAD_WORKER_AFTER", "2m"),
        ],
        WAIT,
    );
    assert_eq!(code, 0, "{out}{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// `diagnose --json` reports what the test inserted: each worker alive or
/// dead by the threshold with its current job, job counts by status with
/// their names, the one stale job as stuck, and the recommended indexes the
/// database lacks with their `CREATE` statement; an index, once created, is
/// no longer reported. `--env` keeps to the named project.
#[test]
fn diagnose_json_reports_workers_jobs_stuck_jobs_and_missing_indexes() {
    let mut db = TestDb::new("diagnose");
    db.worker("w-alive", "busy", "5 seconds");
    db.worker("w-dead", "busy", "10 minutes");
    let stale = db.job(2, Some("w-dead"), Some("10 minutes"), "index:12345");
    db.job(2, Some("w-alive"), Some("1 second"), "acte:2");
    for n in 0..3 {
        db.job(1, None, None, &format!("acte:{n}"));
    }
    db.job(3, Some("w-alive"), Some("1 hour"), "acte:9");
    db.job(3, Some("w-alive"), Some("1 hour"), "acte:10");
    db.job(4, Some("w-alive"), Some("1 hour"), "plan_cadastraux:11");
    db.exec(&format!(
        "UPDATE worker_status SET current_job_id = '{stale}', jobs_completed = 7, jobs_failed = 1 WHERE worker_id = 'w-dead'"
    ));

    let report = diagnose_json(&db);
    let projects = report["projects"].as_array().unwrap();
    assert_eq!(projects.len(), 1, "--env keeps to dev: {report}");
    let p = &projects[0];
    assert_eq!(p["name"], "dev");
    assert_eq!(p["error"], Value::Null);
    assert_eq!(p["stuckJobAfterSeconds"], 300.0);

    let workers = p["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2);
    assert_eq!(workers[0]["id"], "w-alive");
    assert_eq!(workers[0]["alive"], true);
    assert_eq!(workers[1]["id"], "w-dead");
    assert_eq!(workers[1]["alive"], false);
    assert_eq!(workers[1]["currentJob"], stale.as_str());
    assert_eq!(workers[1]["jobsCompleted"], 7);
    assert_eq!(workers[1]["jobsFailed"], 1);
    assert!(workers[1]["heartbeatAgeSeconds"].as_i64().unwrap() >= 600);

    let counts = statuses(p);
    assert_eq!(
        counts.len(),
        6,
        "every status of extraction_status: {counts:?}"
    );
    assert_eq!(counts[0], (1, "En attente".into(), 3));
    assert_eq!(counts[1], (2, "En traitement".into(), 2));
    assert_eq!(counts[2], (3, "Complété".into(), 2));
    assert_eq!(counts[3], (4, "Erreur".into(), 1));
    assert_eq!(counts[4].2 + counts[5].2, 0);

    let stuck = p["stuckJobs"].as_array().unwrap();
    assert_eq!(stuck.len(), 1, "{p}");
    assert_eq!(stuck[0]["id"], stale.as_str());
    assert_eq!(stuck[0]["worker"], "w-dead");
    assert_eq!(stuck[0]["doc"], "index:12345");
    assert!(stuck[0]["seconds"].as_i64().unwrap() >= 600);

    let missing = p["missingIndexes"].as_array().unwrap();
    let names: Vec<&str> = missing
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    let recommended = registre_actors::indexes::recommended();
    let expected: Vec<&str> = recommended.iter().map(|i| i.name.as_str()).collect();
    assert!(expected.contains(&"extraction_queue_processing_idx"));
    assert_eq!(
        names, expected,
        "every recommended index is missing at first"
    );
    let create = missing[0]["create"].as_str().unwrap();
    assert_eq!(create, recommended[0].create);
    assert!(
        create.starts_with("CREATE INDEX CONCURRENTLY IF NOT EXISTS"),
        "{create}"
    );

    // The reported statement itself creates the index.
    db.exec(create);
    let report = diagnose_json(&db);
    let missing = report["projects"][0]["missingIndexes"].as_array().unwrap();
    let names: Vec<&str> = missing
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, expected[1..], "{report}");
}

/// `--env` with a name no project has is a configuration error (exit 2)
/// that lists the known projects.
#[test]
fn diagnose_with_an_unknown_env_names_the_known_ones() {
    let (code, out, err) = run(
        &["diagnose", "--env", "prod"],
        &[
            ("DEV_SUPABASE_DB_URL", "postgres://u@127.0.0.1:1/x"),
            ("STAGING_SUPABASE_DB_URL", "postgres://u@127.0.0.1:1/y"),
        ],
        WAIT,
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("\"prod\"") && err.contains("dev, staging"),
        "{err}"
    );
}

/// `reset-stuck-jobs --dry-run` lists exactly the stale jobs and changes
/// nothing; the real run then resets exactly those (with the resetter's
/// message) and leaves the fresh one, the waiting one and the done one.
#[test]
fn reset_stuck_jobs_dry_run_changes_nothing_and_the_real_run_resets_the_stale_ones() {
    let mut db = TestDb::new("reset");
    let stale = db.job(2, Some("worker-ac"), Some("10 minutes"), "index:12345");
    let no_start = db.job(2, Some("worker-zz"), None, "plan_cadastraux:7");
    db.exec(&format!(
        "UPDATE extraction_queue SET updated_at = now() - interval '1 hour' WHERE id = '{no_start}'"
    ));
    let fresh = db.job(2, Some("worker-ac"), Some("1 second"), "acte:67890");
    let pending = db.job(1, None, None, "acte:1");
    let done = db.job(3, Some("worker-ac"), Some("2 hours"), "acte:2");
    let snapshot = "SELECT string_agg(concat_ws('|', id, status_id, worker_id, processing_started_at, error_message, updated_at), ',' ORDER BY id) FROM extraction_queue";
    let before = db.text(snapshot);
    let url = db.url.clone();
    let vars = [("DEV_SUPABASE_DB_URL", url.as_str())];

    let (code, out, err) = run(
        &["reset-stuck-jobs", "--older-than", "5m", "--dry-run"],
        &vars,
        WAIT,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("dev: would reset 2 jobs"), "{out}");
    assert!(out.contains(&stale) && out.contains(&no_start), "{out}");
    assert!(!out.contains(&fresh), "{out}");
    assert_eq!(db.text(snapshot), before, "a dry run changes nothing");

    let (code, out, err) = run(&["reset-stuck-jobs", "--older-than", "5m"], &vars, WAIT);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("dev: reset 2 jobs"), "{out}");
    for id in [&stale, &no_start] {
        assert_eq!(db.job_status(id), 1);
        assert_eq!(
            db.field(id, "error_message").as_deref(),
            Some("Auto-reset by health monitor - exceeded processing time limit")
        );
    }
    assert_eq!(db.job_status(&fresh), 2);
    assert_eq!(db.job_status(&pending), 1);
    assert_eq!(db.job_status(&done), 3);

    let (code, out, _) = run(&["reset-stuck-jobs", "--older-than", "5m"], &vars, WAIT);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("dev: no job processing for more than 5m"),
        "{out}"
    );
}

/// A small demo runs the real monitor against crashing and hanging
/// simulated workers, finishes every job (exit 0), reports the worst
/// recovery, and drops its scratch database.
#[test]
fn demo_finishes_every_job_and_drops_its_scratch_database() {
    let url = admin_url();
    let (code, out, err) = run(
        &[
            "demo",
            "--workers",
            "3",
            "--jobs",
            "15",
            "--database-url",
            &url,
        ],
        &[],
        Duration::from_secs(150),
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("All 15 jobs finished"), "{out}");
    assert!(out.contains(" healed, worst "), "{out}");
    let name = scratch_database(&out);
    let mut admin = Client::connect(&url, NoTls).unwrap();
    assert_eq!(databases_named(&mut admin, &name), 0, "{name} still exists");
}

/// The scratch database the demo names in `text`.
fn scratch_database(text: &str) -> String {
    text.split_whitespace()
        .find(|w| w.starts_with("registre_demo_"))
        .unwrap_or_else(|| panic!("no scratch database named in: {text}"))
        .to_string()
}

/// How many databases are called `name` (0 or 1).
fn databases_named(admin: &mut Client, name: &str) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&name],
        )
        .unwrap()
        .get(0)
}

/// Without a reachable Postgres the demo says what it tried (password
/// hidden) and how to point it elsewhere, and exits 2.
#[test]
fn demo_without_postgres_says_what_it_tried_and_how_to_point_elsewhere() {
    let (code, out, err) = run(
        &["demo"],
        &[(
            "DEMO_DATABASE_URL",
            "postgres://postgres:hunter2@127.0.0.1:1/postgres",
        )],
        WAIT,
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("postgres://postgres@127.0.0.1:1/postgres"),
        "{err}"
    );
    assert!(
        err.contains("--database-url") && err.contains("DEMO_DATABASE_URL"),
        "{err}"
    );
    assert!(!err.contains("hunter2") && !out.contains("hunter2"));
}

/// Ctrl-C (SIGINT) in the middle of a demo stops it cleanly: it reports the
/// interruption, exits 1 (not every job finished) and still drops its
/// scratch database. Its first line is the dashboard's address, which
/// serves the page while the demo runs.
#[test]
fn demo_interrupted_by_ctrl_c_still_drops_its_scratch_database() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let url = admin_url();
    let dir = TempDir::new();
    let mut child = command(
        &[
            "demo",
            "--workers",
            "2",
            "--jobs",
            "500",
            "--database-url",
            &url,
        ],
        &[],
        &dir,
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut dashboard = String::new();
    stdout.read_line(&mut dashboard).unwrap();
    let page = dashboard
        .strip_prefix("Dashboard: http://")
        .and_then(|rest| rest.split_once('/'))
        .unwrap_or_else(|| panic!("the first line is not the dashboard: {dashboard}"))
        .0
        .parse()
        .unwrap();
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let (code, body) = common::http::get(page, "/");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("id=\"card-demo\""), "{body}");
    let name = scratch_database(&first);
    let mut admin = Client::connect(&url, NoTls).unwrap();
    assert_eq!(databases_named(&mut admin, &name), 1);

    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(1), "{rest}");
    assert!(
        rest.contains("NOT every job finished (interrupted)"),
        "{rest}"
    );
    assert!(
        rest.contains(&format!("Scratch database {name} dropped.")),
        "{rest}"
    );
    assert_eq!(databases_named(&mut admin, &name), 0, "{name} still exists");
}
