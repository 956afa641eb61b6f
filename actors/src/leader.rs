//! `LeaderElection`: which of several instances acts for a project.
//!
//! Operators run a second instance for safety, or start one by mistake.
//! Every statement is exactly-once under concurrency anyway (an `UPDATE`
//! re-checks its `WHERE` after waiting for a row lock, `FOR UPDATE SKIP
//! LOCKED` skips what another run holds, a worker already offline is never
//! returned), so no job is reset twice and no worker reported dead twice
//! even then; but every instance would warn and alert about the same
//! anomalies. So, per project, the instance holding a session-level
//! advisory lock ([`sql::LEADER_LOCK`]) on a dedicated connection acts; the
//! others stand by: they keep counting (for metrics and `/status`) but do
//! not reset, reap, warn or alert. Each check interval the acting instance
//! checks that its session still holds the lock and a standby tries to take
//! it; a dead instance's session ends with its process, which frees the
//! lock, so another instance acts within one or two intervals.
//!
//! Through a transaction pooler a session lock does not stay with the
//! client. A session that changes backend under us is such a pooler: the
//! election is then given up for that project, with one ERROR line, and
//! this instance acts (see the README).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};
use std::time::Duration;

use futures_util::future::LocalBoxFuture;

use crate::database::{Database, DbError};
use crate::events::Event;
use crate::settings::Settings;
use crate::sql::{self, Leadership};
use crate::ticker::{Check, ChildKind, RunContext};

/// Before any election run succeeded (`Role::default()`).
const UNKNOWN: u8 = 0;
const ACTING: u8 = 1;
const STANDBY: u8 = 2;
/// Acting without an election (`MONITOR_LEADER_ELECTION=off`, or a pooler).
const ALONE: u8 = 3;

/// A project's role, and the session that holds the lock. Owned by the
/// project's `Environment`, so it outlives a restart of any check.
#[derive(Debug, Default)]
pub struct Role {
    role: AtomicU8,
    /// The backend pid of the session when it took the lock.
    pid: AtomicI64,
    session: tokio::sync::Mutex<Option<deadpool_postgres::ClientWrapper>>,
    /// Woken when the role is decided, or an election run failed.
    decided: tokio::sync::Notify,
    /// An election run has finished, decided or not (database down).
    tried: std::sync::atomic::AtomicBool,
}

/// Shared by a project's checks.
pub type SharedRole = Arc<Role>;

impl Role {
    /// A role for an instance that acts without election.
    pub fn alone() -> SharedRole {
        let role = Role::default();
        role.set(ALONE);
        Arc::new(role)
    }

    /// Whether this instance acts for the project now: unless another
    /// instance is known to hold the lock. Undecided (no election could run:
    /// the database is down, say) acts, so that the checks still report what
    /// is wrong; every statement is exactly-once anyway.
    pub fn acting(&self) -> bool {
        self.role.load(Ordering::SeqCst) != STANDBY
    }

    /// Whether the first election run has decided the role.
    pub fn decided(&self) -> bool {
        self.role.load(Ordering::SeqCst) != UNKNOWN
    }

    /// Waits until the role is decided or an election run has failed, at
    /// most `bound`: so the first runs at start-up act (or keep quiet) as
    /// they should, instead of skipping.
    pub async fn settled(&self, bound: Duration) {
        let wait = async {
            loop {
                let woken = self.decided.notified();
                if self.decided() || self.tried.load(Ordering::SeqCst) {
                    return;
                }
                woken.await;
            }
        };
        let _ = tokio::time::timeout(bound, wait).await;
    }

    fn tried(&self) {
        self.tried.store(true, Ordering::SeqCst);
        self.decided.notify_waiters();
    }

    fn set(&self, role: u8) {
        self.role.store(role, Ordering::SeqCst);
        self.decided.notify_waiters();
    }

    /// Whether this instance is known to stand by (so must not alert).
    pub fn standing_by(&self) -> bool {
        self.role.load(Ordering::SeqCst) == STANDBY
    }
}

