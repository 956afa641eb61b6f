//! `Environment`: one watched project, its pool and its checks.
//!
//! Starts the [`LeaderElection`], [`StuckJobResetter`], [`WorkerReaper`] and [`HealthReporter`]
//! (first runs staggered so they do not hit the database at once), restarts
//! each on its own with exponential backoff when it dies, panics included,
//! and holds what must outlive a child: the pool, the deaths reported by
//! other projects, the probed schema features and this instance's role.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::WeakRecipient;
use actix::prelude::*;

use crate::database::{Database, MAX_CONNECTIONS};
use crate::events::Event;
use crate::features::Features;
use crate::health_reporter::HealthReporter;
use crate::leader::{LeaderElection, Role, SharedRole};
use crate::project::Project;
use crate::settings::{LeaderElection as ElectionMode, Settings};
use crate::sql::ForeignDeath;
use crate::state::MonitorState;
use crate::stuck_job_resetter::StuckJobResetter;
use crate::supervision::{ExitNotice, Exited, RestartBackoff, Stop};
use crate::ticker::{Check, ChildKind, Fault, InjectChildFault, Ticker};
use crate::worker_reaper::{ForeignDeaths, WorkerReaper, WorkersDied};

/// Supabase's transaction-mode pooler (Supavisor) listens here; a session
/// lock taken through it would stay on a server connection after its
/// client is gone, so there is no election through it.
pub const SUPABASE_TRANSACTION_POOLER_PORT: u16 = 6543;

/// Deaths found in another project: free those workers' jobs here too.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct ReleaseForeignDeaths(pub Vec<ForeignDeath>);

/// Injects a fault into one child (tests and drills).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct InjectEnvironmentFault {
    pub child: ChildKind,
    pub fault: Fault,
}

/// The address of a running child, whatever its check.
enum ChildAddr {
    Election(Addr<Ticker<LeaderElection>>),
    Resetter(Addr<Ticker<StuckJobResetter>>),
    Reaper(Addr<Ticker<WorkerReaper>>),
    Reporter(Addr<Ticker<HealthReporter>>),
}

impl ChildAddr {
    fn send_stop(&self) {
        match self {
            ChildAddr::Election(a) => a.do_send(Stop),
            ChildAddr::Resetter(a) => a.do_send(Stop),
            ChildAddr::Reaper(a) => a.do_send(Stop),
            ChildAddr::Reporter(a) => a.do_send(Stop),
        }
    }

    fn inject(&self, fault: Fault) {
        let msg = InjectChildFault(fault);
        match self {
            ChildAddr::Election(a) => a.do_send(msg),
            ChildAddr::Resetter(a) => a.do_send(msg),
            ChildAddr::Reaper(a) => a.do_send(msg),
            ChildAddr::Reporter(a) => a.do_send(msg),
        }
    }
}

/// The actor for one project.
pub struct Environment {
    project: Project,
    settings: Arc<Settings>,
    state: MonitorState,
    db: Database,
    foreign: ForeignDeaths,
    /// What the project's schema allows (probed once).
    features: Features,
    /// Whether this instance acts for the project, and its lock session.
    role: SharedRole,
    /// Where the reaper reports deaths (the Supervisor).
    deaths: WeakRecipient<WorkersDied>,
    children: BTreeMap<ChildKind, ChildAddr>,
    backoff: BTreeMap<ChildKind, RestartBackoff>,
    _exit: ExitNotice<String>,
}

impl Environment {
    pub fn new(
        project: Project,
        settings: Arc<Settings>,
        state: MonitorState,
        deaths: WeakRecipient<WorkersDied>,
        exit: ExitNotice<String>,
    ) -> Self {
        // With an election, one of the project's connections is the
        // session that holds the lock; the checks share the other.
        let pooled = project
            .pg
            .get_ports()
            .contains(&SUPABASE_TRANSACTION_POOLER_PORT);
        let (pool_size, role) = match settings.leader_election {
            ElectionMode::Session if pooled => {
                log::warn!(environment = project.name.as_str(), instance = settings.instance_id.as_str();
                    "Leader election off for this environment: port 6543 is Supabase's transaction pooler, \
                     where session locks do not hold; every instance acts (each statement stays \
                     exactly-once, but anomaly warnings and alerts repeat per instance)");
                (MAX_CONNECTIONS, Role::alone())
            }
            ElectionMode::Session => (MAX_CONNECTIONS - 1, Arc::new(Role::default())),
            ElectionMode::Off => (MAX_CONNECTIONS, Role::alone()),
        };
        let db = Database::with_max_size(
            &project,
            settings.connect_timeout,
            settings.statement_timeout,
            pool_size,
        );
        state.add_project(&project.name);
        if role.acting() {
            state.update(&project.name, |p| {
                p.role = Some("acting".into());
                p.acting_instance = Some(settings.instance_id.clone());
            });
        }
        let features = Features::new(&project.name);
        Environment {
            project,
            settings,
            state,
            db,
            foreign: ForeignDeaths::default(),
            features,
            role,
            deaths,
            children: BTreeMap::new(),
            backoff: BTreeMap::new(),
            _exit: exit,
        }
    }

