//! The monitor in a hostile world: poolers, TLS, passwords, silent servers,
//! locks, outages and broken schemas. The real binary, real faults.

mod common;

use std::time::{Duration, Instant};

use common::pgbouncer::PgBouncer;
use common::proxy::Proxy;
use common::{Monitor, TestDb, watching};

const WAIT: Duration = Duration::from_secs(30);

fn errors_for(monitor: &Monitor, env: &str) -> Vec<serde_json::Value> {
    monitor
        .logs()
        .into_iter()
        .filter(|l| l["level"] == "ERROR" && l["environment"] == env)
        .collect()
}

/// Through PgBouncer in transaction mode with one server connection shared
/// by every client (where named prepared statements fail), every check
/// works, cycle after cycle, without a single error.
#[test]
fn every_statement_works_through_pgbouncer_in_transaction_mode() {
    let Some(bouncer) = PgBouncer::start() else {
        return;
    };
    let mut db = TestDb::new("bouncer");
    db.worker("worker-dead", "busy", "10 minutes");
    let held = db.job(2, Some("worker-dead"), Some("1 second"), "acte:1");
    let stale = db.job(2, Some("worker-ac"), Some("10 minutes"), "acte:2");
    let vars = watching(
        &[("pooled", &bouncer.url(&db.name, PgBouncer::PASSWORD))],
        &[
            ("MONITOR_HEALTH_LOG_EVERY", "200ms"),
            ("MONITOR_STUCK_JOB_AFTER", "1s"),
            ("MONITOR_DEAD_WORKER_AFTER", "2s"),
        ],
    );
    let monitor = Monitor::start(&vars);

    monitor.wait_for(1, "🔄 Auto-reset stuck jobs", Some("pooled"), WAIT);
    monitor.wait_for(1, "💀 Cleaned up dead workers", Some("pooled"), WAIT);
    monitor.wait_for(20, "📊 System health status", Some("pooled"), WAIT);
    assert_eq!(db.job_status(&held), 1);
    assert_eq!(db.job_status(&stale), 1);
    assert_eq!(
        errors_for(&monitor, "pooled"),
        Vec::<serde_json::Value>::new()
    );
    assert!(!monitor.logged("prepared statement"));
}

/// Through PgBouncer in transaction mode with several server connections,
/// two instances' requests land on server connections that lack their
/// prepared statements, or have them already: each is prepared where it is
/// missing, and no request fails; stuck jobs still come back.
#[test]
fn prepared_statements_hold_when_a_pooler_moves_requests_between_servers() {
    let Some(bouncer) = PgBouncer::start_with_pool(3) else {
        return;
    };
    let mut db = TestDb::new("bouncer_many");
    let url = bouncer.url(&db.name, PgBouncer::PASSWORD);
    let vars = watching(
        &[("pooled", &url)],
        &[
            ("MONITOR_CHECK_INTERVAL", "200ms"),
            ("MONITOR_HEALTH_LOG_EVERY", "200ms"),
            ("MONITOR_STUCK_JOB_AFTER", "1s"),
        ],
    );
    let monitors = [Monitor::start(&vars), Monitor::start(&vars)];
    for m in &monitors {
        m.wait_for(10, "📊 System health status", Some("pooled"), WAIT);
    }
    let stale = db.job(2, Some("worker-gone"), Some("10 minutes"), "acte:9");
    common::eventually("the stuck job back in the queue", WAIT, || {
        db.job_status(&stale) == 1
    });
    for m in &monitors {
        m.wait_for(30, "📊 System health status", Some("pooled"), WAIT);
        assert_eq!(errors_for(m, "pooled"), Vec::<serde_json::Value>::new());
        assert!(!m.logged("prepared statement"));
    }
}

/// A wrong password is an `authentication` error, reported once, and the
/// password appears nowhere in the output.
#[test]
fn a_wrong_password_is_reported_once_and_never_shown() {
    let Some(bouncer) = PgBouncer::start() else {
        return;
    };
    let db = TestDb::new("badpw");
    let vars = watching(
        &[
            ("prod", &bouncer.url(&db.name, "Wr0ngPassw0rd")),
            ("dev", &db.url),
        ],
        &[("MONITOR_HEALTH_LOG_EVERY", "200ms")],
    );
    let monitor = Monitor::start(&vars);
    monitor.wait_for(10, "📊 System health status", Some("dev"), WAIT);
    let errors = errors_for(&monitor, "prod");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["kind"], "authentication", "{errors:?}");
    assert!(!monitor.logged("Wr0ngPassw0rd"));
}

