//! What can go wrong with a statement, and which failures last.

use std::fmt;

use deadpool_postgres::PoolError;

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
pub(super) fn cause_chain(e: &dyn std::error::Error) -> String {
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
