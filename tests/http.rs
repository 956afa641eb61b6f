//! The HTTP endpoints and the `healthcheck` subcommand: the real binary,
//! on a free port it reports in its log, against fresh databases.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use common::http::{addr, get, get_json, metrics, post};
use common::{Monitor, TempDir, TestDb, command, eventually, output_within, watching};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

/// Settings under which a hung child is noticed within seconds: the
/// liveness limit is 3 intervals + 2 × (connect + statement timeouts).
fn quick(db: &TestDb, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut vars = watching(&[("dev", &db.url)], &[("MONITOR_STATEMENT_TIMEOUT", "1s")]);
    for (k, v) in extra {
        vars.push((k.to_string(), v.to_string()));
    }
    vars
}

fn runs(status: &serde_json::Value, project: &str, check: &str) -> u64 {
    status["projects"][project]["checks"][check]["runs"]
        .as_u64()
        .unwrap_or(0)
}

/// `/healthz` answers 200 while every check ticks, and 503 naming the
/// check once one is made to hang through the drill hook; the hook itself
/// answers 202, and 400 or 404 to what it cannot do.
#[test]
fn healthz_turns_503_when_a_child_hangs() {
    let db = TestDb::new("healthz");
    let monitor = Monitor::start(&quick(&db, &[("MONITOR_ENABLE_FAULT_INJECTION", "true")]));
    let addr = addr(&monitor);
    eventually("every check ran", WAIT, || {
        let (_, s) = get_json(addr, "/status");
        ["StuckJobResetter", "WorkerReaper", "HealthReporter"]
            .iter()
            .all(|c| runs(&s, "dev", c) >= 2)
    });
    let (code, body) = get_json(addr, "/healthz");
    assert_eq!((code, body), (200, json!({"status": "ok"})));

    let (code, _) = post(
        addr,
        "/debug/fault?environment=dev&actor=HealthReporter&fault=sleep",
    );
    assert_eq!(code, 400);
    let (code, _) = post(
        addr,
        "/debug/fault?environment=nope&actor=HealthReporter&fault=hang",
    );
    assert_eq!(code, 404);
    let (code, body) = post(
        addr,
        "/debug/fault?environment=dev&actor=HealthReporter&fault=hang",
    );
    assert_eq!(code, 202, "{body}");

    eventually("/healthz turns 503", WAIT, || {
        get(addr, "/healthz").0 == 503
    });
    let (_, body) = get_json(addr, "/healthz");
    assert_eq!(body["status"], "unhealthy");
    let problems = body["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{body}");
    assert!(
        problems[0]
            .as_str()
            .unwrap()
            .starts_with("dev/HealthReporter: no run finished"),
        "{body}"
    );
    let (_, status) = get_json(addr, "/status");
    assert_eq!(status["healthy"], false);
}

/// A panic injected through the drill hook restarts that check alone: the
/// restart shows in `/metrics` and `/status`, the check ticks again, and
/// `/healthz` stays 200 through it (a restarting child is being healed).
#[test]
fn an_injected_panic_is_restarted_and_counted() {
    let db = TestDb::new("panichook");
    let monitor = Monitor::start(&quick(&db, &[("MONITOR_ENABLE_FAULT_INJECTION", "true")]));
    let addr = addr(&monitor);
    let restarts =
        "registre_monitor_actor_restarts_total{environment=\"dev\",actor=\"StuckJobResetter\"}";
    eventually("a first run", WAIT, || {
        runs(&get_json(addr, "/status").1, "dev", "StuckJobResetter") >= 1
    });
    assert_eq!(metrics(addr)[restarts], 0.0);
    let (code, body) = post(
        addr,
        "/debug/fault?environment=dev&actor=StuckJobResetter&fault=panic",
    );
    assert_eq!(code, 202, "{body}");
    monitor.wait_for(1, "💥 Panic: injected panic", None, WAIT);
    eventually("the restart is counted", WAIT, || {
        metrics(addr)[restarts] == 1.0
    });
    let (_, status) = get_json(addr, "/status");
    let before = runs(&status, "dev", "StuckJobResetter");
    assert_eq!(
        status["projects"]["dev"]["checks"]["StuckJobResetter"]["restarts"],
        1
    );
    eventually("the check ticks again", WAIT, || {
        runs(&get_json(addr, "/status").1, "dev", "StuckJobResetter") > before
    });
    assert_eq!(get(addr, "/healthz").0, 200);
}