/// The check.
pub struct LeaderElection {
    role: SharedRole,
}

impl LeaderElection {
    pub fn new(role: SharedRole) -> Self {
        LeaderElection { role }
    }
}

/// What one election run found.
pub struct Outcome {
    found: Option<Leadership>,
    /// The session was opened in this run.
    fresh: bool,
}

impl Check for LeaderElection {
    const KIND: ChildKind = ChildKind::LeaderElection;
    type Outcome = Outcome;

    fn run_once(
        &mut self,
        db: &Database,
        settings: &Settings,
    ) -> LocalBoxFuture<'static, Result<Outcome, DbError>> {
        let (db, role, instance) = (db.clone(), self.role.clone(), settings.instance_id.clone());
        Box::pin(async move {
            if role.role.load(Ordering::SeqCst) == ALONE {
                return Ok(Outcome {
                    found: None,
                    fresh: false,
                });
            }
            let result = elect(&db, &role, &instance).await;
            if result.is_err() {
                role.tried();
            }
            result
        })
    }

    fn on_success(&mut self, outcome: Outcome, cx: &RunContext<'_>) {
        let Some(found) = outcome.found else {
            return;
        };
        let env = cx.project;
        let instance = cx.settings.instance_id.as_str();
        let before = self.role.role.load(Ordering::SeqCst);
        let last_pid = self.role.pid.load(Ordering::SeqCst);
        if found.acting && before == ACTING && !outcome.fresh && last_pid != found.pid {
            // Same client, another backend: a transaction pooler.
            self.role.set(ALONE);
            if let Ok(mut session) = self.role.session.try_lock() {
                *session = None;
            }
            cx.state.update(env, |p| {
                p.role = Some("acting".into());
                p.acting_instance = Some(instance.to_string());
            });
            log::error!(environment = env, instance = instance;
                "❌ Leader election needs a session, but this connection goes through a transaction pooler: \
                 acting without it (use the direct connection, port 5432, or MONITOR_LEADER_ELECTION=off)");
            return;
        }
        let holder = found
            .holder
            .as_deref()
            .map(|h| h.trim_start_matches("registre-monitor ").to_string());
        if found.acting {
            self.role.pid.store(found.pid, Ordering::SeqCst);
            if before != ACTING {
                self.role.set(ACTING);
                log::info!(environment = env, instance = instance; "👑 Acting for environment");
                cx.state.event(Event::new(
                    env,
                    "leadership",
                    format!("👑 Acting for environment ({instance})"),
                ));
            }
            cx.state.update(env, |p| {
                p.role = Some("acting".into());
                p.acting_instance = Some(instance.to_string());
            });
        } else {
            if before != STANDBY {
                self.role.set(STANDBY);
                log::info!(environment = env, instance = instance,
                    actingInstance = holder.as_deref().unwrap_or("unknown");
                    "💤 Standing by: another instance acts for environment");
                cx.state.event(Event::new(
                    env,
                    "leadership",
                    format!(
                        "💤 Standing by: {} acts",
                        holder.as_deref().unwrap_or("another instance")
                    ),
                ));
            }
            cx.state.update(env, |p| {
                p.role = Some("standby".into());
                p.acting_instance = holder;
            });
        }
    }
}

/// One election run: on the dedicated session (opened, or replaced when
/// lost), keep or try to take the lock.
async fn elect(db: &Database, role: &Role, instance: &str) -> Result<Outcome, DbError> {
    let mut session = role.session.lock().await;
    let mut fresh = false;
    loop {
        let client = match session.take().filter(|s| !s.is_closed()) {
            Some(client) => client,
            None => {
                fresh = true;
                db.dedicated().await?
            }
        };
        match sql::leadership(db, &client, instance).await {
            Ok(found) => {
                *session = Some(client);
                return Ok(Outcome {
                    found: Some(found),
                    fresh,
                });
            }
            // A session lost since the last run is replaced at once.
            Err(e) if e.is_connection() && !fresh => continue,
            Err(e) => return Err(e),
        }
    }
}
