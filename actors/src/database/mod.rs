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

use deadpool_postgres::{Connect, Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use futures_util::future::BoxFuture;
use tokio::task::JoinHandle;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::project::Project;

mod error;
mod prepared;
mod send;

pub use error::DbError;
use error::cause_chain;
pub use prepared::MAX_PREPARED;
use prepared::Prepared;
use send::{Commit, SendError};

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

/// At most this many pooled connections per project, which the checks take
/// when the election's session (their home) is busy or absent.
pub const MAX_CONNECTIONS: usize = 2;

/// A session of the project's own, outside the pool (the election's lock
/// session), that requests are sent on while it is open and free.
pub type HomeSession = Arc<tokio::sync::Mutex<Option<deadpool_postgres::ClientWrapper>>>;

/// A project's database, as the checks use it.
#[derive(Clone)]
pub struct Database {
    /// The project's name, the scope its work runs in.
    project: Arc<str>,
    pool: Pool,
    tls: MakeRustlsConnect, // for cancel requests (`in_flight`)
    connect_timeout: Duration,
    statement_timeout: Duration,
    /// The texts kept prepared in the project's sessions.
    prepared: Arc<Prepared>,
    /// Where requests go first: see [`Database::with_home`].
    home: Option<HomeSession>,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database").finish_non_exhaustive()
    }
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
            prepared: Arc::default(),
            home: None,
        }
    }

    /// Sends requests on `home` whenever it is open and no other request
    /// is on it, and on the pool otherwise. The election's lock session
    /// is the home: a cycle then wakes one backend, not two (each woken
    /// backend costs its database a flush of its statistics and a warm-up,
    /// more than the election's own statement). A busy home never makes a
    /// request wait; a home that gave no answer, or that is read-only, is
    /// closed like a pooled connection, and its owner opens another.
    pub fn with_home(mut self, home: HomeSession) -> Self {
        self.home = Some(home);
        self
    }

    /// Runs one statement that returns a single JSON value (one row, one
    /// column) and parses it. `sql` must hold no secret: it may be logged at
    /// debug level.
    pub async fn query_json<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
    ) -> Result<T, DbError> {
        let run = self.query_json_pooled(sql, &[], None, Commit::Durable);
        in_scope(self.project.clone(), run).await
    }

    /// [`Database::query_json`] for a statement sent every cycle: the
    /// server keeps it parsed and planned (see `database/prepared.rs`). `sql` must be
    /// one statement, and its text should not vary from run to run (past
    /// [`MAX_PREPARED`] texts a project sends them as they are).
    pub async fn query_json_prepared<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
    ) -> Result<T, DbError> {
        self.query_json_prepared_with(sql, &[]).await
    }

    /// [`Database::query_json_prepared`] for a text with parameters `$1`,
    /// `$2`... whose `values` are SQL literals (see `sql/params.rs`): what
    /// varies from run to run (a list of ids, of workers) goes as a value,
    /// so that the text stays planned. Sent unprepared, the values are
    /// written in their places.
    pub async fn query_json_prepared_with<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        values: &[String],
    ) -> Result<T, DbError> {
        self.query_json_prepared_as(sql, values, Commit::Durable)
            .await
    }

    /// [`Database::query_json_prepared_with`] for a healing write that the
    /// next run would make again if it were lost: its commit does not wait
    /// for the disk (`synchronous_commit = off`). A crash of the server can
    /// lose the last such commits (by default, at most those of its last
    /// 0.6 s), never half of one, and a later durable commit makes them
    /// durable too; what they healed is found and healed again. The wait
    /// is most of what a small write costs its database (a flush, and on a
    /// primary with synchronous standbys, a round trip to them).
    pub async fn write_redoable<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        values: &[String],
    ) -> Result<T, DbError> {
        self.query_json_prepared_as(sql, values, Commit::Redoable)
            .await
    }

    async fn query_json_prepared_as<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        values: &[String],
        commit: Commit,
    ) -> Result<T, DbError> {
        let name = self.prepared.name(sql);
        let run = self.query_json_pooled(sql, values, name, commit);
        in_scope(self.project.clone(), run).await
    }

    async fn query_json_pooled<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        values: &[String],
        prepared_as: Option<prepared::Name>,
        commit: Commit,
    ) -> Result<T, DbError> {
        if let Some(mut home) = self.home.as_ref().and_then(|h| h.try_lock().ok())
            && let Some(client) = home.as_ref().filter(|c| !c.is_closed())
        {
            let sent = self.send_on(client, sql, values, prepared_as, commit).await;
            if sent.as_ref().is_err_and(SendError::spoils_session) {
                *home = None;
            }
            return sent.map_err(SendError::into_error);
        }
        let client = self.pool.get().await?;
        let sent = self
            .send_on(&client, sql, values, prepared_as, commit)
            .await;
        if sent.as_ref().is_err_and(SendError::spoils_session) {
            drop(Object::take(client));
        }
        sent.map_err(SendError::into_error)
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
        let sent = self.send_json(client, sql, Commit::Durable);
        in_scope(self.project.clone(), sent)
            .await
            .map_err(SendError::into_error)
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
