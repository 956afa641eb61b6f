//! Alerts that reach people: the real binary posting to a real HTTP
//! receiver in the test (std `TcpListener`), healthy, failing or hung.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::heartbeat::Heartbeat;
use common::proxy::Proxy;
use common::{Monitor, TestDb, eventually, watching};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);
/// The secret part of the webhook URL: must never reach a log line.
const TOKEN: &str = "T0K3N-s3cr3t";

#[derive(Clone, Copy, PartialEq)]
enum Answer {
    Ok,
    ServerError,
    /// Reads the request and never answers, holding the connection.
    Hang,
}

/// A webhook receiver: records each request's JSON body.
struct Receiver {
    port: u16,
    bodies: Arc<Mutex<Vec<Value>>>,
    /// Connections held open by `Hang`.
    _held: Arc<Mutex<Vec<TcpStream>>>,
}

impl Receiver {
    fn start(answer: Answer) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let held = Arc::new(Mutex::new(Vec::new()));
        let (b, h) = (bodies.clone(), held.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some(body) = read_request(&mut stream) else {
                    continue;
                };
                b.lock().unwrap().push(body);
                match answer {
                    Answer::Ok => {
                        let _ = stream.write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                        );
                    }
                    Answer::ServerError => {
                        let _ = stream.write_all(
                            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        );
                    }
                    Answer::Hang => h.lock().unwrap().push(stream),
                }
            }
        });
        Receiver {
            port,
            bodies,
            _held: held,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks/{TOKEN}", self.port)
    }

    fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }

    fn of_kind(&self, kind: &str) -> Vec<Value> {
        self.bodies()
            .into_iter()
            .filter(|b| b["kind"] == kind)
            .collect()
    }

    fn wait_kind(&self, kind: &str, n: usize) -> Vec<Value> {
        eventually(&format!("{n} {kind} alert(s)"), WAIT, || {
            self.of_kind(kind).len() >= n
        });
        self.of_kind(kind)
    }
}

/// Reads one HTTP request; returns its body as JSON.
fn read_request(stream: &mut TcpStream) -> Option<Value> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    assert!(line.starts_with("POST /hooks/"), "request line {line:?}");
    let mut length = 0;
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

fn no_secret(monitor: &Monitor) {
    assert!(!monitor.logged(TOKEN), "the webhook URL reached the logs");
}

/// Settings of a monitor on `db` alerting `receiver` (jobs stuck after 1 s,
/// a status line every 200 ms), then `extra`.
fn alerting(receiver: &Receiver, db: &TestDb, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut settings = vec![
        ("MONITOR_STUCK_JOB_AFTER", "1s"),
        ("MONITOR_HEALTH_LOG_EVERY", "200ms"),
    ];
    settings.extend_from_slice(extra);
    let webhook = receiver.url();
    settings.push(("MONITOR_ALERT_WEBHOOK_URL", &webhook));
    watching(&[("dev", &db.url)], &settings)
}

/// A monitor alerting a receiver that answers `answer`, on a database
/// (named after `tag`) holding a job stuck from the start.
fn with_a_stuck_job(answer: Answer, tag: &str) -> (Receiver, TestDb, Monitor) {
    let receiver = Receiver::start(answer);
    let mut db = TestDb::new(tag);
    db.job(2, Some("worker-hung"), Some("10 minutes"), "acte:1");
    let monitor = Monitor::start(&alerting(&receiver, &db, &[]));
    (receiver, db, monitor)
}

/// A job stuck now is reset at the next cycles all the same.
fn another_stuck_job_is_reset(db: &mut TestDb, monitor: &Monitor) {
    let later = db.job(2, Some("worker-hung"), Some("10 minutes"), "acte:2");
    monitor.wait_for(2, "🔄 Auto-reset stuck jobs", Some("dev"), WAIT);
    assert_eq!(db.job_status(&later), 1);
}

fn cycles(monitor: &Monitor, env: &str, n: usize) {
    let seen = monitor.find("📊 System health status", Some(env)).len();
    monitor.wait_for(seen + n, "📊 System health status", Some(env), WAIT);
}

