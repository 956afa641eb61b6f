//! Helpers for the integration tests: a fresh database per test, and the
//! real `registre-monitor` binary run against it with its JSON logs read
//! back as they come.

#![allow(dead_code)] // each test binary uses its own subset

pub mod http;
pub mod pgbouncer;
pub mod proxy;
pub mod web;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};
use serde_json::Value;

/// The server the tests use; `TEST_DATABASE_URL` points elsewhere.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `admin_url` with another database name.
pub fn url_for(database: &str) -> String {
    let base = admin_url();
    let cut = base
        .rfind('/')
        .expect("TEST_DATABASE_URL has a database part");
    format!("{}/{database}", &base[..cut])
}

pub const SCHEMA: &str = include_str!("../../sql/schema.sql");

/// A database of the test's own, with the watched schema; dropped at the end.
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub client: Client,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl TestDb {
    pub fn new(tag: &str) -> TestDb {
        Self::with_schema(tag, SCHEMA)
    }

    /// A fresh database with `schema` applied instead of the real one.
    pub fn with_schema(tag: &str, schema: &str) -> TestDb {
        let name = format!(
            "rmtest_{tag}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let mut admin = Client::connect(&admin_url(), NoTls).expect("connect to the test Postgres");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create test database");
        let url = url_for(&name);
        let mut client = Client::connect(&url, NoTls).expect("connect to the test database");
        client.batch_execute(schema).expect("apply schema");
        TestDb { name, url, client }
    }

    pub fn exec(&mut self, sql: &str) {
        self.client
            .batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// A single `bigint`/`int` value.
    pub fn count(&mut self, sql: &str) -> i64 {
        self.client
            .query_one(sql, &[])
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    }

    /// A single text value (NULL as `None`).
    pub fn text(&mut self, sql: &str) -> Option<String> {
        self.client
            .query_one(sql, &[])
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    }

    /// Inserts a job and returns its id.
    pub fn job(
        &mut self,
        status: i32,
        worker: Option<&str>,
        started_ago: Option<&str>,
        doc: &str,
    ) -> String {
        let started = started_ago.map_or("NULL".to_string(), |ago| {
            format!("now() - interval '{ago}'")
        });
        let worker = worker.map_or("NULL".to_string(), |w| format!("'{w}'"));
        let (source, number) = doc.split_once(':').unwrap();
        self.text(&format!(
            "INSERT INTO extraction_queue (status_id, worker_id, processing_started_at, document_source, document_number)
             VALUES ({status}, {worker}, {started}, '{source}', '{number}') RETURNING id::text"
        ))
        .unwrap()
    }

    /// Inserts a worker whose last heartbeat was `ago` ago.
    pub fn worker(&mut self, id: &str, status: &str, ago: &str) {
        self.exec(&format!(
            "INSERT INTO worker_status (worker_id, status, last_heartbeat) VALUES ('{id}', '{status}', now() - interval '{ago}')"
        ));
    }

    pub fn job_status(&mut self, id: &str) -> i64 {
        self.count(&format!(
            "SELECT status_id::bigint FROM extraction_queue WHERE id = '{id}'"
        ))
    }

    /// Terminates every other session on this database.
    pub fn kill_backends(&mut self) -> i64 {
        self.count(&format!(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = '{}' AND pid <> pg_backend_pid()) t",
            self.name
        ))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = Client::connect(&admin_url(), NoTls) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// Waits for `cond`, polling; panics with `what` after `timeout`.
pub fn eventually(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The real binary, running, its log lines collected.
pub struct Monitor {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    _dir: TempDir,
}

/// An empty working directory (no stray `.env`), removed at the end.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "registre-monitor-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary with a clean environment: only PATH and `vars`.
pub fn command(args: &[&str], vars: &[(&str, &str)], dir: &TempDir) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_registre-monitor"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().copied())
        .current_dir(&dir.0)
        .stdin(Stdio::null());
    cmd
}

/// Runs `cmd` to the end and collects its output; kills it and panics if
/// it is still running after `timeout`.
pub fn output_within(mut cmd: Command, timeout: Duration) -> std::process::Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start registre-monitor");
    let deadline = Instant::now() + timeout;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {timeout:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Fast settings for tests; `vars` come after and win.
pub fn fast(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = [
        ("LOG_FORMAT", "json"),
        ("LOG_LEVEL", "debug"),
        ("MONITOR_CHECK_INTERVAL", "200ms"),
        ("MONITOR_STUCK_JOB_AFTER", "1m"),
        ("MONITOR_DEAD_WORKER_AFTER", "1m"),
        ("MONITOR_HEALTH_LOG_EVERY", "1m"),
        ("MONITOR_CONNECT_TIMEOUT", "2s"),
        // A free port each: tests run in parallel.
        ("MONITOR_HTTP_ADDR", "127.0.0.1:0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in vars {
        all.retain(|(key, _)| key != k);
        all.push((k.to_string(), v.to_string()));
    }
    all
}

impl Monitor {
    /// Starts `registre-monitor run` with `vars` (see [`fast`]).
    pub fn start(vars: &[(String, String)]) -> Monitor {
        Self::start_in(vars, TempDir::new())
    }

    /// Starts it in a directory holding `dotenv` as its `.env`.
    pub fn start_with_dotenv(vars: &[(String, String)], dotenv: &str) -> Monitor {
        let dir = TempDir::new();
        std::fs::write(dir.0.join(".env"), dotenv).unwrap();
        Self::start_in(vars, dir)
    }

    fn start_in(vars: &[(String, String)], dir: TempDir) -> Monitor {
        let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut child = command(&["run"], &refs, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start registre-monitor");
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stdout.take().unwrap()),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if std::env::var_os("SHOW_MONITOR_LOGS").is_some() {
                        eprintln!("monitor| {line}");
                    }
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Monitor {
            child,
            lines,
            _dir: dir,
        }
    }

    /// Every log line so far, raw.
    pub fn raw_lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Every JSON log line so far.
    pub fn logs(&self) -> Vec<Value> {
        self.raw_lines()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Log lines whose message starts with `prefix`, for `environment` if given.
    pub fn find(&self, prefix: &str, environment: Option<&str>) -> Vec<Value> {
        self.logs()
            .into_iter()
            .filter(|l| l["message"].as_str().is_some_and(|m| m.starts_with(prefix)))
            .filter(|l| environment.is_none_or(|e| l["environment"] == e))
            .collect()
    }

    /// Waits until at least `n` lines match; returns them.
    pub fn wait_for(
        &self,
        n: usize,
        prefix: &str,
        environment: Option<&str>,
        timeout: Duration,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self.find(prefix, environment);
            if found.len() >= n {
                return found;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {n} line(s) {prefix:?} ({environment:?}); log:\n{}",
                    self.raw_lines().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal with `kill`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits for the process to end, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
