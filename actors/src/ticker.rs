//! `Ticker`: the actor every check runs in, and its schedule.
//!
//! It runs its [`Check`] once after a first delay (staggered by the
//! `Environment`), then every check interval, keeping the cadence whatever
//! a run took; while runs fail it backs off, doubling up to a cap. Around
//! each run it does what every check needs: waits for this instance's role
//! to be decided and holds a writing check while another instance holds
//! the lease, running it as soon as this one takes over (as the check's
//! [`Gate`] says), forgets the probed schema features after a
//! schema error, records the run in [`MonitorState`], and logs and alerts a
//! failure with the project's and the check's names, once per distinct
//! error. It stops when told to ([`Stop`]) or when its parent is gone.

use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::alerts::Alert;
use crate::check::{Check, Gate, Reporting, RunContext};
use crate::database::{Database, DbError};
use crate::events::Event;
use crate::fault::{Fault, InjectChildFault};
use crate::kind::ChildKind;
use crate::state::{FailureNews, MonitorState};
use crate::supervision::{ExitNotice, Stop};

/// What every check of a project shares: the project's name and pool, the
/// run context and the tree's state. An `Environment` holds one and hands
/// each `Ticker` a clone.
#[derive(Debug, Clone)]
pub struct ProjectScope {
    pub project: String,
    pub db: Database,
    pub cx: RunContext,
    pub state: MonitorState,
}

/// The actor that runs a [`Check`] on its schedule.
pub struct Ticker<C: Check> {
    check: C,
    scope: ProjectScope,
    first_delay: Duration,
    /// Consecutive failed runs; sets the backoff.
    failures: u32,
    exit: ExitNotice<ChildKind>,
}

/// The wait before the next run: the rest of the interval while runs
/// succeed (so the cadence holds whatever a run took); the interval
/// doubled with each consecutive failure after the first, up to `cap`.
pub fn next_delay(interval: Duration, cap: Duration, failures: u32, took: Duration) -> Duration {
    if failures == 0 {
        return interval.saturating_sub(took);
    }
    let factor = 2u32.saturating_pow((failures - 1).min(16));
    interval.saturating_mul(factor).min(cap)
}

impl<C: Check> Ticker<C> {
    pub fn new(
        check: C,
        scope: ProjectScope,
        first_delay: Duration,
        exit: ExitNotice<ChildKind>,
    ) -> Self {
        Ticker {
            check,
            scope,
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
        let scope = &self.scope;
        let run = self.check.run_once(&scope.db, &scope.cx);
        let watch = match C::GATE {
            Gate::WhenActing => self.check.standing_by(&scope.db, &scope.cx),
            _ => None,
        };
        let (state, project) = (scope.state.clone(), scope.project.clone());
        let s = &scope.cx.settings;
        let (bound, interval) = (s.connect_timeout + s.statement_timeout, s.check_interval);
        let gated = async move {
            if C::GATE != Gate::Always {
                let role = state.wait_role(&project, bound, |p| p.role_settled).await;
                if C::GATE == Gate::WhenActing && !role.acts() {
                    if let Some(watch) = watch {
                        watch.await;
                    }
                    // Standing by: run the moment this instance takes over,
                    // not a whole interval later.
                    let role = state.wait_role(&project, interval, |p| p.role.acts()).await;
                    if !role.acts() {
                        return (Ok(None), started.elapsed());
                    }
                }
            }
            let gate = started.elapsed();
            (run.await.map(Some), gate)
        };
        ctx.spawn(gated.into_actor(self).map(move |(result, gate), act, ctx| {
            let took = started.elapsed();
            act.finish(result, took.saturating_sub(gate));
            let s = &act.scope.cx.settings;
            let every = act.check.interval(s);
            let delay = next_delay(every, s.backoff_cap(), act.failures, took);
            ctx.run_later(delay, |act, ctx| act.tick(ctx));
        }));
    }

    /// Records a run (`took`: the run itself, not its wait at the gate):
    /// `Ok(None)` is a run skipped by the gate.
    fn finish(&mut self, result: Result<Option<C::Outcome>, DbError>, took: Duration) {
        let (check, scope) = (C::KIND.name(), &self.scope);
        let (env, state) = (scope.project.as_str(), &scope.state);
        let to = Reporting {
            project: env,
            settings: &scope.cx.settings,
            state,
            role: state.role(env),
        };
        let error = match result {
            Ok(outcome) => {
                self.failures = 0;
                if state.run_succeeded(env, C::KIND, took) {
                    let text = "✅ Environment healthy again: checks succeed";
                    log::info!(environment = env, check = check; "{text}");
                    state.event(Event::new(env, "recovered", text));
                    state.alert(Alert::new(env, "recovered", format!("[{env}] {text}")));
                }
                if let Some(outcome) = outcome {
                    self.check.on_success(outcome, &to);
                }
                return;
            }
            Err(error) => error,
        };
        self.failures = self.failures.saturating_add(1);
        if C::USES_FEATURES && matches!(error, DbError::Schema(_)) {
            scope.cx.features.forget();
        }
        self.check.on_failure(&error, &to);
        let s = &scope.cx.settings;
        let retry = next_delay(s.check_interval, s.backoff_cap(), self.failures, took);
        let text = error.to_string();
        match state.run_failed(env, C::KIND, took, &error) {
            FailureNews::New => {
                log::error!(environment = env, check = check, kind = error.kind(),
                    retryInMs = retry.as_millis() as u64; "❌ Error in {check}: {text}");
                let kind = if error.is_connection() {
                    "unreachable"
                } else {
                    "failing"
                };
                let line = format!("❌ Error in {check}: {text}");
                state.event(Event::new(env, kind, line));
                let alert = format!("[{env}] ❌ Error in {check}: {text}");
                state.alert(
                    Alert::new(env, kind, alert)
                        .field("check", check)
                        .field("error", error.kind()),
                );
            }
            FailureNews::Repeated => log::debug!(environment = env, check = check,
                kind = error.kind(), failures = self.failures; "Still failing in {check}: {text}"),
        }
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
        let check = C::KIND.name();
        log::warn!(environment = self.scope.project.as_str(), check = check;
            "Injecting fault {:?} into {check}", msg.0);
        match msg.0 {
            Fault::Panic => panic!("injected panic in {check} of {}", self.scope.project),
            Fault::Hang => {
                ctx.wait(futures_util::future::pending::<()>().into_actor(self));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_cadence_then_backs_off_to_the_cap() {
        let (interval, cap) = (Duration::from_secs(30), Duration::from_secs(60));
        let took = Duration::from_secs(4);
        assert_eq!(next_delay(interval, cap, 0, took), Duration::from_secs(26));
        assert_eq!(
            next_delay(interval, cap, 0, Duration::from_secs(40)),
            Duration::ZERO
        );
        let delays: Vec<u64> = (1..=4)
            .map(|n| next_delay(interval, cap, n, took).as_secs())
            .collect();
        assert_eq!(delays, [30, 60, 60, 60]);
        let fast = Duration::from_millis(200);
        let delays: Vec<u128> = (1..=6)
            .map(|n| next_delay(fast, Duration::from_millis(1600), n, took).as_millis())
            .collect();
        assert_eq!(delays, [200, 400, 800, 1600, 1600, 1600]);
    }
}
