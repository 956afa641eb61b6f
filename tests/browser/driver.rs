//! A real headless Chromium, driven over WebDriver (chromedriver) with
//! fantoccini: what the browser tests see is what a person's browser does
//! with the page, its script, its event stream and its security headers.
//!
//! Chromium is looked for at `CHROMIUM` (default `/usr/bin/chromium`) and
//! its driver at `CHROMEDRIVER` (default `/usr/bin/chromedriver`), Debian's
//! `chromium` and `chromium-driver` packages (`.ci/run` installs them).
//! Missing, a test fails when `CI=true` and is skipped loudly otherwise.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

use crate::common::TempDir;

/// The browser and its driver, or why there is none.
pub fn find() -> Option<(PathBuf, PathBuf)> {
    let path = |var: &str, default: &str| {
        PathBuf::from(std::env::var(var).unwrap_or_else(|_| default.to_string()))
    };
    let chromium = path("CHROMIUM", "/usr/bin/chromium");
    let driver = path("CHROMEDRIVER", "/usr/bin/chromedriver");
    let missing: Vec<String> = [&chromium, &driver]
        .iter()
        .filter(|p| !p.is_file())
        .map(|p| p.display().to_string())
        .collect();
    if missing.is_empty() {
        return Some((chromium, driver));
    }
    crate::common::missing_tool(
        &format!("chromium or chromedriver ({})", missing.join(", ")),
        "apt-get install chromium chromium-driver, or set CHROMIUM and CHROMEDRIVER",
    );
    None
}

/// A runtime for the WebDriver client.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// chromedriver with one headless Chromium session.
pub struct Browser {
    pub client: Client,
    _processes: Processes,
}

/// chromedriver and the profile of its Chromium: stopped and removed when
/// dropped, a failed test included.
struct Processes {
    driver: Child,
    profile: TempDir,
}

impl Drop for Processes {
    fn drop(&mut self) {
        stop(&mut self.driver, &self.profile);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    /// Starts chromedriver, then Chromium with the flags this machine needs
    /// (no sandbox as root, no network of its own) and a fresh profile.
    pub async fn launch(chromium: &PathBuf, driver: &PathBuf) -> Browser {
        let port = free_port();
        let driver_process = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = TempDir::new();
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--hide-scrollbars",
                    "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.0.display()),
                ],
            },
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://{addr}"))
            .await
            .expect("a Chromium session through chromedriver");
        Browser {
            client,
            _processes: Processes {
                driver: driver_process,
                profile,
            },
        }
    }

    /// Runs `script` in the page (a promise is awaited); its value.
    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    /// The text of the first element `css` matches (empty if none).
    pub async fn text(&self, css: &str) -> String {
        let script = format!(
            "const e = document.querySelector({}); return e ? e.textContent : '';",
            json!(css)
        );
        self.js(&script)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits until `script` returns true; panics with `what` after `timeout`.
    pub async fn until(&self, what: &str, timeout: Duration, script: &str) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.js(script).await == Value::Bool(true) {
                return;
            }
            if Instant::now() > deadline {
                let body = self.text("body").await;
                panic!("timed out after {timeout:?} waiting for {what}; the page says:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Clicks the first element `css` matches, in one step inside the
    /// page: the event stream may swap a section between a find and a
    /// click made apart.
    pub async fn click(&self, css: &str) {
        let script = format!(
            "const e = document.querySelector({}); if (!e) return false; e.click(); return true;",
            json!(css)
        );
        assert!(
            self.js(&script).await == Value::Bool(true),
            "nothing to click at {css}"
        );
    }

    /// A screenshot of the whole page at `width`, written to `path`.
    pub async fn screenshot(&self, width: u32, max_height: u32, path: &std::path::Path) {
        self.client.set_window_size(width, 900).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let height = self
            .js("return document.documentElement.scrollHeight;")
            .await
            .as_u64()
            .unwrap_or(900) as u32;
        self.client
            .set_window_size(width, height.min(max_height))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let png = self.client.screenshot().await.unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
    }

    /// Ends the session, then the driver.
    pub async fn close(self) {
        let Browser { client, _processes } = self;
        let _ = client.close().await;
        drop(_processes);
    }
}

/// Stops chromedriver and any Chromium still on this profile (by their
/// process ids: those this test started).
fn stop(driver: &mut Child, profile: &TempDir) {
    let _ = driver.kill();
    let _ = driver.wait();
    let marker = profile.0.display().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&marker) {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
}

/// Where a test's screenshots go: `target/browser/`.
pub fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("browser")
}