/// The receiver gets, as Slack-style JSON (`text` plus fields): an
/// anomaly's start once (not its repeated warnings), a batch of resets
/// once within the repeat period however many batches follow, no alert for
/// a batch below `MONITOR_ALERT_MIN_RESETS`, and the anomaly's end. The URL
/// is never logged.
#[test]
fn alerts_reach_the_webhook_once_per_kind_and_clear() {
    let receiver = Receiver::start(Answer::Ok);
    let mut db = TestDb::new("alerts");
    db.job(1, None, None, "acte:1");
    db.job(2, Some("worker-hung"), Some("10 minutes"), "acte:2");
    db.job(2, Some("worker-hung"), Some("10 minutes"), "acte:3");
    db.worker("worker-dead", "busy", "10 minutes");
    let vars = alerting(
        &receiver,
        &db,
        &[
            ("MONITOR_ALERT_MIN_RESETS", "2"),
            ("MONITOR_DEAD_WORKER_AFTER", "3s"),
        ],
    );
    let monitor = Monitor::start(&vars);

    // Until the first reset, processing jobs with no worker may make a
    // second anomaly (too many processing): look at this one by name.
    let no_workers = |r: &Receiver, kind: &str| -> Vec<Value> {
        r.of_kind(kind)
            .into_iter()
            .filter(|b| b["anomaly"] == "no_active_workers")
            .collect()
    };
    eventually("the anomaly's alert", WAIT, || {
        !no_workers(&receiver, "anomaly").is_empty()
    });
    let anomaly = no_workers(&receiver, "anomaly");
    assert_eq!(anomaly[0]["environment"], "dev");
    assert!(
        anomaly[0]["text"]
            .as_str()
            .unwrap()
            .contains("No active workers but jobs are pending"),
        "{}",
        anomaly[0]
    );
    assert!(anomaly[0]["instance"].as_str().unwrap().contains(':'));
    let reset = receiver.wait_kind("jobs_reset", 1);
    assert_eq!(reset[0]["count"], 2);
    assert_eq!(reset[0]["jobs"].as_array().unwrap().len(), 2);

    // A second batch of resets, and many repeated anomaly warnings.
    db.job(2, Some("worker-hung"), Some("10 minutes"), "acte:4");
    db.job(2, Some("worker-hung"), Some("10 minutes"), "acte:5");
    monitor.wait_for(2, "🔄 Auto-reset stuck jobs", Some("dev"), WAIT);
    monitor.wait_for(5, "⚠️  No active workers", Some("dev"), WAIT);

    // A live worker: the anomaly ends.
    db.worker("worker-live", "idle", "0 seconds");
    let _live = Heartbeat::start(&db.url, "worker-live", "0 seconds");
    eventually("the anomaly's end alerted", WAIT, || {
        !no_workers(&receiver, "anomaly_cleared").is_empty()
    });
    cycles(&monitor, "dev", 5);

    assert_eq!(
        no_workers(&receiver, "anomaly").len(),
        1,
        "{:?}",
        receiver.bodies()
    );
    assert_eq!(receiver.of_kind("jobs_reset").len(), 1, "repeat limit");
    // One dead worker, below the minimum of 2: logged, not alerted.
    monitor.wait_for(1, "💀 Cleaned up dead workers", None, WAIT);
    cycles(&monitor, "dev", 3);
    assert_eq!(monitor.find("💀 Cleaned up dead workers", None).len(), 1);
    assert!(receiver.of_kind("workers_reaped").is_empty());
    no_secret(&monitor);
}

