//! The actor tree of registre-monitor and all of its SQL.
//!
//! A [`Supervisor`] starts one [`Environment`] per watched project; each
//! `Environment` owns that project's connection pool and four periodic
//! checks, each its own actor, restarted on its own with backoff when it dies:
//!
//! - [`leader::LeaderElection`]: decides, by a lease in the monitor's own
//!   table or else an advisory lock, whether this instance heals the
//!   project and whether it speaks about it ([`Role`], [`verdict`]);
//! - [`StuckJobResetter`]: puts jobs stuck in processing (and in OCR) back in
//!   the queue, or fails them when they ran out of attempts;
//! - [`WorkerReaper`]: marks dead workers offline and frees their jobs, in
//!   every project, as the [`fleet`] judges them from heartbeats seen to
//!   change;
//! - [`HealthReporter`]: counts workers and jobs, logs them, warns on
//!   anomalies ([`anomaly`]).
//!
//! The parts:
//!
//! - the tree: [`supervisor`], [`environment`], [`supervision`] (restarts
//!   with backoff), [`ticker`] (a check's schedule), [`check`] (what a check
//!   is), [`kind`] (the actors' names), [`fault`] (drills);
//! - what the checks share: [`state`] (what the tree knows of itself, read
//!   by `/status` and `/metrics`; [`histogram`]: its run durations),
//!   [`role`], [`fleet`] (which workers are alive), [`features`] (what a project's schema allows), [`report`]
//!   (how put-back jobs are logged and alerted), [`alerts`] (the alert
//!   model and its queue), [`history`] and [`events`] (counts over time and
//!   the timeline of what happened, in memory, for the dashboard);
//! - the database: [`database`] (the pool and the one way a statement is
//!   sent; [`in_flight`]: the statements running, cancelled at shutdown),
//!   [`sql`] (every statement, one function each, atomic and timed by
//!   the database's clock; the dashboard's own in [`sql::dashboard`]),
//!   [`project`], [`conninfo`] and [`tls`] (connection settings),
//!   [`identifier`] (names written into statements), [`schema`] and
//!   [`indexes`] (what the statements expect and want);
//! - [`settings`]: the tunables, already checked; [`spelling`]: the nearest
//!   known name to a misspelled one.

pub mod alerts;
pub mod anomaly;
pub mod check;
pub mod conninfo;
pub mod database;
pub mod environment;
pub mod events;
pub mod fault;
pub mod features;
pub mod fleet;
pub mod health_reporter;
pub mod held_verdict;
pub mod histogram;
pub mod history;
pub mod identifier;
pub mod in_flight;
pub mod indexes;
pub mod kind;
pub mod leader;
pub mod memory;
pub mod project;
pub mod report;
pub mod role;
pub mod schema;
pub mod settings;
pub mod spelling;
pub mod sql;
pub mod state;
pub mod stuck_job_resetter;
pub mod stuck_verdict;
pub mod supervision;
pub mod supervisor;
pub mod ticker;
pub mod tls;
pub mod verdict;
pub mod worker_reaper;

pub use database::{Database, DbError};
pub use environment::Environment;
pub use fault::{Fault, InjectFault};
pub use health_reporter::HealthReporter;
pub use kind::{ActorKind, ChildKind};
pub use project::Project;
pub use role::Role;
pub use settings::Settings;
pub use state::MonitorState;
pub use stuck_job_resetter::StuckJobResetter;
pub use supervisor::Supervisor;
pub use worker_reaper::WorkerReaper;