/// The libpq `sslmode` values against the local server's certificate:
/// `require` encrypts, `verify-full` with only Mozilla's roots refuses a
/// self-signed certificate (reported once), `verify-ca` with the server's
/// certificate as `sslrootcert` connects, `disable` does not encrypt.
#[test]
fn tls_modes_behave_as_libpq_says() {
    let mut db = TestDb::new("tls");
    let ssl = db.text("SELECT current_setting('ssl')").unwrap();
    if ssl != "on" {
        eprintln!("SKIPPED: the test server has ssl = off");
        return;
    }
    let cert = db.text("SELECT current_setting('ssl_cert_file')").unwrap();
    let with = |mode: &str| format!("{}?{mode}", db.url);
    let vars = watching(
        &[
            (
                "require",
                &with("sslmode=require&application_name=tls-require"),
            ),
            (
                "verifyca",
                &with(&format!(
                    "sslmode=verify-ca&sslrootcert={cert}&application_name=tls-verify-ca"
                )),
            ),
            (
                "verifyfull",
                &with("sslmode=verify-full&application_name=tls-verify-full"),
            ),
            (
                "plain",
                &with("sslmode=disable&application_name=tls-disable"),
            ),
        ],
        // No election: its session, which the checks send on, names
        // itself after the instance, and the pool's connections keep the
        // names given here.
        &[
            ("MONITOR_HEALTH_LOG_EVERY", "200ms"),
            ("MONITOR_LEADER_ELECTION", "off"),
        ],
    );
    let monitor = Monitor::start(&vars);
    for env in ["require", "verifyca", "plain"] {
        monitor.wait_for(3, "📊 System health status", Some(env), WAIT);
    }
    let errors = errors_for(&monitor, "verifyfull");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("certificate"),
        "{errors:?}"
    );
    for env in ["require", "verifyca", "plain"] {
        assert!(errors_for(&monitor, env).is_empty(), "{env}");
    }
    let encrypted = |db: &mut TestDb, app: &str| {
        db.text(&format!(
            "SELECT bool_and(s.ssl)::text FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = '{app}'"
        ))
    };
    assert_eq!(encrypted(&mut db, "tls-require").as_deref(), Some("true"));
    assert_eq!(encrypted(&mut db, "tls-verify-ca").as_deref(), Some("true"));
    assert_eq!(encrypted(&mut db, "tls-disable").as_deref(), Some("false"));
}

/// A server that accepts the connection and never answers costs one timed
/// out attempt per retry, never a hung check: the other project is healed
/// meanwhile, and SIGTERM still ends the process at once.
#[test]
fn a_server_that_never_answers_cannot_hang_a_check() {
    let mut good = TestDb::new("silent");
    let proxy = Proxy::start();
    proxy.blackhole();
    let vars = watching(
        &[("silent", &proxy.url(&good.name)), ("good", &good.url)],
        &[
            ("MONITOR_CONNECT_TIMEOUT", "500ms"),
            ("MONITOR_STUCK_JOB_AFTER", "1s"),
        ],
    );
    let mut monitor = Monitor::start(&vars);
    let errors = monitor.wait_for(1, "❌ Error in", Some("silent"), WAIT);
    assert_eq!(errors[0]["kind"], "unreachable", "{errors:?}");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("connect timeout"),
        "{errors:?}"
    );
    let stale = good.job(2, Some("w"), Some("10 minutes"), "acte:1");
    monitor.wait_for(1, "🔄 Auto-reset stuck jobs", Some("good"), WAIT);
    assert_eq!(good.job_status(&stale), 1);
    let asked = Instant::now();
    monitor.signal("TERM");
    assert_eq!(
        monitor
            .wait_exit(Duration::from_secs(10))
            .and_then(|s| s.code()),
        Some(0)
    );
    assert!(asked.elapsed() < Duration::from_secs(10));
}

