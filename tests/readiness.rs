//! Readiness that tells the truth, through the real binary: a project whose
//! checks keep failing for a reason retrying will not fix (no watched
//! tables, a read-only database, a role without `UPDATE`) is not ready:
//! `/readyz` is 503 naming the project and the reason, the
//! `registre_monitor_project_healthy` gauge is 0 and `/status` says why,
//! while `/healthz` and `healthcheck` (liveness) stay 200 and exit 0. Once
//! fixed, it is ready again without a restart.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::http::{addr, get_json, metrics};
use common::{
    Monitor, TempDir, TestDb, command, eventually, output_within, percent_encode, watching,
};
use postgres::{Client, NoTls};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

fn start(url: &str) -> (Monitor, SocketAddr) {
    let vars = watching(&[("dev", url)], &[("MONITOR_STATEMENT_TIMEOUT", "2s")]);
    let monitor = Monitor::start(&vars);
    let addr = addr(&monitor);
    (monitor, addr)
}

/// Waits until `/readyz` says why `dev` is not ready, with `reason` in it;
/// then checks the gauge, `/status`, `/healthz` and `healthcheck` agree,
/// and returns the `/readyz` body.
fn not_ready_because(addr: SocketAddr, reason: &str) -> Value {
    eventually(&format!("/readyz 503 with {reason:?}"), WAIT, || {
        let (code, body) = get_json(addr, "/readyz");
        code == 503
            && body["notReady"]["dev"]
                .as_str()
                .is_some_and(|w| w.contains(reason))
    });
    let (_, body) = get_json(addr, "/readyz");
    let m = metrics(addr);
    assert_eq!(
        m["registre_monitor_project_healthy{environment=\"dev\"}"],
        0.0
    );
    assert_eq!(
        m["registre_monitor_project_reachable{environment=\"dev\"}"],
        1.0
    );
    let (_, status) = get_json(addr, "/status");
    assert_eq!(status["ready"], false, "{status}");
    assert_eq!(status["projects"]["dev"]["ready"], false, "{status}");
    let why = status["projects"]["dev"]["notReadyReason"]
        .as_str()
        .unwrap();
    assert!(why.contains(reason), "{status}");
    let (code, health) = get_json(addr, "/healthz");
    assert_eq!(code, 200, "liveness is not readiness: {health}");
    let dir = TempDir::new();
    let http = addr.to_string();
    let out = output_within(
        command(&["healthcheck"], &[("MONITOR_HTTP_ADDR", &http)], &dir),
        WAIT,
    );
    assert_eq!(out.status.code(), Some(0), "healthcheck is liveness");
    body
}

fn ready_again(addr: SocketAddr) {
    eventually("/readyz 200 again", WAIT, || {
        get_json(addr, "/readyz").0 == 200
    });
    assert_eq!(
        metrics(addr)["registre_monitor_project_healthy{environment=\"dev\"}"],
        1.0
    );
}

/// A database without the watched tables: not ready, "schema problem".
#[test]
fn a_database_without_the_tables_is_not_ready() {
    let db = TestDb::with_schema("noschema", "");
    let (_monitor, addr) = start(&db.url);
    let body = not_ready_because(addr, "schema problem: relation");
    eprintln!("/readyz without the tables: {body}");
}

/// A read-only database (`default_transaction_read_only`): not ready,
/// "database is read-only"; ready again once it is writable, the monitor's
/// read-only sessions replaced by fresh ones.
#[test]
fn a_read_only_database_is_not_ready_until_writable() {
    let mut db = TestDb::new("readonly");
    db.exec(&format!(
        "ALTER DATABASE {} SET default_transaction_read_only = on",
        db.name
    ));
    let (_monitor, addr) = start(&db.url);
    let body = not_ready_because(addr, "database is read-only");
    eprintln!("/readyz on a read-only database: {body}");
    db.exec(&format!(
        "ALTER DATABASE {} SET default_transaction_read_only = off",
        db.name
    ));
    ready_again(addr);
}

/// A role that may read the tables but not update them: not ready,
/// "permission denied"; ready again once granted `UPDATE`.
#[test]
fn a_role_without_update_is_not_ready_until_granted() {
    let mut db = TestDb::new("noupdate");
    let role = format!("rmtest_noupdate_{}", std::process::id());
    let password = "Qzv-reader-only";
    let mut admin = Client::connect(&common::admin_url(), NoTls).unwrap();
    admin
        .batch_execute(&format!("CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
        .unwrap();
    struct DropRole(Client, String);
    impl Drop for DropRole {
        fn drop(&mut self) {
            let _ = self
                .0
                .batch_execute(&format!("DROP ROLE IF EXISTS {}", self.1));
        }
    }
    let _role = DropRole(admin, role.clone());
    db.exec(&format!(
        "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"
    ));
    let url = format!(
        "postgres://{role}:{}@{}/{}?sslmode=disable",
        percent_encode(password),
        common::server().addr(),
        db.name
    );
    let (monitor, addr) = start(&url);
    let body = not_ready_because(addr, "permission denied");
    eprintln!("/readyz for a role without UPDATE: {body}");
    db.exec(&format!(
        "GRANT UPDATE ON ALL TABLES IN SCHEMA public TO {role}"
    ));
    ready_again(addr);
    drop(monitor);
    // The role's privileges go with the database, before the role.
    drop(db);
}