/// Without `MONITOR_ENABLE_FAULT_INJECTION=true` the drill hook does not
/// exist: 404, and nothing is injected.
#[test]
fn the_fault_hook_is_off_by_default() {
    let db = TestDb::new("nohook");
    let monitor = Monitor::start(&quick(&db, &[]));
    let addr = addr(&monitor);
    let (code, body) = post(
        addr,
        "/debug/fault?environment=dev&actor=StuckJobResetter&fault=panic",
    );
    assert_eq!(code, 404, "{body}");
    assert!(monitor.find("🧪", None).is_empty());
    assert!(monitor.find("Injecting fault", None).is_empty());
}

/// `/readyz` is 503 listing the project never reached (a server that is not
/// there) while `/healthz` stays 200: a check failing against a down
/// database still ticks. With only reachable projects `/readyz` turns 200.
#[test]
fn readyz_lists_projects_never_reached() {
    let db = TestDb::new("readyz");
    let monitor = Monitor::start(&quick(
        &db,
        &[("DOWN_SUPABASE_DB_URL", "postgres://postgres@127.0.0.1:1/x")],
    ));
    let addr = addr(&monitor);
    eventually("dev reached and down failed thrice", WAIT, || {
        let (_, s) = get_json(addr, "/status");
        s["projects"]["dev"]["everReached"] == true
            && s["projects"]["down"]["checks"]["StuckJobResetter"]["errors"]
                .as_u64()
                .unwrap_or(0)
                >= 3
    });
    let (code, body) = get_json(addr, "/readyz");
    assert_eq!(code, 503);
    assert_eq!(body["notReached"], json!(["down"]));
    let why = body["notReady"]["down"].as_str().unwrap();
    assert!(
        why.starts_with("not reached yet: database unreachable"),
        "{body}"
    );
    assert_eq!(body["notReady"].as_object().unwrap().len(), 1, "{body}");
    let (code, body) = get_json(addr, "/healthz");
    assert_eq!(code, 200, "{body}");
    let m = metrics(addr);
    assert_eq!(
        m["registre_monitor_project_reachable{environment=\"down\"}"],
        0.0
    );
    assert_eq!(
        m["registre_monitor_project_reachable{environment=\"dev\"}"],
        1.0
    );
    let (_, s) = get_json(addr, "/status");
    assert_eq!(s["projects"]["down"]["lastError"]["kind"], "unreachable");

    let alone = Monitor::start(&quick(&db, &[]));
    let alone_addr = common::http::addr(&alone);
    eventually("/readyz turns 200", WAIT, || {
        get(alone_addr, "/readyz").0 == 200
    });
}

/// `/metrics` is Prometheus text whose every line parses, with the
/// families named `registre_monitor_...`; after a stale job is reset the
/// reset counter, the run counters and the pending gauge move.
#[test]
fn metrics_move_after_a_reset() {
    let mut db = TestDb::new("metrics");
    let monitor = Monitor::start(&quick(&db, &[]));
    let addr = addr(&monitor);
    let reset = "registre_monitor_stuck_jobs_reset_total{environment=\"dev\"}";
    let runs = "registre_monitor_check_runs_total{environment=\"dev\",check=\"StuckJobResetter\"}";
    let pending = "registre_monitor_jobs{environment=\"dev\",status=\"pending\"}";
    eventually("a health count", WAIT, || {
        metrics(addr).contains_key(pending)
    });
    let before = metrics(addr);
    assert_eq!(before[reset], 0.0);
    assert_eq!(before[pending], 0.0);
    for family in [
        "registre_monitor_active_workers{environment=\"dev\"}",
        "registre_monitor_workers_reaped_total{environment=\"dev\"}",
        "registre_monitor_jobs_released_total{environment=\"dev\"}",
        "registre_monitor_check_errors_total{environment=\"dev\",check=\"WorkerReaper\"}",
        "registre_monitor_check_duration_seconds_count{environment=\"dev\",check=\"HealthReporter\"}",
        "registre_monitor_check_duration_seconds_bucket{environment=\"dev\",check=\"HealthReporter\",le=\"+Inf\"}",
        "registre_monitor_last_success_timestamp_seconds{environment=\"dev\",check=\"HealthReporter\"}",
        "registre_monitor_project_reachable{environment=\"dev\"}",
        "registre_monitor_actor_restarts_total{environment=\"dev\",actor=\"StuckJobResetter\"}",
    ] {
        assert!(before.contains_key(family), "{family} missing: {before:#?}");
    }

    db.job(2, Some("worker-gone"), Some("10 minutes"), "acte:42");
    eventually("the reset is counted", WAIT, || metrics(addr)[reset] == 1.0);
    eventually("the job is counted pending", WAIT, || {
        metrics(addr)[pending] == 1.0
    });
    let after = metrics(addr);
    assert!(after[runs] > before[runs]);
    let (_, body) = get(addr, "/metrics");
    assert!(body.contains("# TYPE registre_monitor_stuck_jobs_reset_total counter"));
    assert!(body.contains("# TYPE registre_monitor_check_duration_seconds histogram"));
}

