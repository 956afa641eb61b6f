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
//! client. Supabase's pooler port is known ([`is_transaction_pooler`]): no
//! election there. Any other pooler shows as a session that changes
//! backend under us: the election is then given up for that project, with
//! one ERROR line, and this instance acts (see docs/operations.md).
//!
//! The election is the only writer of the project's [`Role`], kept in the
//! [`MonitorState`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use crate::check::{Check, Gate, Reporting, RunContext, Running};
use crate::database::{Database, DbError};
use crate::events::Event;
use crate::kind::ChildKind;
use crate::project::Project;
use crate::role::Role;
use crate::sql::{self, Leadership};
use crate::state::MonitorState;

/// Supabase's transaction-mode pooler (Supavisor) listens here; a session
/// lock taken through it would stay on a server connection after its
/// client is gone, so there is no election through it.
pub const SUPABASE_TRANSACTION_POOLER_PORT: u16 = 6543;

/// Whether `project` is reached through Supabase's transaction pooler.
pub fn is_transaction_pooler(project: &Project) -> bool {
    project
        .pg
        .get_ports()
        .contains(&SUPABASE_TRANSACTION_POOLER_PORT)
}

/// The session that holds (or tries to take) the lock. Owned by the
/// project's `Environment`, so it outlives a restart of the check.
#[derive(Default)]
pub struct LockSession {
    /// No election (off, or given up through a pooler): the role stays
    /// `Alone`.
    alone: AtomicBool,
    /// The backend pid of the session when it took the lock.
    pid: AtomicI64,
    client: tokio::sync::Mutex<Option<deadpool_postgres::ClientWrapper>>,
}

impl LockSession {
    pub fn new(alone: bool) -> Self {
        LockSession {
            alone: AtomicBool::new(alone),
            ..LockSession::default()
        }
    }
}

/// Starts a project's election as its `Environment` starts: the role is
/// undecided until the first run (this instance counted as acting till
/// then), or acting alone when there is no election. Returns the session
/// to hand every [`LeaderElection`] of the project.
pub fn start(state: &MonitorState, project: &str, instance: &str, alone: bool) -> Arc<LockSession> {
    let role = if alone { Role::Alone } else { Role::Undecided };
    state.set_role(project, role, Some(instance.to_string()), alone);
    Arc::new(LockSession::new(alone))
}

/// The check.
pub struct LeaderElection {
    session: Arc<LockSession>,
}

impl LeaderElection {
    pub fn new(session: Arc<LockSession>) -> Self {
        LeaderElection { session }
    }
}

/// What one election run found.
#[derive(Debug)]
pub struct Outcome {
    /// `None` without an election.
    pub found: Option<Leadership>,
    /// The session was opened in this run.
    pub fresh: bool,
}

/// What a run's finding means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The lock held, but by another backend of the same client: a
    /// transaction pooler. Act alone from now on.
    Pooler,
    Acting,
    /// Another instance (named, when visible) holds the lock.
    StandingBy(Option<String>),
}

/// Judges a run: `before` is the role until now, `last_pid` the backend
/// that took the lock, `fresh` whether this run opened the session.
pub fn judge(before: Role, last_pid: i64, found: &Leadership, fresh: bool) -> Verdict {
    if found.acting && before == Role::Acting && !fresh && last_pid != found.pid {
        Verdict::Pooler
    } else if found.acting {
        Verdict::Acting
    } else {
        Verdict::StandingBy(found.holder_instance())
    }
}

impl Check for LeaderElection {
    const KIND: ChildKind = ChildKind::LeaderElection;
    const GATE: Gate = Gate::Always;
    type Outcome = Outcome;

    fn run_once(&mut self, db: &Database, cx: &RunContext) -> impl Running<Self::Outcome> {
        let (db, session, settings) = (db.clone(), self.session.clone(), cx.settings.clone());
        async move {
            if session.alone.load(Ordering::SeqCst) {
                return Ok(Outcome {
                    found: None,
                    fresh: false,
                });
            }
            elect(&db, &session, &settings.instance_id).await
        }
    }

