//! The subcommands other than `run`: short-lived, one job each, printing
//! for people (or `--json` for scripts).
//!
//! - [`check`]: each project's tables and columns, one line each;
//! - [`diagnose`]: workers, job counts, stuck jobs and missing indexes;
//! - [`reset_stuck_jobs`]: the stuck-job rule, once, by hand;
//! - [`healthcheck`]: asks a running monitor's `/healthz` (for containers);
//! - [`demo`]: the monitor healing a simulated fleet on a scratch database;
//! - [`table`]: aligned columns and colour, shared by the others.

pub mod check;
pub mod demo;
pub mod diagnose;
pub mod healthcheck;
pub mod reset_stuck_jobs;
pub mod table;
