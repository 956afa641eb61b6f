//! `Environment`: one watched project, its pool and its checks.
//!
//! Starts the [`LeaderElection`], [`StuckJobResetter`], [`WorkerReaper`] and
//! [`HealthReporter`], each in its own [`Ticker`], with first runs staggered
//! so they do not hit the database at once (the election first, so the
//! others soon know whether this instance acts; the health count last, so
//! its first line shows the healed queue). Restarts each on its own with
//! exponential backoff when it dies, panics included, and holds what must
//! outlive a check: the pool, the deaths reported by other projects, the
//! probed schema features and the election's session.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::check::{Check, RunContext};
use crate::database::{Database, MAX_CONNECTIONS};
use crate::fault::{Fault, InjectChildFault, InjectEnvironmentFault};
use crate::features::Features;
use crate::health_reporter::HealthReporter;
use crate::held_verdict::HeldVerdict;
use crate::kind::{ActorKind, ChildKind};
use crate::leader::{self, LeaderElection, LockSession};
use crate::project::Project;
use crate::settings::{LeaderElection as ElectionMode, Settings};
use crate::state::MonitorState;
use crate::stuck_job_resetter::StuckJobResetter;
use crate::stuck_verdict::StuckVerdict;
use crate::supervision::{ExitNotice, Exited, Restarts, Stop};
use crate::ticker::{ProjectScope, Ticker};
use crate::worker_reaper::WorkerReaper;

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
    /// The project's name, pool, settings, probed features and the state,
    /// which every check shares.
    scope: ProjectScope,
    /// The session that holds the election's lock.
    session: Arc<LockSession>,
    children: BTreeMap<ChildKind, ChildAddr>,
    restarts: Restarts<ChildKind>,
    _exit: ExitNotice<String>,
}

impl Environment {
    pub fn new(
        project: Project,
        settings: Arc<Settings>,
        state: MonitorState,
        exit: ExitNotice<String>,
    ) -> Self {
        let (name, instance) = (project.name.as_str(), settings.instance_id.as_str());
        let pooled = leader::is_transaction_pooler(&project);
        let off = settings.leader_election == ElectionMode::Off;
        state.add_project(name);
        let session = leader::start(&state, name, instance, off, pooled);
        // The checks send on the election's session while it is free, and
        // share two pooled connections otherwise, so that one check stuck
        // on its connection never stalls the others.
        let db = Database::with_max_size(
            &project,
            settings.connect_timeout,
            settings.statement_timeout,
            MAX_CONNECTIONS,
        )
        .with_home(session.home());
        let features = Features::new(name);
        let fleet = state.fleet();
        fleet.add_project(name);
        let cx = RunContext {
            settings,
            features,
            fleet,
            stuck_verdict: StuckVerdict::default(),
            held_verdict: HeldVerdict::default(),
        };
        Environment {
            scope: ProjectScope {
                project: project.name,
                db,
                cx,
                state,
            },
            session,
            children: BTreeMap::new(),
            restarts: Restarts::default(),
            _exit: exit,
        }
    }

    fn start_child(&mut self, kind: ChildKind, first_delay: Duration, ctx: &mut Context<Self>) {
        let exit = ExitNotice::new(ctx.address().downgrade().recipient(), kind);
        let addr = match kind {
            ChildKind::LeaderElection => ChildAddr::Election(self.spawn(
                LeaderElection::new(self.session.clone()),
                first_delay,
                exit,
            )),
            ChildKind::StuckJobResetter => {
                ChildAddr::Resetter(self.spawn(StuckJobResetter::default(), first_delay, exit))
            }
            ChildKind::WorkerReaper => {
                ChildAddr::Reaper(self.spawn(WorkerReaper::new(), first_delay, exit))
            }
            ChildKind::HealthReporter => {
                ChildAddr::Reporter(self.spawn(HealthReporter::default(), first_delay, exit))
            }
        };
        self.children.insert(kind, addr);
    }

    /// Starts `check` in its own [`Ticker`], in this project's scope.
    fn spawn<C: Check>(
        &self,
        check: C,
        first_delay: Duration,
        exit: ExitNotice<ChildKind>,
    ) -> Addr<Ticker<C>> {
        Ticker::new(check, self.scope.clone(), first_delay, exit).start()
    }
}

impl Actor for Environment {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let step = (self.scope.cx.settings.check_interval / 10).min(Duration::from_millis(500));
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
        let s = &self.scope;
        let (cap, actor) = (s.cx.settings.backoff_cap(), ActorKind::Check(kind));
        let delay = self.restarts.exited(kind, &s.project, actor, &s.state, cap);
        ctx.run_later(delay, move |act, ctx| {
            act.start_child(kind, Duration::ZERO, ctx)
        });
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
