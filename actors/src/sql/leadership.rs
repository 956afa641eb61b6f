//! The leader election's statement (the `LeaderElection` check).

use serde::Deserialize;

use super::literal;
use crate::database::{Database, DbError};

/// The advisory lock key of the acting instance: `pg_try_advisory_lock(a, b)`
/// with these two keys ("REGM", 1), the same in every database; a lock is
/// per database, so per project.
pub const LEADER_LOCK: (i32, i32) = (0x5245_474D, 1);

/// The `application_name` prefix of an election session; what follows is
/// the instance (`hostname:pid`).
pub const SESSION_NAME_PREFIX: &str = "registre-monitor ";

/// What [`leadership`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Leadership {
    /// The backend that answered (a change means a new session).
    pub pid: i64,
    /// Whether this session holds the lock (now, or from before).
    pub acting: bool,
    /// The `application_name` of the session holding it, when visible.
    pub holder: Option<String>,
    /// How long another session holding it has been idle (database
    /// clock), when visible: a lock left on a pooler's server connection
    /// by a dead client stays idle.
    #[serde(default)]
    pub holder_idle_ms: Option<i64>,
}

impl Leadership {
    /// The instance holding the lock, as it names itself (`hostname:pid`).
    pub fn holder_instance(&self) -> Option<String> {
        self.holder
            .as_deref()
            .map(|h| h.trim_start_matches(SESSION_NAME_PREFIX).to_string())
    }
}

/// The text of [`leadership`].
pub fn leadership_sql(instance_id: &str) -> String {
    let (a, b) = LEADER_LOCK;
    let lock = format!(
        "locktype = 'advisory' AND classid = {a} AND objid = {b} AND objsubid = 2 AND granted"
    );
    // While this session holds the lock (nearly every run), it is the
    // holder: `pg_stat_activity`, the costly part, is read only when not.
    format!(
        "SET application_name = {name};
        SELECT json_build_object(
            'pid', pg_backend_pid(),
            'acting', CASE WHEN mine THEN true ELSE pg_try_advisory_lock({a}, {b}) END,
            'holder', CASE WHEN mine THEN current_setting('application_name') ELSE
                      (SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                       WHERE l.{lock_l} AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                       LIMIT 1) END,
            'holder_idle_ms', CASE WHEN NOT mine THEN
                      (SELECT (extract(epoch FROM now() - a.state_change) * 1000)::bigint
                       FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                       WHERE l.{lock_l} AND l.pid <> pg_backend_pid() AND a.state = 'idle'
                         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                       LIMIT 1) END)
        FROM (SELECT EXISTS (SELECT 1 FROM pg_locks WHERE {lock} AND pid = pg_backend_pid()) AS mine) held",
        name = literal(&format!("{SESSION_NAME_PREFIX}{instance_id}")),
        lock_l = lock.replace(" AND ", " AND l."),
    )
}

/// The backend answering on `session`: when it is the one that took the
/// lock, it still holds it (a session lock ends only with its session, and
/// the monitor never unlocks), so a holder's run needs nothing more than
/// this, which costs its database next to nothing.
pub async fn session_pid(db: &Database, session: &tokio_postgres::Client) -> Result<i64, DbError> {
    db.query_json_on(session, "SELECT to_json(pg_backend_pid())")
        .await
}

/// On a dedicated session: keeps, or tries to take, the session-level
/// advisory lock of the acting instance, and says who holds it. Never
/// waits for the lock.
pub async fn leadership(
    db: &Database,
    session: &tokio_postgres::Client,
    instance_id: &str,
) -> Result<Leadership, DbError> {
    db.query_json_on(session, &leadership_sql(instance_id))
        .await
}
