//! A project's connection pool, and the one way statements are sent.
//!
//! Every statement goes out as a single simple-protocol request that starts
//! with `SET LOCAL statement_timeout`: one round trip, an unnamed statement
//! (so it works through PgBouncer and Supavisor in transaction mode), and a
//! timeout the server enforces. A client-side timeout on top catches a
//! network that swallows packets; such a connection is thrown away.
//!
//! Connections are opened by [`ProjectConnect`], which runs each one (its
//! opening, and the task that drives it) in the project's scope
//! ([`current_environment`]): every log line written meanwhile, the
//! driver's and the pool's included, names the project.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{
    Connect, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use futures_util::future::BoxFuture;
use tokio::task::JoinHandle;
use tokio_postgres::SimpleQueryMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::project::Project;

tokio::task_local! {
    /// The project whose database work is being done, for log lines that
    /// do not say it themselves.
    static ENVIRONMENT: Arc<str>;
}

/// The project whose database work the current task is doing, if any: the
/// logger adds it to lines that lack an `environment` field.
pub fn current_environment() -> Option<Arc<str>> {
    ENVIRONMENT.try_with(Arc::clone).ok()
}

/// Runs `fut` in `project`'s scope (see [`current_environment`]).
pub fn in_scope<F: Future>(project: Arc<str>, fut: F) -> impl Future<Output = F::Output> {
    ENVIRONMENT.scope(project, fut)
}

/// Opens a project's connections: as deadpool's own, but in the project's
/// scope, and its `Connection error` line names the project.
pub struct ProjectConnect {
    pub project: Arc<str>,
    pub tls: MakeRustlsConnect,
}

impl Connect for ProjectConnect {
    fn connect(
        &self,
        pg: &tokio_postgres::Config,
    ) -> BoxFuture<'_, Result<(tokio_postgres::Client, JoinHandle<()>), tokio_postgres::Error>>
    {
        let (pg, tls, project) = (pg.clone(), self.tls.clone(), self.project.clone());
        Box::pin(in_scope(project.clone(), async move {
            let (client, connection) = pg.connect(tls).await?;
            let driver = in_scope(project.clone(), async move {
                if let Err(e) = connection.await {
                    log::warn!(environment = &*project; "Connection error: {}", cause_chain(&e));
                }
            });
            Ok((client, tokio::spawn(driver)))
        }))
    }
}

/// At most this many connections per project: the checks take turns; with
/// the leader election on, one of them is the election's own session.
pub const MAX_CONNECTIONS: usize = 2;

/// A project's database, as the checks use it.
#[derive(Clone)]
pub struct Database {
    /// The project's name, the scope its work runs in.
    project: Arc<str>,
    pool: Pool,
    tls: MakeRustlsConnect, // for cancel requests (`in_flight`)
    connect_timeout: Duration,
    statement_timeout: Duration,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database").finish_non_exhaustive()
    }
}

/// Why a statement did not run, in words an operator can act on.
///
/// Some causes pass (a server restarting, a network cut, a lock held too
/// long) and the checks retry them with backoff; others last until someone
/// changes the database or the settings ([`DbError::will_not_fix_itself`]):
/// those make the project not ready (`/readyz`, the `project_healthy` gauge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbError {
    /// No connection: refused, timed out, lost, or no such host.
    Unreachable(String),
    /// The server has no database of that name (SQLSTATE 3D000).
    NoDatabase(String),
    /// The server refused our credentials (SQLSTATE class 28).
    Authentication(String),
    /// A table, column or type is not what the monitor expects (class 42,
    /// but for 42501).
    Schema(String),
    /// The role may not read or write a table it must (42501).
    Permission(String),
    /// The database refuses writes: a read-only transaction by default, or
    /// a replica (25006).
    ReadOnly(String),
    /// The statement ran past the statement timeout.
    Timeout(String),
    /// Anything else the server or driver reported.
    Query(String),
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::Unreachable(m) => write!(f, "database unreachable: {m}"),
            DbError::NoDatabase(m) => write!(
                f,
                "no such database: {m} (the connection string names a database the server does not have)"
            ),
            DbError::Authentication(m) => write!(f, "authentication failed: {m}"),
            DbError::Schema(m) => write!(
                f,
                "schema problem: {m} (expected the tables and columns of sql/schema.sql)"
            ),
            DbError::Permission(m) => write!(
                f,
                "insufficient privilege: {m} (the role needs SELECT and UPDATE on extraction_queue and \
                 worker_status, and SELECT on extraction_status)"
            ),
            DbError::ReadOnly(m) => write!(
                f,
                "database is read-only: {m} (the monitor writes: connect to the primary, not a \
                 replica, with default_transaction_read_only off)"
            ),
            DbError::Timeout(m) => write!(f, "timed out: {m}"),
            DbError::Query(m) => write!(f, "query failed: {m}"),
        }
    }
}

