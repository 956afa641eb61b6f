//! `LeaderElection`: which of several instances speaks for a project, and
//! whether this one heals.
//!
//! Operators run a second instance for safety, or start one by mistake.
//! Every statement is exactly-once under concurrency anyway (an `UPDATE`
//! re-checks its `WHERE` after waiting for a row lock, `FOR UPDATE SKIP
//! LOCKED` skips what another run holds, a worker already offline is never
//! returned), so no job is reset twice and no worker reported dead twice
//! even then; but every instance would warn and alert about the same
//! anomalies. The election decides who speaks and saves duplicated work;
//! it must never stop the healing.
//!
//! - With the opt-in lease table (`sql/leader.sql`, probed with the schema
//!   features), one atomic statement on the pool ([`sql::claim_lease`])
//!   takes the lease when free or expired and renews it when ours: it works
//!   through any pooler. The holder acts; the others stand by (they skip
//!   the writing checks) and retry every quarter interval, so a dead
//!   holder's lease ([`verdict::lease_ttl`]) is taken over within two
//!   intervals, and the writing checks run at once.
//! - Without it, a session-level advisory lock ([`sql::LEADER_LOCK`]) on a
//!   dedicated connection decides who speaks; the others are backups that
//!   heal too, since through a pooler the lock can stay on a server
//!   connection held by nobody. A holder idle for three intervals is taken
//!   for such an orphan: this instance then speaks too. Through Supabase's
//!   pooler port ([`is_transaction_pooler`]), or when the session changes
//!   backend under us (another pooler), there is no lock: acting alone.
//! - A run that fails leaves the role undecided: this instance acts and
//!   speaks.
//!
//! The election is the only writer of the project's [`Role`], kept in the
//! [`MonitorState`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use crate::check::{Check, Gate, Reporting, RunContext, Running};
use crate::database::{Database, DbError, HomeSession};
use crate::events::Event;
use crate::kind::ChildKind;
use crate::project::Project;
use crate::role::Role;
use crate::settings::Settings;
use crate::sql::{self, Leadership, Lease};
use crate::state::MonitorState;
use crate::verdict::{self, LockRun, Verdict};

/// Supabase's transaction-mode pooler (Supavisor) listens here; a session
/// lock taken through it would stay on a server connection after its
/// client is gone, so there is no lock through it (a lease still works).
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
    /// No election at all (`MONITOR_LEADER_ELECTION=off`): the role stays
    /// `Alone`.
    off: bool,
    /// No session lock can hold (Supabase's pooler port, or a pooler seen
    /// under the session): without the lease table, acting alone.
    no_lock: AtomicBool,
    /// The backend pid of the session when it took the lock.
    pid: AtomicI64,
    /// The session; the project's checks send on it too while it is free
    /// ([`Database::with_home`]).
    client: HomeSession,
}

impl LockSession {
    pub fn new(off: bool, no_lock: bool) -> Self {
        LockSession {
            off,
            no_lock: AtomicBool::new(no_lock),
            ..LockSession::default()
        }
    }

    /// The session, to hand the project's [`Database`].
    pub fn home(&self) -> HomeSession {
        self.client.clone()
    }
}

/// Starts a project's election as its `Environment` starts: the role is
/// undecided until the first run (this instance acting and speaking till
/// then), or acting alone when the election is off. `no_lock`: the
/// connection goes through Supabase's transaction pooler. Returns the
/// session to hand every [`LeaderElection`] of the project.
pub fn start(
    state: &MonitorState,
    project: &str,
    instance: &str,
    off: bool,
    no_lock: bool,
) -> Arc<LockSession> {
    let role = if off { Role::Alone } else { Role::Undecided };
    state.set_role(project, role, Some(instance.to_string()), off);
    Arc::new(LockSession::new(off, no_lock))
}

/// The check.
pub struct LeaderElection {
    session: Arc<LockSession>,
    /// The last run found another instance's lease: retry soon.
    retry_soon: bool,
    /// The orphaned lock was reported (once until it changes).
    orphan_said: bool,
}

