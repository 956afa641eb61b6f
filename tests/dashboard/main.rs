//! The dashboard over HTTP: the real binary against fresh databases. What
//! the page shows and how it is locked down ([`page`]), who may look
//! ([`access`]) and who may act ([`actions`]), and what an open or a closed
//! page costs the database ([`cost`]).

#[path = "../common/mod.rs"]
mod common;

mod access;
mod actions;
mod cost;
mod page;

use std::net::SocketAddr;
use std::time::Duration;

use common::TestDb;

const WAIT: Duration = Duration::from_secs(30);
const VIEW: &str = "view-token-for-tests-0123";
const ADMIN: &str = "admin-token-for-tests-4567";
const HTML: (&str, &str) = ("Accept", "text/html");

/// The monitor watching each `(name, db)` with `settings`, and its address.
fn start(dbs: &[(&str, &TestDb)], settings: &[(&str, &str)]) -> (common::Monitor, SocketAddr) {
    let projects: Vec<(&str, &str)> = dbs.iter().map(|(n, db)| (*n, db.url.as_str())).collect();
    common::http::serve(&projects, settings)
}

/// Failed jobs with `message`, failed a minute ago.
fn failed_jobs(db: &mut TestDb, n: u32, message: &str) {
    db.exec(&format!(
        "INSERT INTO extraction_queue (status_id, error_message, document_source, document_number, attemtps, updated_at)
         SELECT 4, '{message}', 'acte', (1000 + i)::text, 3, now() - interval '1 minute'
         FROM generate_series(1, {n}) AS i"
    ));
}