impl std::error::Error for DbError {}

impl DbError {
    /// A short label for logs, metrics and `/status`.
    pub fn kind(&self) -> &'static str {
        match self {
            DbError::Unreachable(_) => "unreachable",
            DbError::NoDatabase(_) => "no_database",
            DbError::Authentication(_) => "authentication",
            DbError::Schema(_) => "schema",
            DbError::Permission(_) => "permission",
            DbError::ReadOnly(_) => "read_only",
            DbError::Timeout(_) => "timeout",
            DbError::Query(_) => "query",
        }
    }

    /// Whether the project could not be reached at all (as opposed to a
    /// statement that reached it and failed).
    pub fn is_connection(&self) -> bool {
        matches!(
            self,
            DbError::Unreachable(_) | DbError::NoDatabase(_) | DbError::Authentication(_)
        )
    }

    /// Whether retrying will not fix it: the schema, a permission, a
    /// read-only database, the credentials or the database name must change
    /// first. A check failing so keeps failing, and the project is not ready.
    pub fn will_not_fix_itself(&self) -> bool {
        matches!(
            self,
            DbError::NoDatabase(_)
                | DbError::Authentication(_)
                | DbError::Schema(_)
                | DbError::Permission(_)
                | DbError::ReadOnly(_)
        )
    }
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        if let Some(db) = e.as_db_error() {
            let code = db.code().code();
            let msg = format!("{} (SQLSTATE {code})", db.message());
            // PgBouncer reports a bad password as a protocol violation.
            if db.message().contains("authentication failed") {
                return DbError::Authentication(msg);
            }
            return match (code, &code[..2]) {
                ("42501", _) => DbError::Permission(msg),
                ("25006", _) => DbError::ReadOnly(msg),
                ("3D000", _) => DbError::NoDatabase(msg),
                ("57014", _) => DbError::Timeout(msg),
                (_, "28") => DbError::Authentication(msg),
                (_, "42") => DbError::Schema(msg),
                (_, "08" | "53" | "57") => DbError::Unreachable(msg),
                _ => DbError::Query(msg),
            };
        }
        if e.is_closed() {
            return DbError::Unreachable("connection closed".into());
        }
        DbError::Unreachable(cause_chain(&e))
    }
}

impl From<PoolError> for DbError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Backend(e) => e.into(),
            PoolError::Timeout(_) => {
                DbError::Unreachable("no connection within the connect timeout".into())
            }
            other => DbError::Unreachable(cause_chain(&other)),
        }
    }
}

/// The error and its sources, each once: the driver's own `Display` is terse
/// ("error connecting to server") and the useful part is in `source()`.
fn cause_chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// Why [`Database::send_json`] failed: an answer that was an error, or no
/// answer at all (the connection is then unusable).
enum SendError {
    Failed(DbError),
    NoAnswer(DbError),
}

impl Database {
    /// A pool for `project`; connects lazily, so this never fails.
    pub fn new(project: &Project, connect_timeout: Duration, statement_timeout: Duration) -> Self {
        Self::with_max_size(project, connect_timeout, statement_timeout, MAX_CONNECTIONS)
    }

