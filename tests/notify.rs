//! systemd's notify protocol, seen on a real unix datagram socket given to
//! the real binary as `NOTIFY_SOCKET`, as systemd would.

mod common;

use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::http::{addr, get, post};
use common::{Monitor, TempDir, TestDb, eventually, watching};

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
    watching(
        &[("dev", &db.url)],
        &[
            ("MONITOR_STATEMENT_TIMEOUT", "1s"),
            ("MONITOR_ENABLE_FAULT_INJECTION", "true"),
            ("NOTIFY_SOCKET", &systemd.path),
            // A ping every 200 ms.
            ("WATCHDOG_USEC", "400000"),
        ],
    )
}

/// A monitor on a fresh database (named after `tag`), telling `systemd`,
/// once it has said READY=1.
fn ready(tag: &str) -> (TestDb, FakeSystemd, Monitor) {
    let db = TestDb::new(tag);
    let systemd = FakeSystemd::new();
    let monitor = Monitor::start(&vars(&db, &systemd));
    eventually("READY=1", WAIT, || systemd.count("READY=1") == 1);
    (db, systemd, monitor)
}

/// READY=1 comes first (with a STATUS line), then WATCHDOG=1 again and
/// again while the checks tick, and STOPPING=1 after SIGTERM; the process
/// then exits 0.
#[test]
fn ready_watchdog_and_stopping() {
    let (_db, systemd, mut monitor) = ready("notify");
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

/// SIGHUP, SIGUSR1 and SIGUSR2 are logged and ignored: the monitor keeps
/// running (and pinging); SIGTERM still stops it with `🛑 Shutting down`,
/// STOPPING=1 and exit 0.
#[test]
fn hangup_and_user_signals_are_logged_and_ignored() {
    let (_db, systemd, mut monitor) = ready("signals");
    for signal in ["HUP", "USR1", "USR2"] {
        monitor.signal(signal);
        let name = format!("SIG{signal}");
        let lines = monitor.wait_for(1, &format!("📨 {name} received and ignored"), None, WAIT);
        assert_eq!(lines[0]["level"], "WARN");
        assert_eq!(lines[0]["signal"], name.as_str());
        assert!(monitor.running(), "{name} stopped the monitor");
    }
    let pings = systemd.count("WATCHDOG=1");
    eventually("pings go on", WAIT, || {
        systemd.count("WATCHDOG=1") > pings + 2
    });
    assert!(monitor.find("🛑 Shutting down", None).is_empty());
    assert_eq!(systemd.count("STOPPING=1"), 0);

    monitor.signal("TERM");
    assert_eq!(monitor.wait_exit(WAIT).and_then(|s| s.code()), Some(0));
    monitor.wait_for(1, "🛑 Shutting down", None, WAIT);
    assert_eq!(systemd.count("STOPPING=1"), 1);
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

/// When stderr is the journal (`JOURNAL_STREAM` names the file it is), each
/// line starts with its syslog priority, for `journalctl -p`: `<4>` before
/// a warning, `<3>` before a configuration error; when `JOURNAL_STREAM`
/// names another file (stderr redirected elsewhere), no prefix.
#[test]
fn journal_lines_carry_their_syslog_priority() {
    use std::os::unix::fs::MetadataExt;
    let db = TestDb::new("journal");
    let dir = TempDir::new();
    let run = |vars: &[(&str, &str)], names_the_file: bool| -> String {
        let path = dir.0.join("stderr");
        let file = std::fs::File::create(&path).unwrap();
        let meta = file.metadata().unwrap();
        let stream = if names_the_file {
            format!("{}:{}", meta.dev(), meta.ino())
        } else {
            format!("{}:{}", meta.dev(), meta.ino() + 1)
        };
        let status = common::command(&["check"], vars, &dir)
            .env("JOURNAL_STREAM", stream)
            .stdout(std::process::Stdio::null())
            .stderr(file)
            .status()
            .unwrap();
        assert!(status.code().is_some());
        std::fs::read_to_string(&path).unwrap()
    };
    let url = db.url.clone();
    let warned = [
        ("DEV_SUPABASE_DB_URL", url.as_str()),
        ("MONITOR_CHECK_INTERVALL", "5s"),
    ];
    let text = run(&warned, true);
    assert!(text.starts_with("<4>"), "{text}");
    assert!(
        text.contains(" WARN  MONITOR_CHECK_INTERVALL is not a setting"),
        "{text}"
    );
    let json = run(&[warned[0], warned[1], ("LOG_FORMAT", "json")], true);
    assert!(json.starts_with("<4>{"), "{json}");
    let error = run(&[("MONITOR_CONNECT_TIMEOUT", "soon")], true);
    assert!(
        error.starts_with("<3>registre-monitor: configuration error: "),
        "{error}"
    );
    let elsewhere = run(&warned, false);
    assert!(
        elsewhere.starts_with("20"),
        "a timestamp first: {elsewhere}"
    );
}