    fn on_success(&mut self, outcome: Outcome, to: &Reporting<'_>) {
        let Some(found) = outcome.found else {
            return;
        };
        let (env, instance) = (to.project, to.settings.instance_id.as_str());
        let last_pid = self.session.pid.load(Ordering::SeqCst);
        match judge(to.role, last_pid, &found, outcome.fresh) {
            Verdict::Pooler => {
                self.session.alone.store(true, Ordering::SeqCst);
                if let Ok(mut client) = self.session.client.try_lock() {
                    *client = None;
                }
                to.state
                    .set_role(env, Role::Alone, Some(instance.to_string()), true);
                log::error!(environment = env, instance = instance;
                    "❌ Leader election needs a session, but this connection goes through a transaction pooler: \
                     acting without it (use the direct connection, port 5432, or MONITOR_LEADER_ELECTION=off)");
            }
            Verdict::Acting => {
                self.session.pid.store(found.pid, Ordering::SeqCst);
                if to.role != Role::Acting {
                    log::info!(environment = env, instance = instance; "👑 Acting for environment");
                    let text = format!("👑 Acting for environment ({instance})");
                    to.state.event(Event::new(env, "leadership", text));
                }
                to.state
                    .set_role(env, Role::Acting, Some(instance.to_string()), true);
            }
            Verdict::StandingBy(holder) => {
                if to.role != Role::StandingBy {
                    log::info!(environment = env, instance = instance,
                        actingInstance = holder.as_deref().unwrap_or("unknown");
                        "💤 Standing by: another instance acts for environment");
                    let acting = holder.as_deref().unwrap_or("another instance");
                    let text = format!("💤 Standing by: {acting} acts");
                    to.state.event(Event::new(env, "leadership", text));
                }
                to.state.set_role(env, Role::StandingBy, holder, true);
            }
        }
    }

    /// A run that could not decide still settles the role: the checks stop
    /// waiting and act, so that they report what is wrong.
    fn on_failure(&mut self, _: &DbError, to: &Reporting<'_>) {
        to.state.election_ran(to.project);
    }
}

/// One election run: on the dedicated session (opened, or replaced when
/// lost), keep or try to take the lock.
async fn elect(db: &Database, session: &LockSession, instance: &str) -> Result<Outcome, DbError> {
    let mut client = session.client.lock().await;
    let mut fresh = false;
    loop {
        let c = match client.take().filter(|s| !s.is_closed()) {
            Some(c) => c,
            None => {
                fresh = true;
                db.dedicated().await?
            }
        };
        match sql::leadership(db, &c, instance).await {
            Ok(found) => {
                *client = Some(c);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn found(acting: bool, pid: i64) -> Leadership {
        Leadership {
            pid,
            acting,
            holder: Some("registre-monitor host:42".into()),
        }
    }

    #[test]
    fn another_backend_under_the_same_session_is_a_pooler() {
        let acting = Role::Acting;
        assert_eq!(judge(acting, 7, &found(true, 8), false), Verdict::Pooler);
        assert_eq!(judge(acting, 7, &found(true, 7), false), Verdict::Acting);
        // A session opened in this run, or a first win, is no evidence.
        assert_eq!(judge(acting, 7, &found(true, 8), true), Verdict::Acting);
        assert_eq!(
            judge(Role::Undecided, 0, &found(true, 8), false),
            Verdict::Acting
        );
        assert_eq!(
            judge(acting, 7, &found(false, 8), false),
            Verdict::StandingBy(Some("host:42".into()))
        );
    }

    #[test]
    fn supabase_pooler_port_means_no_election() {
        let direct = Project::parse("p", "postgres://u@db.x.supabase.co:5432/postgres").unwrap();
        let pooled = Project::parse("p", "postgres://u@pooler.supabase.com:6543/postgres").unwrap();
        assert!(!is_transaction_pooler(&direct));
        assert!(is_transaction_pooler(&pooled));
    }
}