/// A project that becomes unreachable is alerted once, and again when it
/// is reachable again.
#[test]
fn unreachable_and_back_are_alerted() {
    let receiver = Receiver::start(Answer::Ok);
    let db = TestDb::new("alertdown");
    let proxy = Proxy::start();
    let vars = watching(
        &[("dev", &proxy.url(&db.name))],
        &[
            ("MONITOR_HEALTH_LOG_EVERY", "200ms"),
            ("MONITOR_ALERT_WEBHOOK_URL", &receiver.url()),
        ],
    );
    let monitor = Monitor::start(&vars);
    monitor.wait_for(2, "📊 System health status", Some("dev"), WAIT);

    proxy.refuse();
    let down = receiver.wait_kind("unreachable", 1);
    assert!(down[0]["text"].as_str().unwrap().contains("unreachable"));
    proxy.restore();
    receiver.wait_kind("recovered", 1);
    cycles(&monitor, "dev", 3);
    assert_eq!(receiver.of_kind("unreachable").len(), 1);
    no_secret(&monitor);
}

/// A receiver that holds the connection without answering does not slow
/// the checks: while the first alert's request is still unanswered, the
/// monitor goes on cycling and resets a job that got stuck meanwhile.
#[test]
fn a_hung_webhook_does_not_delay_the_checks() {
    let (receiver, mut db, monitor) = with_a_stuck_job(Answer::Hang, "alerthang");
    // The first alert (the reset, or the anomaly it makes) is left hanging.
    eventually("a first alert", WAIT, || !receiver.bodies().is_empty());
    monitor.wait_for(1, "🔄 Auto-reset stuck jobs", Some("dev"), WAIT);

    another_stuck_job_is_reset(&mut db, &monitor);
    cycles(&monitor, "dev", 10);
    assert_eq!(
        receiver.bodies().len(),
        1,
        "the first request is still unanswered, yet the checks went on"
    );
    no_secret(&monitor);
}

/// A receiver that answers 500 gets the alert again (retries with
/// backoff), then the monitor gives up with one WARN line that does not
/// show the URL; the checks go on meanwhile.
#[test]
fn a_failing_webhook_is_retried_then_given_up_without_delaying_checks() {
    let (receiver, mut db, monitor) = with_a_stuck_job(Answer::ServerError, "alert500");
    receiver.wait_kind("jobs_reset", 1);
    another_stuck_job_is_reset(&mut db, &monitor);

    receiver.wait_kind("jobs_reset", 3);
    let gave_up = monitor.wait_for(1, "📮 Alert not delivered", Some("dev"), WAIT);
    assert_eq!(gave_up[0]["level"], "WARN");
    assert!(
        gave_up[0]["message"].as_str().unwrap().contains("HTTP 500"),
        "{}",
        gave_up[0]
    );
    let tries = receiver.of_kind("jobs_reset");
    assert_eq!(tries.len(), 3, "three tries of the same alert");
    assert!(tries.iter().all(|t| t == &tries[0]));
    no_secret(&monitor);
}

/// Two monitors on the same project and webhook: the anomaly is alerted
/// once, and every reset job appears in exactly one alert.
#[test]
fn two_monitors_alert_once() {
    let receiver = Receiver::start(Answer::Ok);
    let mut db = TestDb::new("alerttwo");
    for n in 0..4 {
        db.job(
            2,
            Some("worker-hung"),
            Some("10 minutes"),
            &format!("acte:{n}"),
        );
    }
    let vars = alerting(&receiver, &db, &[]);
    let first = Monitor::start(&vars);
    let second = Monitor::start(&vars);
    receiver.wait_kind("jobs_reset", 1);
    eventually("the no-active-workers alert", WAIT, || {
        receiver
            .of_kind("anomaly")
            .iter()
            .any(|b| b["anomaly"] == "no_active_workers")
    });
    for m in [&first, &second] {
        cycles(m, "dev", 5);
    }
    let anomalies: Vec<Value> = receiver
        .of_kind("anomaly")
        .into_iter()
        .filter(|b| b["anomaly"] == "no_active_workers")
        .collect();
    assert_eq!(anomalies.len(), 1, "{anomalies:?}");
    let mut ids: Vec<String> = receiver
        .of_kind("jobs_reset")
        .iter()
        .flat_map(|b| b["jobs"].as_array().unwrap().clone())
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    let before = ids.len();
    ids.dedup();
    assert_eq!((before, ids.len()), (4, 4), "each reset job alerted once");
    no_secret(&first);
    no_secret(&second);
}