impl LeaderElection {
    pub fn new(session: Arc<LockSession>) -> Self {
        LeaderElection {
            session,
            retry_soon: false,
            orphan_said: false,
        }
    }
}

/// What one election run found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// No election: off, or no lock can hold and there is no lease table.
    Nothing,
    /// The lease, from the lease table.
    Lease(Lease),
    /// The advisory lock; `fresh`: the session was opened in this run.
    Lock { found: Leadership, fresh: bool },
}

impl Check for LeaderElection {
    const KIND: ChildKind = ChildKind::LeaderElection;
    const GATE: Gate = Gate::Always;
    // Whether the lease table exists is a schema feature.
    const USES_FEATURES: bool = true;
    type Outcome = Found;

    fn run_once(&mut self, db: &Database, cx: &RunContext) -> impl Running<Self::Outcome> {
        let (db, session, cx) = (db.clone(), self.session.clone(), cx.clone());
        async move {
            if session.off {
                return Ok(Found::Nothing);
            }
            let s = &cx.settings;
            if cx.features.get(&db, s).await?.lease {
                let ttl = verdict::lease_ttl(s.check_interval);
                let lease = sql::claim_lease(&db, &s.instance_id, ttl).await?;
                return Ok(Found::Lease(lease));
            }
            if session.no_lock.load(Ordering::SeqCst) {
                return Ok(Found::Nothing);
            }
            elect(&db, &session, &s.instance_id).await
        }
    }

    fn interval(&self, settings: &Settings) -> Duration {
        if self.retry_soon {
            verdict::standby_retry(settings.check_interval)
        } else {
            settings.check_interval
        }
    }

    fn on_success(&mut self, found: Found, to: &Reporting<'_>) {
        let (verdict, mode) = match &found {
            Found::Nothing if self.session.off => return,
            Found::Nothing => (Verdict::Alone, "none"),
            Found::Lease(lease) => (verdict::judge_lease(lease), "lease"),
            Found::Lock { found, fresh } => {
                let run = LockRun {
                    before: to.role,
                    last_pid: self.session.pid.load(Ordering::SeqCst),
                    fresh: *fresh,
                    check_interval: to.settings.check_interval,
                };
                let v = verdict::judge_lock(&run, found);
                if v == Verdict::Acting {
                    self.session.pid.store(found.pid, Ordering::SeqCst);
                }
                (v, "lock")
            }
        };
        self.retry_soon = matches!(found, Found::Lease(_)) && verdict != Verdict::Acting;
        if !matches!(verdict, Verdict::Orphaned { .. }) {
            self.orphan_said = false;
        }
        if verdict == Verdict::Pooler {
            self.session.no_lock.store(true, Ordering::SeqCst);
            if let Ok(mut client) = self.session.client.try_lock() {
                *client = None;
            }
        }
        self.announce(&verdict, mode, to);
        let role = verdict.role();
        let acting = match verdict {
            Verdict::StandingBy(holder) | Verdict::Backup(holder) => holder,
            _ => Some(to.settings.instance_id.clone()),
        };
        to.state.set_role(to.project, role, acting, true);
    }

    /// A run that could not decide leaves the role undecided (unless
    /// alone): this instance acts and speaks, so that nothing is left
    /// undone or unsaid while the election cannot tell.
    fn on_failure(&mut self, _: &DbError, to: &Reporting<'_>) {
        self.retry_soon = false;
        if to.role == Role::Alone {
            to.state.election_ran(to.project);
        } else {
            let me = Some(to.settings.instance_id.clone());
            to.state.set_role(to.project, Role::Undecided, me, true);
        }
    }
}

