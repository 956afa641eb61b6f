//! No password is ever shown, whatever characters it holds and however the
//! connection string is written; and the connections still work.
//!
//! A table of passwords holding every character a connection string gives a
//! meaning to (`/ ? @ : % # & =`, spaces, quotes, backslashes), unicode and
//! percent-encodings, each the password of a role of its own on the test
//! server, each written in five forms (URL percent-encoded, URL as typed,
//! URL `?password=`, `key='value'`, `key = value` with spaces), through the
//! real binary: `check`, `diagnose`, `diagnose --json`, `reset-stuck-jobs
//! --dry-run`, `run` (its `/status`, `/metrics`, `/readyz`, `/healthz` and
//! its logs at `RUST_LOG=trace`) and the configuration errors of strings
//! that are wrong in other ways. No piece of any password shows anywhere:
//! not raw, not percent-encoded, not JSON-escaped, not a word of it, not
//! the characters around one of its special characters.
//!
//! Against a server that checks passwords (`TEST_DATABASE_URL` on a
//! scram-sha-256 cluster), every connection here authenticates with them.

mod common;

use std::time::Duration;

use common::http::{addr, get};
use common::{Monitor, TempDir, TestDb, command, fast, output_within, percent_encode, server};
use postgres::{Client, NoTls};

const WAIT: Duration = Duration::from_secs(30);

/// The passwords: each distinct word (4 characters or more) appears in no
/// other text the monitor prints.
const PASSWORDS: &[&str] = &[
    "Sl4sh/Qzv1Word",
    "Qu3st?Qzv2Word",
    "Atx@Qzv3Word",
    "C0lon:Qzv4Word",
    "P3rc%Qzv5Word",
    "P3rc%41Qzv6Word",
    "H4sh#Qzv7Word",
    "Ampx&Qzv8Word",
    "Eqxx=Qzv9Word",
    "Sp4ce Qzv10Word",
    "Ünï€ Qzv11Word 密码",
    "Quo'te\\Qzv12Word",
    "All/?@:%#&= Ω'Qzv13Word",
];

/// What must never be printed of `password`: itself, its encodings, each
/// word of it, and the characters around each of its special characters.
fn pieces(password: &str) -> Vec<String> {
    let mut out = vec![
        password.to_string(),
        percent_encode(password),
        serde_json::to_string(password)
            .unwrap()
            .trim_matches('"')
            .to_string(),
    ];
    out.extend(
        password
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.chars().count() >= 4)
            .map(str::to_string),
    );
    let chars: Vec<char> = password.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if !c.is_ascii_alphanumeric() {
            let from = i.saturating_sub(2);
            let to = (i + 3).min(chars.len());
            out.push(chars[from..to].iter().collect());
        }
    }
    out
}

/// Panics if `text` shows a piece of any password.
fn assert_hidden(what: &str, text: &str) {
    for password in PASSWORDS {
        for piece in pieces(password) {
            assert!(
                !text.contains(&piece),
                "{what} shows {piece:?} of the password {password:?}:\n{text}"
            );
        }
    }
}

/// Roles of this test's own on the server, dropped at the end.
struct Roles(Vec<String>);

impl Drop for Roles {
    fn drop(&mut self) {
        if let Ok(mut admin) = Client::connect(&common::admin_url(), NoTls) {
            for role in &self.0 {
                let _ = admin.batch_execute(&format!("DROP ROLE IF EXISTS {role}"));
            }
        }
    }
}

