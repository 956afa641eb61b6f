//! Configuration through the real binary: bad settings stop start-up with
//! one line naming the variable, exit 2 ([`bad_values`], [`start_up_errors`]);
//! `.env` is read but never wins; misspelled names are pointed out.

#[path = "../common/mod.rs"]
mod common;

mod bad_values;
mod start_up_errors;

use std::time::Duration;

use common::{Monitor, TestDb, fast, watching};

const PROJECT: (&str, &str) = (
    "DEV_SUPABASE_DB_URL",
    "postgres://postgres:hunter2@127.0.0.1:1/x",
);

/// Runs the binary to its end; returns (exit code, stdout, stderr).
fn run_binary(args: &[&str], vars: &[(&str, &str)]) -> (Option<i32>, String, String) {
    common::run_binary(args, vars, Duration::from_secs(10))
}

/// A `.env` in the working directory is read, and the real environment
/// wins over it: its bad interval is overridden, its project is watched.
#[test]
fn dotenv_is_read_and_never_overrides_the_environment() {
    let db = TestDb::new("dotenv");
    // The environment's interval, which the `.env`'s must not replace.
    let monitor_vars = fast(&[("MONITOR_CHECK_INTERVAL", "200ms")]);
    let dotenv = format!(
        "# watched through .env\nFROMFILE_SUPABASE_DB_URL={}\nMONITOR_CHECK_INTERVAL=oops\n",
        db.url
    );
    let monitor = Monitor::start_with_dotenv(&monitor_vars, &dotenv);
    let started = monitor.wait_for(
        1,
        "🚀 Health monitor started",
        None,
        Duration::from_secs(20),
    );
    assert_eq!(started[0]["environments"], serde_json::json!(["fromfile"]));
    monitor.wait_for(
        1,
        "📊 System health status",
        Some("fromfile"),
        Duration::from_secs(20),
    );
}

/// A misspelled setting or project variable is warned about at start-up,
/// named with the nearest known name; when it is why no project is found,
/// the error says so.
#[test]
fn misspelled_names_are_warned_about() {
    let (code, _, err) = run_binary(&["run"], &[("DEV_SUPABASE_DBURL", "postgres://u@h/db")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no project configured"), "{err}");
    assert!(
        err.contains("DEV_SUPABASE_DBURL is not a variable the monitor reads (ignored); did you mean DEV_SUPABASE_DB_URL?"),
        "{err}"
    );

    let db = TestDb::new("misspelled");
    let vars = watching(
        &[("dev", &db.url)],
        &[
            ("MONITOR_CHECK_INTERVALL", "5s"),
            ("STAGING_SUPABASE_DBURL", "x"),
        ],
    );
    let monitor = Monitor::start(&vars);
    let setting = monitor.wait_for(
        1,
        "MONITOR_CHECK_INTERVALL is not a setting",
        None,
        Duration::from_secs(20),
    );
    assert_eq!(setting[0]["level"], "WARN");
    assert!(
        setting[0]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean MONITOR_CHECK_INTERVAL?"),
        "{setting:?}"
    );
    let project = monitor.wait_for(
        1,
        "STAGING_SUPABASE_DBURL is not",
        None,
        Duration::from_secs(20),
    );
    assert!(
        project[0]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean STAGING_SUPABASE_DB_URL?"),
        "{project:?}"
    );

    // The other subcommands warn too (on stderr; stdout stays theirs).
    let url = db.url.clone();
    let (code, out, err) = run_binary(
        &["check"],
        &[
            ("DEV_SUPABASE_DB_URL", &url),
            ("MONITOR_STUCK_JOB_AFTR", "1m"),
        ],
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(err.contains("MONITOR_STUCK_JOB_AFTR is not a setting (ignored); did you mean MONITOR_STUCK_JOB_AFTER?"), "{err}");
    assert!(!out.contains("MONITOR_STUCK_JOB_AFTR"), "{out}");
}

/// Each subcommand's `--help` lists the flags it uses, not every setting.
#[test]
fn each_subcommand_help_shows_its_own_flags() {
    let help = |sub: &str| run_binary(&[sub, "--help"], &[]).1;
    let demo = help("demo");
    assert!(demo.contains("--workers"), "{demo}");
    assert!(!demo.contains("--check-interval"), "{demo}");
    assert!(!help("check").contains("--stuck-job-after"));
    assert!(help("run").contains("--check-interval"));
    assert!(help("diagnose").contains("--dead-worker-after"));
}