/// A statement blocked by a lock is cancelled by the server after the
/// statement timeout (reported once, as a timeout), and the next run after
/// the lock is gone works.
#[test]
fn a_statement_blocked_by_a_lock_times_out_and_recovers() {
    let mut db = TestDb::new("lock");
    let mut locker = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    let mut tx = locker.transaction().unwrap();
    tx.batch_execute("LOCK TABLE extraction_queue IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let vars = watching(
        &[("dev", &db.url)],
        &[
            ("MONITOR_STATEMENT_TIMEOUT", "300ms"),
            ("MONITOR_STUCK_JOB_AFTER", "1s"),
        ],
    );
    let monitor = Monitor::start(&vars);
    let errors = monitor.wait_for(1, "❌ Error in", Some("dev"), WAIT);
    assert_eq!(errors[0]["kind"], "timeout", "{errors:?}");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("statement timeout"),
        "{errors:?}"
    );
    tx.rollback().unwrap();
    monitor.wait_for(1, "✅ Environment healthy again", Some("dev"), WAIT);
    let stale = db.job(2, Some("w"), Some("10 minutes"), "acte:1");
    monitor.wait_for(1, "🔄 Auto-reset stuck jobs", Some("dev"), WAIT);
    assert_eq!(db.job_status(&stale), 1);
}

/// Connections cut, then refused for a few seconds, then back: the outage
/// is reported once, its end once, and a job that got stuck during it is
/// reset after.
#[test]
fn an_outage_is_reported_once_and_healed_after() {
    let mut db = TestDb::new("outage");
    let proxy = Proxy::start();
    let vars = watching(
        &[("dev", &proxy.url(&db.name))],
        &[
            ("MONITOR_STUCK_JOB_AFTER", "1s"),
            ("MONITOR_HEALTH_LOG_EVERY", "200ms"),
        ],
    );
    let monitor = Monitor::start(&vars);
    monitor.wait_for(2, "📊 System health status", Some("dev"), WAIT);

    proxy.refuse();
    monitor.wait_for(1, "❌ Error in", Some("dev"), WAIT);
    let stale = db.job(2, Some("w"), Some("10 minutes"), "acte:1");
    // The outage lasts a while: the resetter fails several times more.
    let addr = common::http::addr(&monitor);
    common::http::wait_more(addr, "dev", "StuckJobResetter", "errors", 3);
    assert_eq!(
        db.job_status(&stale),
        2,
        "nothing reaches the database during the outage"
    );
    proxy.restore();

    monitor.wait_for(1, "✅ Environment healthy again", Some("dev"), WAIT);
    monitor.wait_for(1, "🔄 Auto-reset stuck jobs", Some("dev"), WAIT);
    assert_eq!(db.job_status(&stale), 1);
    let errors = errors_for(&monitor, "dev");
    assert_eq!(errors.len(), 1, "{errors:?}");
}

/// A missing column in one project and a column of the wrong type in
/// another are each reported once (not every cycle), with what is wrong;
/// the healthy project is healed meanwhile.
#[test]
fn schema_problems_are_reported_once_while_the_others_run() {
    let missing = TestDb::with_schema(
        "nocol",
        &common::SCHEMA.replace("processing_started_at timestamptz,", ""),
    );
    let wrong_type = TestDb::with_schema(
        "wrongtype",
        &common::SCHEMA.replace(
            "last_heartbeat timestamptz NOT NULL DEFAULT now()",
            "last_heartbeat text",
        ),
    );
    let mut good = TestDb::new("fine");
    let vars = watching(
        &[
            ("missing", &missing.url),
            ("wrongtype", &wrong_type.url),
            ("good", &good.url),
        ],
        &[
            ("MONITOR_STUCK_JOB_AFTER", "1s"),
            ("MONITOR_HEALTH_LOG_EVERY", "200ms"),
        ],
    );
    let monitor = Monitor::start(&vars);
    let stale = good.job(2, Some("w"), Some("10 minutes"), "acte:1");
    monitor.wait_for(1, "🔄 Auto-reset stuck jobs", Some("good"), WAIT);
    assert_eq!(good.job_status(&stale), 1);
    monitor.wait_for(15, "📊 System health status", Some("good"), WAIT);

    let missing_errors = errors_for(&monitor, "missing");
    assert_eq!(missing_errors.len(), 1, "{missing_errors:?}");
    let text = missing_errors[0]["message"].as_str().unwrap();
    assert!(
        text.contains("processing_started_at") && text.contains("schema problem"),
        "{text}"
    );

    let typed = errors_for(&monitor, "wrongtype");
    assert_eq!(typed.len(), 1, "{typed:?}");
    assert_eq!(typed[0]["kind"], "schema", "{typed:?}");
    // The heartbeat's type (text) is named, whichever check met it first.
    assert!(
        typed[0]["message"].as_str().unwrap().contains("text"),
        "{typed:?}"
    );
}
