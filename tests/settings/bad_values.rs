//! Bad settings, one at a time: each stops start-up with one line naming
//! the variable (exit 2), never showing the password.

use std::time::Duration;

use crate::PROJECT;
use crate::common::{self, TempDir, command};

/// Each case: extra variables (a valid project is added unless the case sets
/// one), extra arguments, an optional `.env` text, and what the one line
/// must name.
struct Case {
    vars: Vec<(&'static str, &'static str)>,
    args: &'static [&'static str],
    dotenv: Option<&'static str>,
    names: &'static str,
}

/// Variables set as `vars`; the line must name `names`.
fn case(vars: &[(&'static str, &'static str)], names: &'static str) -> Case {
    Case {
        vars: vars.to_vec(),
        args: &[],
        dotenv: None,
        names,
    }
}

/// `var` set to a bad `value`: the line must name `var`.
fn bad(var: &'static str, value: &'static str) -> Case {
    case(&[(var, value)], var)
}

/// Command-line flags `args`; the line must name `names`.
fn flags(args: &'static [&'static str], names: &'static str) -> Case {
    Case {
        args,
        ..case(&[], names)
    }
}

/// A `.env` holding `text`; the line must name `names`.
fn dotenv(text: &'static str, names: &'static str) -> Case {
    Case {
        dotenv: Some(text),
        ..case(&[], names)
    }
}

/// Every bad setting, in the order they are tried.
fn cases() -> Vec<Case> {
    vec![
        bad("MONITOR_CHECK_INTERVAL", "0s"),
        bad("MONITOR_CHECK_INTERVAL", "-5s"),
        bad("MONITOR_CHECK_INTERVAL", "30"),
        bad("MONITOR_CHECK_INTERVAL", ""),
        bad("MONITOR_STUCK_JOB_AFTER", "abc"),
        bad("MONITOR_STUCK_JOB_AFTER", "3 weeks"),
        bad("MONITOR_STUCK_JOB_AFTER", "10s"),
        bad("MONITOR_DEAD_WORKER_AFTER", "10s"),
        case(
            &[
                ("MONITOR_DEAD_WORKER_AFTER", "1m"),
                ("MONITOR_CHECK_INTERVAL", "2m"),
            ],
            "MONITOR_DEAD_WORKER_AFTER",
        ),
        bad("MONITOR_HEALTH_LOG_EVERY", "5x"),
        bad("MONITOR_FAILED_JOBS_WARN", "ten"),
        bad("MONITOR_FAILED_JOBS_WARN", "-1"),
        bad("MONITOR_CONNECT_TIMEOUT", "1.5.2s"),
        bad("MONITOR_STATEMENT_TIMEOUT", "0ms"),
        bad("LOG_LEVEL", "verbose"),
        bad("LOG_FORMAT", "xml"),
        bad(
            "DEV_SUPABASE_DB_URL",
            "postgres://u:hunter2@host:notaport/db",
        ),
        bad("DEV_SUPABASE_DB_URL", ""),
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
        bad(
            "DEV_SUPABASE_DB_URL",
            "postgres://u:hunter2@h/db?sslmode=sometimes",
        ),
        bad(
            "DEV_SUPABASE_DB_URL",
            "postgres://u:hunter2@h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
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
        bad("MY-PROJ_SUPABASE_DB_URL", "postgres://u@h/db"),
        bad("_SUPABASE_DB_URL", "postgres://u@h/db"),
        bad("MONITOR_ATTEMPTS_COLUMN", "attemtps; DROP TABLE x"),
        bad("MONITOR_COUNT_RESETS_AS_ATTEMPTS", "maybe"),
        bad("MONITOR_LIVE_WORKER_GRACE", "-1s"),
        bad("MONITOR_STUCK_OCR_AFTER", "ten minutes"),
        bad("MONITOR_LEADER_ELECTION", "always"),
        bad("MONITOR_ALERT_WEBHOOK_URL", "ftp://hooks/hunter2"),
        bad("MONITOR_ALERT_WEBHOOK_URL", "https://user:hunter2@hooks/x"),
        bad("MONITOR_ALERT_MIN_RESETS", "0"),
        flags(&["--check-interval", "0s"], "MONITOR_CHECK_INTERVAL"),
        dotenv(
            "MONITOR_CHECK_INTERVAL=30s\nthis is not a setting\n",
            ".env line 2",
        ),
        dotenv("=oops\n", ".env line 1"),
    ]
}

/// Every bad setting exits with code 2 and one line on stderr that names
/// the variable and never shows the password.
#[test]
fn bad_settings_stop_start_up_with_one_line_naming_the_variable() {
    for (i, c) in cases().iter().enumerate() {
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
