//! registre-monitor, the program around the actor tree: command line,
//! configuration, logging and wiring. The actor tree and its SQL are in the
//! `registre-actors` crate (`actors/`).

pub mod check;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod demo;
pub mod diagnose;
pub mod dotenv;
pub mod duration;
pub mod healthcheck;
pub mod http;
pub mod liveness;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod reset_stuck_jobs;
pub mod run;
pub mod table;
