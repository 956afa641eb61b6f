//! A fresh database per test, with the watched schema, dropped at the end;
//! shared by the actors' tests and the program's (`tests/common`).
//!
//! The server is `TEST_DATABASE_URL` (default the local one, as postgres
//! with trust auth); a test database is that connection string with another
//! database name, so a password or any other parameter in it holds. Rows
//! are set up and read back with a plain synchronous client; code under
//! test that needs a runtime runs in [`TestDb::run`].

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use postgres::{Client, NoTls};
use registre_actors::sql::ReleasedJob;
use registre_actors::{Database, Project};

pub const SCHEMA: &str = include_str!("../../../sql/schema.sql");

/// The server the tests use.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Where the test server is and who the tests are on it, read from
/// [`admin_url`] (so a password in `TEST_DATABASE_URL` holds everywhere:
/// the proxy, PgBouncer, the roles a test creates).
#[derive(Debug, Clone)]
pub struct Server {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
}

/// The test server, from `TEST_DATABASE_URL`.
pub fn server() -> Server {
    let url = admin_url();
    let config: postgres::Config = url
        .parse()
        .unwrap_or_else(|e| panic!("TEST_DATABASE_URL is not a connection string: {e}"));
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(host)) => host.clone(),
        other => panic!("TEST_DATABASE_URL must name a TCP host, not {other:?}"),
    };
    Server {
        host,
        port: config.get_ports().first().copied().unwrap_or(5432),
        user: config.get_user().unwrap_or("postgres").to_string(),
        password: config
            .get_password()
            .map(|p| String::from_utf8(p.to_vec()).expect("a UTF-8 test password")),
    }
}

