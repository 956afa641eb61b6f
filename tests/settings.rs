//! Configuration through the real binary: bad settings stop start-up with
//! one line naming the variable (exit 2); `.env` is read but never wins.

mod common;

use std::time::Duration;

use common::{Monitor, TempDir, TestDb, command, fast};

const PROJECT: (&str, &str) = (
    "DEV_SUPABASE_DB_URL",
    "postgres://postgres:hunter2@127.0.0.1:1/x",
);

/// Each case: extra variables (a valid project is added unless the case sets
/// one), extra arguments, an optional `.env` text, and what the one line
/// must name.
struct Case {
    vars: &'static [(&'static str, &'static str)],
    args: &'static [&'static str],
    dotenv: Option<&'static str>,
    names: &'static str,
}

const fn case(vars: &'static [(&'static str, &'static str)], names: &'static str) -> Case {
    Case {
        vars,
        args: &[],
        dotenv: None,
        names,
    }
}

const CASES: &[Case] = &[
    case(
        &[("MONITOR_CHECK_INTERVAL", "0s")],
        "MONITOR_CHECK_INTERVAL",
    ),
    case(
        &[("MONITOR_CHECK_INTERVAL", "-5s")],
        "MONITOR_CHECK_INTERVAL",
    ),
    case(
        &[("MONITOR_CHECK_INTERVAL", "30")],
        "MONITOR_CHECK_INTERVAL",
    ),
    case(&[("MONITOR_CHECK_INTERVAL", "")], "MONITOR_CHECK_INTERVAL"),
    case(
        &[("MONITOR_STUCK_JOB_AFTER", "abc")],
        "MONITOR_STUCK_JOB_AFTER",
    ),
    case(
        &[("MONITOR_STUCK_JOB_AFTER", "3 weeks")],
        "MONITOR_STUCK_JOB_AFTER",
    ),
    case(
        &[("MONITOR_STUCK_JOB_AFTER", "10s")],
        "MONITOR_STUCK_JOB_AFTER",
    ),
    case(
        &[("MONITOR_DEAD_WORKER_AFTER", "10s")],
        "MONITOR_DEAD_WORKER_AFTER",
    ),
    case(
        &[
            ("MONITOR_DEAD_WORKER_AFTER", "1m"),
            ("MONITOR_CHECK_INTERVAL", "2m"),
        ],
        "MONITOR_DEAD_WORKER_AFTER",
    ),
    case(
        &[("MONITOR_HEALTH_LOG_EVERY", "5x")],
        "MONITOR_HEALTH_LOG_EVERY",
    ),
    case(
        &[("MONITOR_FAILED_JOBS_WARN", "ten")],
        "MONITOR_FAILED_JOBS_WARN",
    ),
    case(
        &[("MONITOR_FAILED_JOBS_WARN", "-1")],
        "MONITOR_FAILED_JOBS_WARN",
    ),
    case(
        &[("MONITOR_CONNECT_TIMEOUT", "1.5.2s")],
        "MONITOR_CONNECT_TIMEOUT",
    ),
    case(
        &[("MONITOR_STATEMENT_TIMEOUT", "0ms")],
        "MONITOR_STATEMENT_TIMEOUT",
    ),
    case(&[("LOG_LEVEL", "verbose")], "LOG_LEVEL"),
    case(&[("LOG_FORMAT", "xml")], "LOG_FORMAT"),
    case(
        &[(
            "DEV_SUPABASE_DB_URL",
            "postgres://u:hunter2@host:notaport/db",
        )],
        "DEV_SUPABASE_DB_URL",
    ),
    case(&[("DEV_SUPABASE_DB_URL", "")], "DEV_SUPABASE_DB_URL"),
    case(
        &[("DEV_SUPABASE_DB_URL", "postgres://u:hunter2@x@host/db")],
        "DEV_SUPABASE_DB_URL holds an `@`",
    ),
    case(
        &[("DEV_SUPABASE_DB_URL", "https://abc.supabase.co")],
        "DEV_SUPABASE_DB_URL is an HTTPS API URL",
    ),
    case(
        &[("DEV_SUPABASE_DB_URL", "host=h password=hunter2 2")],
        "DEV_SUPABASE_DB_URL is neither",
    ),
    case(
        &[(
            "DEV_SUPABASE_DB_URL",
            "postgres://u:hunter2@h/db?sslmode=sometimes",
        )],
        "DEV_SUPABASE_DB_URL",
    ),
    case(
        &[(
            "DEV_SUPABASE_DB_URL",
            "postgres://u:hunter2@h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        )],
        "DEV_SUPABASE_DB_URL",
    ),
    case(
        &[
            ("DEV_SUPABASE_URL", "https://abc.supabase.co"),
            ("DEV_SUPABASE_SERVICE_KEY", "k"),
        ],
        "DEV_SUPABASE_DB_URL",
    ),
    case(
        &[PROJECT, ("dev_SUPABASE_DB_URL", "postgres://u@h/db")],
        "dev_SUPABASE_DB_URL",
    ),
    case(
        &[("MY-PROJ_SUPABASE_DB_URL", "postgres://u@h/db")],
        "MY-PROJ_SUPABASE_DB_URL",
    ),
    case(
        &[("_SUPABASE_DB_URL", "postgres://u@h/db")],
        "_SUPABASE_DB_URL",
    ),
    case(
        &[("MONITOR_ATTEMPTS_COLUMN", "attemtps; DROP TABLE x")],
        "MONITOR_ATTEMPTS_COLUMN",
    ),
    case(
        &[("MONITOR_COUNT_RESETS_AS_ATTEMPTS", "maybe")],
        "MONITOR_COUNT_RESETS_AS_ATTEMPTS",
    ),
    case(
        &[("MONITOR_LIVE_WORKER_GRACE", "-1s")],
        "MONITOR_LIVE_WORKER_GRACE",
    ),
    case(
        &[("MONITOR_STUCK_OCR_AFTER", "ten minutes")],
        "MONITOR_STUCK_OCR_AFTER",
    ),
    case(
        &[("MONITOR_LEADER_ELECTION", "always")],
        "MONITOR_LEADER_ELECTION",
    ),
    case(
        &[("MONITOR_ALERT_WEBHOOK_URL", "ftp://hooks/hunter2")],
        "MONITOR_ALERT_WEBHOOK_URL",
    ),
    case(
        &[("MONITOR_ALERT_WEBHOOK_URL", "https://user:hunter2@hooks/x")],
        "MONITOR_ALERT_WEBHOOK_URL",
    ),
    case(
        &[("MONITOR_ALERT_MIN_RESETS", "0")],
        "MONITOR_ALERT_MIN_RESETS",
    ),
    Case {
        vars: &[],
        args: &["--check-interval", "0s"],
        dotenv: None,
        names: "MONITOR_CHECK_INTERVAL",
    },
    Case {
        vars: &[],
        args: &[],
        dotenv: Some("MONITOR_CHECK_INTERVAL=30s\nthis is not a setting\n"),
        names: ".env line 2",
    },
    Case {
        vars: &[],
        args: &[],
        dotenv: Some("=oops\n"),
        names: ".env line 1",
    },
];

/// Every bad setting exits with code 2 and one line on stderr that names
/// the variable and never shows the password.
#[test]
fn bad_settings_stop_start_up_with_one_line_naming_the_variable() {
    for (i, c) in CASES.iter().enumerate() {
        let dir = TempDir::new();
        if let Some(text) = c.dotenv {
            std::fs::write(dir.0.join(".env"), text).unwrap();
        }
        let mut vars: Vec<(&str, &str)> = Vec::new();
        let sets_project = c.vars.iter().any(|(k, _)| k.contains("SUPABASE"));
        if !sets_project {
            vars.push(PROJECT);
        }
        vars.extend(c.vars.iter().copied());
        let mut args = vec!["run"];
        args.extend(c.args.iter().copied());
        let out = common::output_within(command(&args, &vars, &dir), Duration::from_secs(10));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let what = format!("case {i} ({:?} {:?}): stderr {stderr:?}", c.vars, c.args);
        assert_eq!(out.status.code(), Some(2), "{what}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{what}");
        assert!(stderr.contains(c.names), "{what}");
        assert!(stderr.contains("expected"), "says what is expected: {what}");
        assert!(!stderr.contains("hunter2"), "{what}");
        assert!(out.stdout.is_empty(), "{what}");
    }
}

/// With no project at all the message says what to set.
#[test]
fn no_project_says_what_to_set() {
    let dir = TempDir::new();
    let out = common::output_within(command(&[], &[], &dir), Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("<NAME>_SUPABASE_DB_URL"), "{stderr}");
}

/// A `.env` in the working directory is read, and the real environment
/// wins over it: its bad interval is overridden, its project is watched.
#[test]
fn dotenv_is_read_and_never_overrides_the_environment() {
    let db = TestDb::new("dotenv");
    let vars = fast(&[]);
    let mut monitor_vars: Vec<(String, String)> = vars.clone();
    monitor_vars.retain(|(k, _)| k != "MONITOR_CHECK_INTERVAL");
    monitor_vars.push(("MONITOR_CHECK_INTERVAL".into(), "200ms".into()));
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

/// Runs the binary to its end; returns (exit code, stdout, stderr).
fn run_binary(args: &[&str], vars: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let dir = TempDir::new();
    let out = common::output_within(command(args, vars, &dir), Duration::from_secs(10));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// With `LOG_FORMAT=json` a configuration error is one JSON object with
/// the fields of a log line (`timestamp`, `level`, `target`, `message`),
/// exit code 2; a bad `LOG_LEVEL` and a bad connection string too.
#[test]
fn json_start_up_errors_are_one_json_object() {
    for vars in [
        &[
            PROJECT,
            ("LOG_FORMAT", "json"),
            ("MONITOR_CHECK_INTERVAL", "0s"),
        ][..],
        &[("LOG_FORMAT", "json")],
        &[PROJECT, ("LOG_FORMAT", "json"), ("LOG_LEVEL", "loud")],
        &[
            ("LOG_FORMAT", "json"),
            ("DEV_SUPABASE_DB_URL", "postgres://u:hunter2@x@h/db"),
        ],
    ] {
        let (code, out, err) = run_binary(&["run"], vars);
        assert_eq!(code, Some(2), "{vars:?}: {err}");
        assert!(out.is_empty());
        assert_eq!(err.lines().count(), 1, "{err}");
        let line: serde_json::Value =
            serde_json::from_str(&err).unwrap_or_else(|e| panic!("{e}: {err}"));
        assert_eq!(line["level"], "ERROR", "{line}");
        assert_eq!(line["target"], "registre_monitor", "{line}");
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'), "{line}");
        let message = line["message"].as_str().unwrap();
        assert!(message.starts_with("configuration error: "), "{line}");
        assert!(message.contains("expected"), "{line}");
        assert!(!err.contains("hunter2"), "{line}");
    }
}

/// A taken `MONITOR_HTTP_ADDR` port is the one-line `configuration error:`
/// form (exit 2) like every other start-up error; one JSON object with
/// `LOG_FORMAT=json`.
#[test]
fn a_taken_port_is_a_one_line_configuration_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let vars = [PROJECT, ("MONITOR_HTTP_ADDR", addr.as_str())];
    let (code, _, err) = run_binary(&["run"], &vars);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "registre-monitor: configuration error: MONITOR_HTTP_ADDR={addr} cannot be listened on"
        )),
        "{err}"
    );
    assert!(err.contains("expected"), "{err}");

    let vars = [
        PROJECT,
        ("MONITOR_HTTP_ADDR", addr.as_str()),
        ("LOG_FORMAT", "json"),
    ];
    let (code, _, err) = run_binary(&["run"], &vars);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let line: serde_json::Value =
        serde_json::from_str(&err).unwrap_or_else(|e| panic!("{e}: {err}"));
    assert!(
        line["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("configuration error: MONITOR_HTTP_ADDR={addr}")),
        "{line}"
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
    let mut vars = fast(&[
        ("MONITOR_CHECK_INTERVALL", "5s"),
        ("STAGING_SUPABASE_DBURL", "x"),
    ]);
    vars.push(("DEV_SUPABASE_DB_URL".into(), db.url.clone()));
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
