//! registre-monitor, the program around the actor tree (`registre-actors`,
//! in `actors/`, holds the tree and all of its SQL).
//!
//! - [`config`]: the command line, `.env`, the projects found in the
//!   environment and the settings, each checked once at start-up;
//! - [`serve`]: `registre-monitor run`: the actor tree, the HTTP endpoints
//!   (`/healthz`, `/readyz`, `/metrics`, `/status`), systemd's notify
//!   protocol and the alerts' webhook, until SIGTERM;
//! - [`dashboard`]: the page at `GET /` on the same server, its event
//!   stream, its access rules and a person's actions;
//! - [`commands`]: the other subcommands: `check`, `diagnose`,
//!   `reset-stuck-jobs`, `healthcheck` and `demo`;
//! - [`logging`]: text or JSON log lines with their structured fields.

pub mod commands;
pub mod config;
pub mod dashboard;
pub mod logging;
pub mod serve;
