//! The actor tree of registre-monitor and all of its SQL.
//!
//! A [`Supervisor`] starts one [`Environment`] per watched project; each
//! `Environment` owns that project's connection pool and four periodic
//! checks, each its own actor, restarted on its own with backoff when it dies:
//!
//! - [`leader::LeaderElection`]: decides, by advisory lock, whether this
//!   instance acts for the project or stands by;
//! - [`StuckJobResetter`]: puts jobs stuck in processing (and in OCR) back in
//!   the queue, or fails them when they ran out of attempts;
//! - [`WorkerReaper`]: marks silent workers offline and frees their jobs, in
//!   every project;
//! - [`HealthReporter`]: counts workers and jobs, logs them, warns on anomalies.
//!
//! Every statement is in [`sql`], one function each, atomic and timed by the
//! database's clock. What the tree knows of itself is in [`MonitorState`],
//! with its [`history`] and [`events`] timeline for the dashboard (whose own
//! statements are in [`sql_dashboard`]); alerts leave through [`alerts`].

pub mod alerts;
pub mod database;
pub mod environment;
pub mod events;
pub mod features;
pub mod health_reporter;
pub mod history;
pub mod indexes;
pub mod leader;
pub mod project;
pub mod schema;
pub mod settings;
pub mod sql;
pub mod sql_dashboard;
pub mod state;
pub mod stuck_job_resetter;
pub mod supervision;
pub mod supervisor;
pub mod ticker;
pub mod tls;
pub mod worker_reaper;

pub use database::{Database, DbError};
pub use environment::Environment;
pub use health_reporter::HealthReporter;
pub use project::Project;
pub use settings::Settings;
pub use state::MonitorState;
pub use stuck_job_resetter::StuckJobResetter;
pub use supervisor::{InjectFault, Supervisor};
pub use ticker::{ChildKind, Fault};
pub use worker_reaper::WorkerReaper;