/// `/status` (and every other endpoint and log line) never shows the
/// password of a project that cannot be reached (the whole table of
/// passwords, reachable, is in `tests/secrets.rs`); the connection is shown
/// from its parsed settings.
#[test]
fn status_never_shows_a_password() {
    let db = TestDb::new("secret");
    let vars = watching(
        &[
            ("dev", &db.url),
            (
                "down",
                "postgres://postgres:hunter2secret@127.0.0.1:1/x?password=hunter2secret",
            ),
        ],
        &[("MONITOR_STATEMENT_TIMEOUT", "1s")],
    );
    let monitor = Monitor::start(&vars);
    let addr = addr(&monitor);
    eventually("both projects ran", WAIT, || {
        let (_, s) = get_json(addr, "/status");
        runs(&s, "dev", "HealthReporter") >= 1 && runs(&s, "down", "HealthReporter") >= 1
    });
    let (code, status) = get_json(addr, "/status");
    assert_eq!(code, 200);
    assert_eq!(status["projects"]["dev"]["reachable"], true, "{status}");
    assert_eq!(
        status["projects"]["down"]["url"], "postgres://postgres@127.0.0.1:1/x",
        "{status}"
    );
    // Figures people read are rounded: to 0.1 s, Unix time to the ms.
    let check = &status["projects"]["dev"]["checks"]["HealthReporter"];
    let decimals = |v: &serde_json::Value| {
        let text = v.to_string();
        text.split_once('.').map_or(0, |(_, d)| d.len())
    };
    assert!(decimals(&check["lastRunSecondsAgo"]) <= 1, "{check}");
    assert!(decimals(&check["lastSuccessUnix"]) <= 3, "{check}");
    for path in ["/status", "/metrics", "/readyz", "/healthz"] {
        let (_, body) = get(addr, path);
        assert!(!body.contains("hunter2"), "{path}: {body}");
    }
    assert!(!monitor.logged("hunter2"), "a log line shows the password");
}

/// `healthcheck` exits 0 against a running monitor (also when the address
/// is 0.0.0.0, as in the image: it asks loopback), and 1 when nothing
/// listens there.
#[test]
fn healthcheck_exit_codes() {
    let db = TestDb::new("healthcheck");
    let monitor = Monitor::start(&quick(&db, &[]));
    let addr = addr(&monitor);
    let dir = TempDir::new();
    let check = |http_addr: &str| {
        let out = output_within(
            command(&["healthcheck"], &[("MONITOR_HTTP_ADDR", http_addr)], &dir),
            Duration::from_secs(10),
        );
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, out) = check(&addr.to_string());
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = check(&format!("0.0.0.0:{}", addr.port()));
    assert_eq!(code, Some(0), "{out}");

    let free = TcpListener::bind("127.0.0.1:0").unwrap();
    let nobody = free.local_addr().unwrap();
    drop(free);
    let (code, out) = check(&nobody.to_string());
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("unhealthy"), "{out}");
    let (code, out) = check("not-an-address");
    assert_eq!(code, Some(1), "Docker reserves exit code 2: {out}");
}

/// A bad `MONITOR_HTTP_ADDR` stops start-up with one line naming it (exit
/// 2), so does a port already taken; `off` runs without endpoints.
#[test]
fn http_addr_is_checked_at_start_up() {
    let db = TestDb::new("httpaddr");
    let dir = TempDir::new();
    let run = |http_addr: &str| {
        output_within(
            command(
                &["run"],
                &[
                    ("DEV_SUPABASE_DB_URL", db.url.as_str()),
                    ("MONITOR_HTTP_ADDR", http_addr),
                ],
                &dir,
            ),
            Duration::from_secs(10),
        )
    };
    let out = run("localhost");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("MONITOR_HTTP_ADDR=\"localhost\""),
        "{stderr}"
    );
    assert!(stderr.contains("expected"), "{stderr}");

    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let out = run(&taken.local_addr().unwrap().to_string());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("MONITOR_HTTP_ADDR="), "{stderr}");
    assert!(stderr.contains("cannot be listened on"), "{stderr}");
    assert!(
        !stderr.contains("Health monitor started"),
        "no database is touched first: {stderr}"
    );

    let vars = watching(&[("dev", &db.url)], &[("MONITOR_HTTP_ADDR", "off")]);
    let mut monitor = Monitor::start(&vars);
    monitor.wait_for(1, "📊 System health status", Some("dev"), WAIT);
    assert!(monitor.find("🌐", None).is_empty());
    monitor.signal("TERM");
    assert_eq!(monitor.wait_exit(WAIT).and_then(|s| s.code()), Some(0));
}
