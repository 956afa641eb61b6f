//! Helpers for the integration tests: a fresh database per test (the
//! actors' tests' [`TestDb`], shared), and the real `registre-monitor`
//! binary run against it with its JSON logs read back as they come.

#![allow(dead_code)] // each test binary uses its own subset

pub mod fleet;
pub mod heartbeat;
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

use serde_json::Value;

#[path = "../../actors/tests/common/testdb.rs"]
mod testdb;

#[allow(unused_imports)] // each test binary uses its own subset
pub use testdb::{
    SCHEMA, Server, TestDb, admin_url, percent_encode, schema_without_attempts, schema_without_ocr,
    server,
};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Whether the tests run under CI: `CI=true` (or `1`), as `.ci/run`,
/// GitHub Actions and GitLab set it.
pub fn under_ci() -> bool {
    std::env::var("CI")
        .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1"))
}

/// A tool a test needs is not installed: under CI the test fails (a run
/// that skipped it must not pass for one that ran it); elsewhere it is
/// skipped, loudly. The caller returns when this returns.
pub fn missing_tool(tool: &str, install: &str) {
    assert!(
        !under_ci(),
        "{tool} is not installed, and under CI (CI=true) every test must run: {install}"
    );
    eprintln!("SKIPPED: {tool} is not installed ({install}); under CI=true this fails");
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

/// The variable that makes the monitor watch project `name` at `url`.
pub fn project(name: &str, url: &str) -> (String, String) {
    (
        format!("{}_SUPABASE_DB_URL", name.to_uppercase()),
        url.to_string(),
    )
}

/// [`fast`] settings with `settings` on top, watching each `(name, url)`.
pub fn watching(projects: &[(&str, &str)], settings: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut vars = fast(settings);
    vars.extend(projects.iter().map(|(name, url)| project(name, url)));
    vars
}

/// Runs the binary with `args` and `vars` in an empty directory, to its
/// end (killed after `timeout`); returns (exit code, stdout, stderr).
pub fn run_binary(
    args: &[&str],
    vars: &[(&str, &str)],
    timeout: Duration,
) -> (Option<i32>, String, String) {
    let dir = TempDir::new();
    let out = output_within(command(args, vars, &dir), timeout);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
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

    /// Whether any log line so far holds `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.raw_lines().iter().any(|l| l.contains(text))
    }

    /// Every JSON log line so far.
    pub fn logs(&self) -> Vec<Value> {
        self.raw_lines()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Every ERROR line so far.
    pub fn errors(&self) -> Vec<Value> {
        self.logs()
            .into_iter()
            .filter(|l| l["level"] == "ERROR")
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