impl LeaderElection {
    /// Logs (and puts on the timeline) a change of role.
    fn announce(&mut self, verdict: &Verdict, mode: &str, to: &Reporting<'_>) {
        let (env, instance) = (to.project, to.settings.instance_id.as_str());
        let changed = to.role != verdict.role();
        let event = |text: String| to.state.event(Event::new(env, "leadership", text));
        match verdict {
            Verdict::Pooler => log::error!(environment = env, instance = instance;
                "❌ Leader election needs a session, but this connection goes through a transaction pooler: \
                 acting without it (create the lease table, sql/leader.sql, or use the direct connection, port 5432)"),
            Verdict::Alone if changed => log::warn!(environment = env, instance = instance;
                "Leader election off for this environment: port 6543 is Supabase's transaction pooler, \
                 where session locks do not hold, and there is no lease table (sql/leader.sql); every \
                 instance acts (each statement stays exactly-once, but anomaly warnings and alerts \
                 repeat per instance)"),
            Verdict::Acting if changed => {
                log::info!(environment = env, instance = instance, election = mode;
                    "👑 Acting for environment");
                event(format!("👑 Acting for environment ({instance})"));
            }
            Verdict::StandingBy(holder) if changed => {
                let acting = holder.as_deref().unwrap_or("unknown");
                log::info!(environment = env, instance = instance, actingInstance = acting;
                    "💤 Standing by: another instance acts for environment");
                event(format!("💤 Standing by: {acting} acts"));
            }
            Verdict::Backup(holder) if changed => {
                let acting = holder.as_deref().unwrap_or("unknown");
                log::info!(environment = env, instance = instance, actingInstance = acting;
                    "🛟 Healing as backup: another instance holds the lock and speaks for environment");
                event(format!("🛟 Healing as backup: {acting} speaks"));
            }
            Verdict::Orphaned { holder, idle } if !self.orphan_said => {
                self.orphan_said = true;
                let acting = holder.as_deref().unwrap_or("unknown");
                log::warn!(environment = env, instance = instance, actingInstance = acting,
                    idleSeconds = idle.as_secs();
                    "🔓 Leader lock looks orphaned: its session has been idle for {}s (a pooler keeps \
                     a lock after its client died); this instance speaks too", idle.as_secs());
                event(format!("🔓 Leader lock orphaned ({acting}): speaking too"));
            }
            _ => {}
        }
    }
}

/// One lock run: on the dedicated session (opened, or replaced when
/// lost), keep or try to take the lock.
async fn elect(db: &Database, session: &LockSession, instance: &str) -> Result<Found, DbError> {
    let mut client = session.client.lock().await;
    let mut fresh = false;
    loop {
        let c = match client.take().filter(|s| !s.is_closed()) {
            Some(c) => c,
            None => {
                fresh = true;
                session.pid.store(0, Ordering::SeqCst);
                db.dedicated().await?
            }
        };
        // The backend that took the lock still answering: it holds it.
        let held = session.pid.load(Ordering::SeqCst);
        if !fresh && held != 0 {
            match sql::session_pid(db, &c).await {
                Ok(pid) if pid == held => {
                    *client = Some(c);
                    let found = Leadership {
                        pid,
                        acting: true,
                        holder: Some(format!(
                            "{}{instance}",
                            sql::leadership::SESSION_NAME_PREFIX
                        )),
                        holder_idle_ms: None,
                    };
                    return Ok(Found::Lock { found, fresh });
                }
                // Another backend (a pooler's): the full statement judges.
                Ok(_) => {}
                Err(e) if e.is_connection() => continue,
                Err(e) => return Err(e),
            }
        }
        match sql::leadership(db, &c, instance).await {
            Ok(found) => {
                *client = Some(c);
                return Ok(Found::Lock { found, fresh });
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

    #[test]
    fn supabase_pooler_port_means_no_lock() {
        let direct = Project::parse("p", "postgres://u@db.x.supabase.co:5432/postgres").unwrap();
        let pooled = Project::parse("p", "postgres://u@pooler.supabase.com:6543/postgres").unwrap();
        assert!(!is_transaction_pooler(&direct));
        assert!(is_transaction_pooler(&pooled));
    }
}