    fn start_child(&mut self, kind: ChildKind, first_delay: Duration, ctx: &mut Context<Self>) {
        let exit = ExitNotice::new(ctx.address().downgrade().recipient(), kind);
        let role = self.role.clone();
        let addr = match kind {
            ChildKind::LeaderElection => {
                ChildAddr::Election(self.spawn(LeaderElection::new(role), first_delay, exit))
            }
            ChildKind::StuckJobResetter => ChildAddr::Resetter(self.spawn(
                StuckJobResetter::new(self.features.clone(), role),
                first_delay,
                exit,
            )),
            ChildKind::WorkerReaper => ChildAddr::Reaper(
                self.spawn(
                    WorkerReaper::new(self.foreign.clone(), self.deaths.clone())
                        .with(self.features.clone(), role),
                    first_delay,
                    exit,
                ),
            ),
            ChildKind::HealthReporter => {
                ChildAddr::Reporter(self.spawn(HealthReporter::new(role), first_delay, exit))
            }
        };
        self.children.insert(kind, addr);
    }

    /// Starts `check` in its own [`Ticker`], with this project's pool,
    /// settings and state.
    fn spawn<C: Check>(
        &self,
        check: C,
        first_delay: Duration,
        exit: ExitNotice<ChildKind>,
    ) -> Addr<Ticker<C>> {
        let name = self.project.name.clone();
        let (db, settings, state) = (self.db.clone(), self.settings.clone(), self.state.clone());
        Ticker::new(check, name, db, settings, state, first_delay, exit).start()
    }
}

impl Actor for Environment {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Staggered first runs: the resetter at once, then the reaper, then
        // the reporter, whose first line then shows the healed queue.
        let step = (self.settings.check_interval / 10).min(Duration::from_millis(500));
        for (i, kind) in ChildKind::ALL.into_iter().enumerate() {
            self.start_child(kind, step * i as u32, ctx);
        }
    }
}

impl Drop for Environment {
    fn drop(&mut self) {
        for child in self.children.values() {
            child.send_stop();
        }
    }
}

impl Handler<Exited<ChildKind>> for Environment {
    type Result = ();

    fn handle(&mut self, Exited(kind): Exited<ChildKind>, ctx: &mut Self::Context) {
        self.children.remove(&kind);
        let delay = self
            .backoff
            .entry(kind)
            .or_default()
            .next_delay(self.settings.backoff_cap());
        self.state.restarted(&self.project.name, kind.name());
        log::error!(
            environment = self.project.name.as_str(),
            actor = kind.name(),
            restartInMs = delay.as_millis() as u64;
            "🔁 {} stopped unexpectedly; restarting it", kind.name()
        );
        self.state.event(Event::new(
            &self.project.name,
            "restart",
            format!("🔁 {} stopped unexpectedly; restarting it", kind.name()),
        ));
        ctx.run_later(delay, move |act, ctx| {
            act.start_child(kind, Duration::ZERO, ctx)
        });
    }
}

impl Handler<ReleaseForeignDeaths> for Environment {
    type Result = ();

    fn handle(
        &mut self,
        ReleaseForeignDeaths(deaths): ReleaseForeignDeaths,
        _: &mut Self::Context,
    ) {
        self.foreign
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(deaths);
    }
}

impl Handler<InjectEnvironmentFault> for Environment {
    type Result = ();

    fn handle(&mut self, msg: InjectEnvironmentFault, _: &mut Self::Context) {
        if let Some(child) = self.children.get(&msg.child) {
            child.inject(msg.fault);
        }
    }
}
