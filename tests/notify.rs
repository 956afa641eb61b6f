//! systemd's notify protocol, seen on a real unix datagram socket given to
//! the real binary as `NOTIFY_SOCKET`, as systemd would.

mod common;

use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::http::{addr, get, post};
use common::{Monitor, TempDir, TestDb, eventually, fast};

const WAIT: Duration = Duration::from_secs(30);

/// A socket standing in for systemd; collects every message it gets.
struct FakeSystemd {
    path: String,
    messages: Arc<Mutex<Vec<String>>>,
    _dir: TempDir,
}

impl FakeSystemd {
    fn new() -> FakeSystemd {
        let dir = TempDir::new();
        let path = dir.0.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = messages.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf) {
                sink.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).to_string());
            }
        });
        FakeSystemd {
            path: path.to_str().unwrap().to_string(),
            messages,
            _dir: dir,
        }
    }

    fn all(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }

    /// How many messages so far carry `state` (`WATCHDOG=1`, ...).
    fn count(&self, state: &str) -> usize {
        self.all()
            .iter()
            .filter(|m| m.lines().any(|l| l == state))
            .count()
    }
}

fn vars(db: &TestDb, systemd: &FakeSystemd) -> Vec<(String, String)> {
    let mut vars = fast(&[
        ("MONITOR_STATEMENT_TIMEOUT", "1s"),
        ("MONITOR_ENABLE_FAULT_INJECTION", "true"),
        ("NOTIFY_SOCKET", &systemd.path),
        // A ping every 200 ms.
        ("WATCHDOG_USEC", "400000"),
    ]);
    vars.push(("DEV_SUPABASE_DB_URL".into(), db.url.clone()));
    vars
}

/// READY=1 comes first (with a STATUS line), then WATCHDOG=1 again and
/// again while the checks tick, and STOPPING=1 after SIGTERM; the process
/// then exits 0.
#[test]
fn ready_watchdog_and_stopping() {
    let db = TestDb::new("notify");
    let systemd = FakeSystemd::new();
    let mut monitor = Monitor::start(&vars(&db, &systemd));
    eventually("READY=1", WAIT, || systemd.count("READY=1") == 1);
    let first = systemd.all()[0].clone();
    assert!(first.lines().any(|l| l == "READY=1"), "{first:?}");
    assert!(
        first
            .lines()
            .any(|l| l.starts_with("STATUS=watching 1 project")),
        "{first:?}"
    );
    eventually("several WATCHDOG=1", WAIT, || {
        systemd.count("WATCHDOG=1") >= 3
    });
    assert_eq!(systemd.count("STOPPING=1"), 0);

    monitor.signal("TERM");
    eventually("STOPPING=1", WAIT, || systemd.count("STOPPING=1") == 1);
    assert_eq!(monitor.wait_exit(WAIT).and_then(|s| s.code()), Some(0));
    let last = systemd.all().last().cloned().unwrap();
    assert!(last.lines().any(|l| l == "STOPPING=1"), "{last:?}");
}

/// When a check hangs, the pings stop (so systemd would restart the
/// service) and an ERROR line says why; the other checks keep running.
#[test]
fn watchdog_pings_stop_when_a_child_hangs() {
    let db = TestDb::new("watchdog");
    let systemd = FakeSystemd::new();
    let monitor = Monitor::start(&vars(&db, &systemd));
    let addr = addr(&monitor);
    eventually("pings flow", WAIT, || systemd.count("WATCHDOG=1") >= 2);

    let (code, body) = post(
        addr,
        "/debug/fault?environment=dev&actor=WorkerReaper&fault=hang",
    );
    assert_eq!(code, 202, "{body}");
    let lines = monitor.wait_for(1, "🐕 Withholding the systemd watchdog ping", None, WAIT);
    assert_eq!(lines[0]["level"], "ERROR");
    assert!(
        lines[0]["problems"][0]
            .as_str()
            .unwrap()
            .starts_with("dev/WorkerReaper")
    );
    assert_eq!(get(addr, "/healthz").0, 503);

    // Measure by the siblings' own runs (200 ms each, one ping period):
    // ten runs for in-flight pings to land, then ten more with none.
    common::http::wait_more(addr, "dev", "StuckJobResetter", "runs", 10);
    let pings = systemd.count("WATCHDOG=1");
    common::http::wait_more(addr, "dev", "StuckJobResetter", "runs", 10);
    assert_eq!(systemd.count("WATCHDOG=1"), pings, "a ping while hung");
}
