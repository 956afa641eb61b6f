//! What a periodic check is: the work of one run, apart from its schedule.
//!
//! A [`Check`] says what one run does ([`Check::run_once`], which tests call
//! directly against a database) and what its outcome means
//! ([`Check::on_success`]: logs, figures, alerts, news for other actors). It
//! also declares how its runs depend on this instance's role ([`Gate`]) and
//! whether they read the probed schema features; the
//! [`Ticker`](crate::ticker::Ticker) that schedules it acts on both.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::database::{Database, DbError};
use crate::features::Features;
use crate::fleet::Fleet;
use crate::held_verdict::HeldVerdict;
use crate::kind::ChildKind;
use crate::role::Role;
use crate::settings::Settings;
use crate::state::MonitorState;
use crate::stuck_verdict::StuckVerdict;

/// How a check's runs depend on this instance's role for the project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Runs whatever the role: the election, which decides it.
    Always,
    /// Waits for the role to be decided, then runs whatever it is (a check
    /// that only reads, but must know whether to speak).
    AfterElection,
    /// Waits for the role to be decided, and is skipped while another
    /// instance holds the lease (a check that writes); while skipped it
    /// runs as soon as this instance takes over.
    WhenActing,
}

/// What a run may use besides the database: shared by the project's checks,
/// owned by its `Environment`, so it outlives a check's restart.
#[derive(Debug, Clone)]
pub struct RunContext {
    pub settings: Arc<Settings>,
    /// What the project's schema allows, probed once.
    pub features: Features,
    /// The workers of every project (shared by the whole tree).
    pub fleet: Arc<Fleet>,
    /// The health check's answer to the stuck rule's look, when it gave one.
    pub stuck_verdict: StuckVerdict,
    /// The jobs of dead workers, as the health check's pass listed them.
    pub held_verdict: HeldVerdict,
}

/// Where a run's outcome goes.
pub struct Reporting<'a> {
    pub project: &'a str,
    pub settings: &'a Settings,
    pub state: &'a MonitorState,
    /// This instance's role for the project when the run finished.
    pub role: Role,
}

/// What a check does while standing by ([`Check::standing_by`]); its
/// errors are the next run's to report.
pub type StandingBy = std::pin::Pin<Box<dyn Future<Output = ()>>>;

/// A run in progress, as [`Check::run_once`] returns it: it owns what it
/// needs, so the check can be scheduled again while it runs.
pub trait Running<T>: Future<Output = Result<T, DbError>> + 'static {}

impl<T, F: Future<Output = Result<T, DbError>> + 'static> Running<T> for F {}

/// One periodic check.
pub trait Check: Unpin + Sized + 'static {
    const KIND: ChildKind;
    const GATE: Gate;
    /// Whether its statements depend on the probed schema features: after
    /// a schema error they are probed again (the schema changed).
    const USES_FEATURES: bool = false;
    type Outcome: 'static;

    /// Starts one run. Safe to repeat: a run lost to a crash is simply
    /// done again.
    fn run_once(&mut self, db: &Database, cx: &RunContext) -> impl Running<Self::Outcome>;

    /// Acts on a successful run.
    fn on_success(&mut self, outcome: Self::Outcome, to: &Reporting<'_>);

    /// The wait from one run's start to the next while runs succeed: the
    /// check interval, unless the check needs another cadence now (a
    /// standby's election retries sooner).
    fn interval(&self, settings: &Settings) -> Duration {
        settings.check_interval
    }

    /// Acts on a failed run (the `Ticker` logs and alerts it already).
    fn on_failure(&mut self, _error: &DbError, _to: &Reporting<'_>) {}

    /// What a writing check does instead of a run while another instance
    /// acts: nothing, unless it needs to keep watching (the reaper reads
    /// the workers, so that it can judge them the moment it takes over).
    fn standing_by(&mut self, _db: &Database, _cx: &RunContext) -> Option<StandingBy> {
        None
    }
}
