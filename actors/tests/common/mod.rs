//! A fresh database per test, with the watched schema, dropped at the end.
//!
//! The server is `TEST_DATABASE_URL` (default the local one, as postgres
//! with trust auth); the test database is that connection with another
//! database name, so a password or any other parameter in it holds. Rows
//! are set up and read back with a plain synchronous client; the code
//! under test runs with [`TestDb::run`], on a runtime of its own.

#![allow(dead_code)] // each test binary uses its own subset

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use postgres::{Client, NoTls};
use registre_actors::{Database, Project};

pub const SCHEMA: &str = include_str!("../../../sql/schema.sql");

/// The server the tests use.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A database of the test's own.
pub struct TestDb {
    pub name: String,
    /// The database as the monitor sees a project.
    pub project: Project,
    pub client: Client,
}

fn admin() -> Client {
    admin_url()
        .parse::<postgres::Config>()
        .expect("TEST_DATABASE_URL is a Postgres connection string")
        .connect(NoTls)
        .expect("connect to the test Postgres")
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
        admin()
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create the test database");
        let mut project = Project::parse("test", &admin_url()).expect("a valid TEST_DATABASE_URL");
        project.pg.dbname(&name);
        let mut config: postgres::Config = admin_url().parse().expect("a valid TEST_DATABASE_URL");
        config.dbname(&name);
        let mut client = config.connect(NoTls).expect("connect to the test database");
        client.batch_execute(schema).expect("apply the schema");
        TestDb {
            name,
            project,
            client,
        }
    }

    /// Runs `f` with a fresh pool on this database, on a runtime (an actix
    /// System) of its own; returns what it returns.
    pub fn run<T, F: Future<Output = T>>(&self, f: impl FnOnce(Database) -> F) -> T {
        let timeout = Duration::from_secs(5);
        let db = Database::new(&self.project, timeout, timeout);
        actix_rt::System::new().block_on(f(db))
    }

    /// Another session on this database (to hold a lock, say).
    pub fn connect(&self) -> Client {
        let mut config: postgres::Config = admin_url().parse().expect("a valid TEST_DATABASE_URL");
        config.dbname(&self.name);
        config.connect(NoTls).expect("connect to the test database")
    }

    pub fn exec(&mut self, sql: &str) {
        self.client
            .batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// A single `bigint` value.
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

    /// Inserts a job in `status`, held by `worker`, in its stage since
    /// `started_ago` (an interval, or no start time), and returns its id.
    pub fn job(&mut self, status: i32, worker: Option<&str>, started_ago: Option<&str>) -> String {
        let started = started_ago.map_or("NULL".into(), |ago| format!("now() - interval '{ago}'"));
        let worker = worker.map_or("NULL".into(), |w| format!("'{w}'"));
        self.text(&format!(
            "INSERT INTO extraction_queue (status_id, worker_id, processing_started_at, document_source, document_number)
             VALUES ({status}, {worker}, {started}, 'acte', '1') RETURNING id::text"
        ))
        .expect("an id")
    }

    /// Inserts a worker whose last heartbeat was `ago` ago.
    pub fn worker(&mut self, id: &str, status: &str, ago: &str) {
        self.exec(&format!(
            "INSERT INTO worker_status (worker_id, status, last_heartbeat)
             VALUES ('{id}', '{status}', now() - interval '{ago}')"
        ));
    }

    /// A job's column, as text.
    pub fn field(&mut self, id: &str, column: &str) -> Option<String> {
        self.text(&format!(
            "SELECT {column}::text FROM extraction_queue WHERE id = '{id}'"
        ))
    }

    pub fn status(&mut self, id: &str) -> i64 {
        self.count(&format!(
            "SELECT status_id::bigint FROM extraction_queue WHERE id = '{id}'"
        ))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = admin_url()
            .parse::<postgres::Config>()
            .ok()
            .and_then(|c| c.connect(NoTls).ok());
        if let Some(mut admin) = admin {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}