    /// [`Database::new`] with at most `max_size` pooled connections (the
    /// acting-instance session takes one of the project's two).
    pub fn with_max_size(
        project: &Project,
        connect_timeout: Duration,
        statement_timeout: Duration,
        max_size: usize,
    ) -> Self {
        let mut pg = project.pg.clone();
        pg.connect_timeout(connect_timeout);
        pg.keepalives_idle(Duration::from_secs(30));
        if pg.get_application_name().is_none() {
            pg.application_name("registre-monitor");
        }
        let name: Arc<str> = project.name.as_str().into();
        let connect = ProjectConnect {
            project: name.clone(),
            tls: project.tls.connector(),
        };
        let manager = Manager::from_connect(
            pg,
            connect,
            // A killed backend closes its socket, which `Fast` notices; it
            // costs no round trip per checkout, unlike `Verified`.
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_size.max(1))
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(connect_timeout))
            .wait_timeout(Some(connect_timeout + statement_timeout))
            .build()
            .expect("a pool with a runtime and timeouts always builds");
        Database {
            project: name,
            pool,
            tls: project.tls.connector(),
            connect_timeout,
            statement_timeout,
        }
    }

    /// Runs one statement that returns a single JSON value (one row, one
    /// column) and parses it. `sql` must hold no secret: it may be logged at
    /// debug level.
    pub async fn query_json<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
    ) -> Result<T, DbError> {
        in_scope(self.project.clone(), self.query_json_pooled(sql)).await
    }

    async fn query_json_pooled<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
    ) -> Result<T, DbError> {
        let client = self.pool.get().await?;
        match self.send_json(&client, sql).await {
            Err(SendError::NoAnswer(e)) => {
                // Never give a connection with a request in flight back.
                drop(Object::take(client));
                Err(e)
            }
            Err(SendError::Failed(e @ DbError::ReadOnly(_))) => {
                // A session opened read-only (by default, or on a replica)
                // stays so: let the next run open a fresh one, which sees
                // the setting changed or the primary after a failover.
                drop(Object::take(client));
                Err(e)
            }
            Err(SendError::Failed(e)) => Err(e),
            Ok(value) => Ok(value),
        }
    }

    /// A connection of the pool's, taken out of it for good: a session of
    /// its own (for a session-level lock). Dropping it closes it, and the
    /// pool may then open another.
    pub async fn dedicated(&self) -> Result<deadpool_postgres::ClientWrapper, DbError> {
        let get = in_scope(self.project.clone(), self.pool.get());
        Ok(Object::take(get.await?))
    }

    /// [`Database::query_json`] on a dedicated session. A session that gave
    /// no answer in time is unusable: the caller should drop it.
    pub async fn query_json_on<T: serde::de::DeserializeOwned>(
        &self,
        client: &tokio_postgres::Client,
        sql: &str,
    ) -> Result<T, DbError> {
        match in_scope(self.project.clone(), self.send_json(client, sql)).await {
            Err(SendError::NoAnswer(e)) | Err(SendError::Failed(e)) => Err(e),
            Ok(value) => Ok(value),
        }
    }

    async fn send_json<T: serde::de::DeserializeOwned>(
        &self,
        client: &tokio_postgres::Client,
        sql: &str,
    ) -> Result<T, SendError> {
        let request = format!(
            "SET LOCAL statement_timeout = {}; {sql}",
            self.statement_timeout.as_millis().max(1)
        );
        // The server's timeout should fire first; this one is for a network
        // that stopped answering.
        let deadline = self.statement_timeout + self.connect_timeout;
        let sent = client.simple_query(&request);
        let sent = crate::in_flight::every_project().track(&self.project, client, &self.tls, sent);
        let result = tokio::time::timeout(deadline, sent).await;
        let messages = match result {
            Ok(Ok(messages)) => messages,
            Ok(Err(e)) => return Err(SendError::Failed(e.into())),
            Err(_) => {
                return Err(SendError::NoAnswer(DbError::Timeout(format!(
                    "no answer from the server within {} ms",
                    deadline.as_millis()
                ))));
            }
        };
        let text = messages
            .iter()
            .find_map(|m| match m {
                SimpleQueryMessage::Row(row) => Some(row.get(0)),
                _ => None,
            })
            .flatten()
            .ok_or_else(|| {
                SendError::Failed(DbError::Query("the statement returned no row".into()))
            })?;
        serde_json::from_str(text)
            .map_err(|e| SendError::Failed(DbError::Query(format!("unexpected result shape: {e}"))))
    }

    /// The project's name.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// Idle and in-use connections, for metrics and tests.
    pub fn connections(&self) -> usize {
        self.pool.status().size
    }
}