/// A password escaped for a `key='value'` string (libpq's rules).
fn quoted(password: &str) -> String {
    format!("'{}'", password.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A password escaped for an unquoted `key = value` (backslash before
/// spaces, quotes and backslashes).
fn unquoted(password: &str) -> String {
    password
        .chars()
        .flat_map(|c| {
            let escape = c.is_whitespace() || c == '\'' || c == '\\';
            escape.then_some('\\').into_iter().chain(std::iter::once(c))
        })
        .collect()
}

/// Every form of the connection string for `role` with `password` on
/// `database`: (form, text). The URL as typed only when the driver reads
/// it as the same password (no `@`, no `%XX`).
fn forms(role: &str, password: &str, database: &str) -> Vec<(&'static str, String)> {
    let s = server();
    let addr = s.addr();
    let (host, port) = (&s.host, s.port);
    let encoded = percent_encode(password);
    let mut forms = vec![
        (
            "enc",
            format!("postgres://{role}:{encoded}@{addr}/{database}?sslmode=disable"),
        ),
        (
            "param",
            format!("postgresql://{role}@{addr}/{database}?sslmode=disable&password={encoded}"),
        ),
        (
            "kv",
            format!(
                "host={host} port={port} user={role} password={} dbname={database} sslmode=disable",
                quoted(password)
            ),
        ),
        (
            "spaced",
            format!(
                "host = {host} port = {port} user = {role} password = {} dbname = {database} sslmode = disable",
                unquoted(password)
            ),
        ),
    ];
    let decodes = password
        .as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit());
    if !password.contains('@') && !decodes {
        forms.push((
            "raw",
            format!("postgres://{role}:{password}@{addr}/{database}?sslmode=disable"),
        ));
    }
    forms
}

/// Runs the binary; returns (exit code, stdout + stderr).
fn run(args: &[&str], vars: &[(String, String)]) -> (i32, String) {
    let dir = TempDir::new();
    let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = output_within(command(args, &refs, &dir), WAIT);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Every password in every form: the operator commands and a running
/// monitor connect with it (each project `ok`, ready, counted) and show no
/// piece of it, in their output, endpoints and trace logs.
#[test]
fn no_password_shows_and_every_connection_works() {
    let mut admin = Client::connect(&common::admin_url(), NoTls).unwrap();
    let tag = std::process::id();
    let roles = Roles(
        (0..PASSWORDS.len())
            .map(|i| format!("rmtest_secret_{tag}_{i}"))
            .collect(),
    );
    for (role, password) in roles.0.iter().zip(PASSWORDS) {
        admin
            .batch_execute(&format!(
                "CREATE ROLE {role} LOGIN PASSWORD '{}'",
                password.replace('\'', "''")
            ))
            .unwrap();
    }
    let mut db = TestDb::new("secrets");
    for role in &roles.0 {
        db.exec(&format!(
            "GRANT SELECT, UPDATE ON ALL TABLES IN SCHEMA public TO {role}"
        ));
    }
    db.job(2, Some("worker-gone"), Some("10 minutes"), "acte:1");

    // One batch a form: at most 13 projects (and their connections) at once.
    for form in ["enc", "param", "kv", "spaced", "raw"] {
        let mut projects: Vec<(String, String)> = Vec::new();
        for (i, (role, password)) in roles.0.iter().zip(PASSWORDS).enumerate() {
            if let Some((_, text)) = forms(role, password, &db.name)
                .into_iter()
                .find(|(f, _)| *f == form)
            {
                projects.push((format!("P{i}{}_SUPABASE_DB_URL", form.to_uppercase()), text));
            }
        }
        let names: Vec<String> = projects
            .iter()
            .map(|(var, _)| {
                var.trim_end_matches("_SUPABASE_DB_URL")
                    .to_ascii_lowercase()
            })
            .collect();
        let mut vars = projects.clone();
        vars.push(("RUST_LOG".into(), "trace".into()));

        let (code, out) = run(&["check"], &vars);
        assert_eq!(code, 0, "{form}: check:\n{out}");
        for name in &names {
            assert!(
                out.contains(&format!("{name}: ok (postgres://")),
                "{form}: {name}:\n{out}"
            );
        }
        assert_hidden(&format!("{form}: check"), &out);

        for args in [
            &["diagnose"][..],
            &["diagnose", "--json"],
            &["reset-stuck-jobs", "--dry-run", "--older-than", "5m"],
        ] {
            let (code, out) = run(args, &vars);
            assert_eq!(code, 0, "{form}: {args:?}:\n{out}");
            assert_hidden(&format!("{form}: {args:?}"), &out);
        }

        let mut monitor_vars = fast(&[("RUST_LOG", "trace")]);
        monitor_vars.extend(projects);
        let mut monitor = Monitor::start(&monitor_vars);
        let addr = addr(&monitor);
        common::eventually(&format!("{form}: every project ready"), WAIT, || {
            get(addr, "/readyz").0 == 200
        });
        let (_, status) = get(addr, "/status");
        for name in &names {
            assert!(status.contains(&format!("\"{name}\"")), "{form}: {status}");
        }
        for path in ["/status", "/metrics", "/readyz", "/healthz"] {
            let (_, body) = get(addr, path);
            assert_hidden(&format!("{form}: {path}"), &body);
        }
        monitor.signal("TERM");
        assert!(monitor.wait_exit(WAIT).is_some(), "{form}: still running");
        monitor.wait_for(1, "🛑 Shutting down", None, WAIT);
        let logs = monitor.logs();
        assert!(
            logs.iter().any(|l| l["level"] == "TRACE"
                && l["target"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("tokio_postgres"))),
            "{form}: the driver's trace lines were not logged"
        );
        assert_hidden(
            &format!("{form}: the logs"),
            &monitor.raw_lines().join("\n"),
        );
    }
}

/// A connection string wrong in any other way stops start-up (exit 2) with
/// one line naming the variable, and no piece of the password in it.
#[test]
fn configuration_errors_never_show_the_password() {
    let s = server();
    let addr = s.addr();
    for password in PASSWORDS {
        let encoded = percent_encode(password);
        let url = format!("postgres://app:{encoded}@{addr}/db");
        let mut cases = vec![
            format!("{url}?sslmode=sometimes"),
            format!("postgres://app:{encoded}@{}:notaport/db", s.host),
            format!("{url}?colour=blue"),
            format!("{url}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"),
            format!("{url}?password"),
            format!(
                "host={} user=app password={}",
                s.host,
                quoted(password).trim_end_matches('\'')
            ),
            format!("user=app password={}", quoted(password)),
            format!("https://app:{password}@abc.supabase.co"),
            format!("https://app:{encoded}@abc.supabase.co"),
            format!("host={} user=app pasword={}", s.host, quoted(password)),
        ];
        if password.contains('@') {
            cases.push(format!("postgres://app:{password}@{addr}/db"));
        }
        for (i, text) in cases.iter().enumerate() {
            let vars = [("DEV_SUPABASE_DB_URL".to_string(), text.clone())];
            let (code, out) = run(&["run"], &vars);
            let what = format!("case {i} of {password:?}");
            assert_eq!(code, 2, "{what}: {out}");
            assert_eq!(out.trim_end().lines().count(), 1, "{what}: {out}");
            assert!(out.contains("DEV_SUPABASE_DB_URL"), "{what}: {out}");
            assert!(out.contains("expected"), "{what}: {out}");
            assert_hidden(&what, &out);
        }
    }
}

/// An `@` left unencoded in the password is a configuration error at
/// start-up, naming the variable, saying the password must be
/// percent-encoded and how; an `https://` API URL in a `_DB_URL` variable
/// gets the same message as in a `_SUPABASE_URL` one.
#[test]
fn an_unencoded_at_and_an_api_url_are_explained_at_start_up() {
    let vars = [(
        "DEV_SUPABASE_DB_URL".to_string(),
        "postgres://u:p@ss@host/db".to_string(),
    )];
    for args in [&["run"][..], &["check"], &["diagnose"]] {
        let (code, out) = run(args, &vars);
        assert_eq!(code, 2, "{args:?}: {out}");
        assert!(
            out.starts_with(
                "registre-monitor: configuration error: DEV_SUPABASE_DB_URL holds an `@`"
            ),
            "{out}"
        );
        assert!(
            out.contains("percent-encoded") && out.contains("`@` as %40"),
            "{out}"
        );
        assert!(!out.contains("p@ss") && !out.contains("ss@host"), "{out}");
    }

    // Both name the variable set, and ask for DEV_SUPABASE_DB_URL to hold
    // the Postgres connection string.
    let api = |var: &str| {
        let (code, out) = run(
            &["run"],
            &[(var.to_string(), "https://abc.supabase.co".to_string())],
        );
        assert_eq!(code, 2, "{out}");
        out.replacen(var, "VAR", 1)
    };
    let from_db_url = api("DEV_SUPABASE_DB_URL");
    assert!(
        from_db_url.contains("VAR is an HTTPS API URL"),
        "{from_db_url}"
    );
    assert!(
        from_db_url.contains("expected DEV_SUPABASE_DB_URL set to"),
        "{from_db_url}"
    );
    assert_eq!(from_db_url, api("DEV_SUPABASE_URL"));
}

/// A `*_SUPABASE_*` variable whose value is not valid UTF-8 is a
/// configuration error naming it, not a project silently dropped.
#[test]
fn a_variable_that_is_not_utf8_is_named() {
    use std::os::unix::ffi::OsStrExt;
    let dir = TempDir::new();
    let mut cmd = command(&["check"], &[], &dir);
    cmd.env(
        "DEV_SUPABASE_DB_URL",
        std::ffi::OsStr::from_bytes(b"postgres://u:Qzv\xffWord@h/db"),
    );
    let out = output_within(cmd, WAIT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with(
            "registre-monitor: configuration error: DEV_SUPABASE_DB_URL is not valid UTF-8"
        ),
        "{stderr}"
    );
    assert!(
        !stderr.contains("Qzv") && !stderr.contains("Word"),
        "{stderr}"
    );
}