/// Every byte but letters, digits and `-._~` as `%XX`: a password (or
/// anything) safe to put in a URL.
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Server {
    /// `postgres://user:password@addr/database?sslmode=disable`, as this
    /// server's user, to `addr` (the server itself, or a proxy before it).
    pub fn url_via(&self, addr: &str, database: &str) -> String {
        let password = self
            .password
            .as_deref()
            .map(|p| format!(":{}", percent_encode(p)))
            .unwrap_or_default();
        format!(
            "postgres://{}{password}@{addr}/{database}?sslmode=disable",
            percent_encode(&self.user)
        )
    }

    /// `host:port`, brackets around an IPv6 address.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// `admin_url` with another database name (parameters kept).
pub fn url_for(database: &str) -> String {
    let admin = admin_url();
    let (base, query) = admin.split_once('?').unwrap_or((&admin, ""));
    let cut = base
        .rfind('/')
        .expect("TEST_DATABASE_URL has a database part");
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    format!("{}/{database}{query}", &base[..cut])
}

/// The real schema's attempts column, as `sql/schema.sql` declares it.
const ATTEMPTS_LINE: &str = "    attemtps              integer     NOT NULL DEFAULT 0,\n";

/// The real schema without the attempts column (an older database).
pub fn schema_without_attempts() -> String {
    assert!(SCHEMA.contains(ATTEMPTS_LINE), "sql/schema.sql changed");
    SCHEMA.replace(ATTEMPTS_LINE, "")
}

/// The real schema without the OCR stage's columns (an older database).
pub fn schema_without_ocr() -> String {
    let start = SCHEMA
        .find("    -- OCR stage")
        .expect("sql/schema.sql changed");
    let end = start + SCHEMA[start..].find(");").expect("sql/schema.sql changed");
    format!(
        "{}\n{}",
        SCHEMA[..start].trim_end().trim_end_matches(','),
        &SCHEMA[end..]
    )
}

/// The ids of `jobs`, sorted (for a statement that returns them in no
/// particular order).
pub fn sorted_ids(jobs: &[ReleasedJob]) -> Vec<String> {
    let mut ids: Vec<String> = jobs.iter().map(|j| j.id.clone()).collect();
    ids.sort();
    ids
}

/// `ids`, sorted.
pub fn sorted(ids: &[&String]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    ids.sort();
    ids
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Another session holding a row locked (`FOR UPDATE`), as an operator or
/// a migration may, until dropped (its connection closes, the lock goes).
pub struct RowLock(#[allow(dead_code)] Client);

/// A database of the test's own.
pub struct TestDb {
    pub name: String,
    /// Its connection string (for a project variable).
    pub url: String,
    pub client: Client,
}

fn connect(url: &str) -> Client {
    Client::connect(url, NoTls).unwrap_or_else(|e| panic!("connect to the test Postgres: {e}"))
}

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
        connect(&admin_url())
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create the test database");
        let url = url_for(&name);
        let mut client = connect(&url);
        client.batch_execute(schema).expect("apply the schema");
        TestDb { name, url, client }
    }

    /// The database as the monitor sees a project.
    pub fn project(&self) -> Project {
        Project::parse("test", &self.url).expect("a valid TEST_DATABASE_URL")
    }

    /// Runs `f` with a fresh pool on this database, on a runtime (an actix
    /// System) of its own; returns what it returns.
    pub fn run<T, F: Future<Output = T>>(&self, f: impl FnOnce(Database) -> F) -> T {
        let timeout = Duration::from_secs(5);
        let db = Database::new(&self.project(), timeout, timeout);
        actix_rt::System::new().block_on(f(db))
    }

    /// Locks, from another session, the rows of `table` matching `condition`
    /// (SQL), until the returned lock is dropped.
    pub fn lock_rows(&self, table: &str, condition: &str) -> RowLock {
        let mut client = self.connect();
        client
            .batch_execute(&format!(
                "BEGIN; SELECT 1 FROM {table} WHERE {condition} FOR UPDATE"
            ))
            .unwrap_or_else(|e| panic!("lock {table} where {condition}: {e}"));
        RowLock(client)
    }

    /// Locks a job's row from another session (see [`TestDb::lock_rows`]).
    pub fn lock_job(&self, id: &str) -> RowLock {
        self.lock_rows("extraction_queue", &format!("id = '{id}'"))
    }

    /// Another session on this database (to hold a lock, say).
    pub fn connect(&self) -> Client {
        connect(&self.url)
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

    /// Inserts a job in `status`, held by `worker`, processing since
    /// `started_ago` (an interval, or no start time), for `doc`
    /// (`source:number`); returns its id.
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
        let worker = worker.map_or("NULL".to_string(), quoted);
        let (source, number) = doc.split_once(':').expect("source:number");
        self.text(&format!(
            "INSERT INTO extraction_queue (status_id, worker_id, processing_started_at, document_source, document_number)
             VALUES ({status}, {worker}, {started}, '{source}', '{number}') RETURNING id::text"
        ))
        .expect("an id")
    }

    /// Inserts jobs, each `(status, worker, started_ago)` as for [`job`](Self::job)
    /// (document `acte:1`); returns their ids in order.
    pub fn jobs<const N: usize>(
        &mut self,
        specs: [(i32, Option<&str>, Option<&str>); N],
    ) -> [String; N] {
        specs.map(|(status, worker, ago)| self.job(status, worker, ago, "acte:1"))
    }

    /// Inserts workers, each `(id, status, heartbeat ago)`.
    pub fn workers(&mut self, specs: &[(&str, &str, &str)]) {
        for (id, status, ago) in specs {
            self.worker(id, status, ago);
        }
    }

    /// Inserts a worker whose last heartbeat was `ago` ago.
    pub fn worker(&mut self, id: &str, status: &str, ago: &str) {
        self.exec(&format!(
            "INSERT INTO worker_status (worker_id, status, last_heartbeat) VALUES ({}, '{status}', now() - interval '{ago}')",
            quoted(id)
        ));
    }

    /// The status of each job, in order.
    pub fn statuses(&mut self, ids: &[&str]) -> Vec<i64> {
        ids.iter().map(|id| self.job_status(id)).collect()
    }

    pub fn job_status(&mut self, id: &str) -> i64 {
        self.count(&format!(
            "SELECT status_id::bigint FROM extraction_queue WHERE id = '{id}'"
        ))
    }

    /// A job's column, as text.
    pub fn field(&mut self, id: &str, column: &str) -> Option<String> {
        self.text(&format!(
            "SELECT {column}::text FROM extraction_queue WHERE id = '{id}'"
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

/// `s` as an SQL string literal (`standard_conforming_strings` on, as by
/// default): worker names in tests may hold quotes and backslashes.
pub fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
