//! `Supervisor`: the root of the tree, one [`Environment`] per project.
//!
//! Starts every project's actor, restarts one that dies (with backoff, the
//! others untouched), and passes news between projects: a worker found dead
//! in one has its jobs freed in all the others.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix::prelude::*;

use crate::environment::Environment;
use crate::fault::{InjectEnvironmentFault, InjectFault};
use crate::kind::ActorKind;
use crate::project::Project;
use crate::settings::Settings;
use crate::state::MonitorState;
use crate::supervision::{ExitNotice, Exited, Restarts};
use crate::worker_reaper::WorkersDied;

/// The root actor.
pub struct Supervisor {
    projects: BTreeMap<String, Project>,
    settings: Arc<Settings>,
    state: MonitorState,
    environments: BTreeMap<String, Addr<Environment>>,
    restarts: Restarts<String>,
}

impl Supervisor {
    pub fn new(
        projects: Vec<Project>,
        settings: impl Into<Arc<Settings>>,
        state: MonitorState,
    ) -> Self {
        for p in &projects {
            state.add_project(&p.name);
        }
        Supervisor {
            projects: projects.into_iter().map(|p| (p.name.clone(), p)).collect(),
            settings: settings.into(),
            state,
            environments: BTreeMap::new(),
            restarts: Restarts::default(),
        }
    }

    fn start_environment(&mut self, name: &str, ctx: &mut Context<Self>) {
        let Some(project) = self.projects.get(name).cloned() else {
            return;
        };
        let me = ctx.address().downgrade();
        let env = Environment::new(
            project,
            self.settings.clone(),
            self.state.clone(),
            ExitNotice::new(me.recipient(), name.to_string()),
        );
        self.environments.insert(name.to_string(), env.start());
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let names: Vec<String> = self.projects.keys().cloned().collect();
        for name in &names {
            self.start_environment(name, ctx);
        }
        log::info!(environments:serde = names; "🚀 Health monitor started");
    }
}

impl Handler<Exited<String>> for Supervisor {
    type Result = ();

    fn handle(&mut self, Exited(name): Exited<String>, ctx: &mut Self::Context) {
        self.environments.remove(&name);
        let cap = self.settings.backoff_cap();
        let actor = ActorKind::Environment;
        let delay = self
            .restarts
            .exited(name.clone(), &name, actor, &self.state, cap);
        ctx.run_later(delay, move |act, ctx| act.start_environment(&name, ctx));
    }
}

impl Handler<WorkersDied> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: WorkersDied, _: &mut Self::Context) {
        self.state.fleet().died(&msg.workers);
    }
}

impl Handler<InjectFault> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: InjectFault, _: &mut Self::Context) {
        if let Some(env) = self.environments.get(&msg.project) {
            env.do_send(InjectEnvironmentFault {
                child: msg.child,
                fault: msg.fault,
            });
        }
    }
}
