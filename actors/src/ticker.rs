//! The periodic actor every check runs in: scheduling, timing, errors.
//!
//! A [`Check`] says what one run does (`run_once`) and what to do with its
//! outcome; [`Ticker`] runs it at once, then every check interval, backs off
//! while it fails, records each run in [`MonitorState`], and logs failures
//! with the project's and the check's names, once per distinct error. Every
//! run is safe to repeat: a run lost to a crash is simply done again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::future::LocalBoxFuture;

use crate::alerts::Alert;
use crate::database::{Database, DbError};
use crate::events::Event;
use crate::project::redact_url;
use crate::settings::Settings;
use crate::state::{FailureNews, MonitorState};
use crate::supervision::{ExitNotice, Stop};

/// The children of an [`Environment`](crate::Environment), one per check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChildKind {
    /// First, so the others know at once whether this instance acts.
    LeaderElection,
    StuckJobResetter,
    WorkerReaper,
    HealthReporter,
}

impl ChildKind {
    pub const ALL: [ChildKind; 4] = [
        ChildKind::LeaderElection,
        ChildKind::StuckJobResetter,
        ChildKind::WorkerReaper,
        ChildKind::HealthReporter,
    ];

    /// The name used in logs, metrics and `/status`.
    pub fn name(self) -> &'static str {
        match self {
            ChildKind::LeaderElection => "LeaderElection",
            ChildKind::StuckJobResetter => "StuckJobResetter",
            ChildKind::WorkerReaper => "WorkerReaper",
            ChildKind::HealthReporter => "HealthReporter",
        }
    }
}

/// What a check run can see besides its own state.
pub struct RunContext<'a> {
    pub project: &'a str,
    pub settings: &'a Settings,
    pub state: &'a MonitorState,
}

/// One periodic check.
pub trait Check: Unpin + Sized + 'static {
    const KIND: ChildKind;
    type Outcome: 'static;

    /// Starts one run; the future owns what it needs.
    fn run_once(
        &mut self,
        db: &Database,
        settings: &Settings,
    ) -> LocalBoxFuture<'static, Result<Self::Outcome, DbError>>;

    /// Acts on a successful run: logs, figures, news for other actors.
    fn on_success(&mut self, outcome: Self::Outcome, cx: &RunContext<'_>);
}

/// A fault to inject into a running child, for tests and drills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Panic inside the actor's message handler.
    Panic,
    /// Stop handling anything, forever, as a deadlocked actor would.
    Hang,
}

/// Injects `Fault` into a check's actor.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct InjectChildFault(pub Fault);

/// The actor that runs a [`Check`] on its schedule.
pub struct Ticker<C: Check> {
    pub(crate) check: C,
    project: String,
    db: Database,
    settings: Arc<Settings>,
    state: MonitorState,
    first_delay: Duration,
    /// Consecutive failed runs; sets the backoff.
    failures: u32,
    exit: ExitNotice<ChildKind>,
}

impl<C: Check> Ticker<C> {
    pub fn new(
        check: C,
        project: String,
        db: Database,
        settings: Arc<Settings>,
        state: MonitorState,
        first_delay: Duration,
        exit: ExitNotice<ChildKind>,
    ) -> Self {
        Ticker {
            check,
            project,
            db,
            settings,
            state,
            first_delay,
            failures: 0,
            exit,
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if !self.exit.parent_alive() {
            ctx.stop();
            return;
        }
        let started = Instant::now();
        let run = self.check.run_once(&self.db, &self.settings);
        ctx.spawn(run.into_actor(self).map(move |result, act, ctx| {
            let took = started.elapsed();
            act.finish(result, took);
            let delay = act.next_delay(took);
            ctx.run_later(delay, |act, ctx| act.tick(ctx));
        }));
    }

    fn finish(&mut self, result: Result<C::Outcome, DbError>, took: Duration) {
        let check = C::KIND.name();
        match result {
            Ok(outcome) => {
                self.failures = 0;
                if self.state.run_succeeded(&self.project, check, took) {
                    log::info!(environment = self.project.as_str(), check = check;
                        "✅ Environment healthy again: checks succeed");
                    self.state.event(Event::new(
                        &self.project,
                        "recovered",
                        "✅ Environment healthy again: checks succeed",
                    ));
                    self.state.alert(Alert::new(
                        &self.project,
                        "recovered",
                        format!(
                            "[{}] ✅ Environment healthy again: checks succeed",
                            self.project
                        ),
                    ));
                }
                let cx = RunContext {
                    project: &self.project,
                    settings: &self.settings,
                    state: &self.state,
                };
                self.check.on_success(outcome, &cx);
            }
            Err(error) => {
                self.failures = self.failures.saturating_add(1);
                let retry = self.next_delay(took);
                let text = error.to_string();
                match self.state.run_failed(&self.project, check, took, &error) {
                    FailureNews::New => {
                        log::error!(
                            environment = self.project.as_str(), check = check,
                            kind = error.kind(), retryInMs = retry.as_millis() as u64;
                            "❌ Error in {check}: {text}");
                        let kind = if error.is_connection() {
                            "unreachable"
                        } else {
                            "failing"
                        };
                        self.state.event(Event::new(
                            &self.project,
                            kind,
                            format!("❌ Error in {check}: {}", redact_url(&text)),
                        ));
                        self.state.alert(
                            Alert::new(
                                &self.project,
                                kind,
                                format!("[{}] ❌ Error in {check}: {text}", self.project),
                            )
                            .field("check", check)
                            .field("error", error.kind()),
                        );
                    }
                    FailureNews::Repeated => log::debug!(
                        environment = self.project.as_str(), check = check,
                        kind = error.kind(), failures = self.failures;
                        "Still failing in {check}: {text}"),
                }
            }
        }
    }

    /// Every interval while runs succeed (keeping the cadence, whatever a
    /// run took); doubling with each consecutive failure, up to the cap.
    fn next_delay(&self, took: Duration) -> Duration {
        let interval = self.settings.check_interval;
        if self.failures == 0 {
            return interval.saturating_sub(took);
        }
        let factor = 2u32.saturating_pow((self.failures - 1).min(16));
        interval
            .saturating_mul(factor)
            .min(self.settings.backoff_cap())
    }
}

impl<C: Check> Actor for Ticker<C> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_later(self.first_delay, |act, ctx| act.tick(ctx));
    }
}

impl<C: Check> Handler<Stop> for Ticker<C> {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl<C: Check> Handler<InjectChildFault> for Ticker<C> {
    type Result = ();

    fn handle(&mut self, msg: InjectChildFault, ctx: &mut Self::Context) {
        log::warn!(environment = self.project.as_str(), check = C::KIND.name();
            "Injecting fault {:?} into {}", msg.0, C::KIND.name());
        match msg.0 {
            Fault::Panic => panic!("injected panic in {} of {}", C::KIND.name(), self.project),
            Fault::Hang => {
                ctx.wait(futures_util::future::pending::<()>().into_actor(self));
            }
        }
    }
}
