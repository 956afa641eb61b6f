//! systemd's notify protocol (`Type=notify`, `WatchdogSec=`).
//!
//! - `READY=1` once the actor tree is started (and the HTTP port bound);
//! - `WATCHDOG=1` every half watchdog period, but only while every check is
//!   really ticking (the rule of [`crate::serve::liveness`], the same as
//!   `/healthz`): a hung actor tree stops the pings and systemd restarts
//!   the service;
//! - `STOPPING=1` when shutdown begins.
//!
//! Without `NOTIFY_SOCKET` (not under systemd) every message is a no-op;
//! without `WATCHDOG_USEC` no ping is sent.

use std::time::Instant;

use sd_notify::NotifyState;

use crate::serve::liveness::Liveness;

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        log::warn!("cannot notify systemd through NOTIFY_SOCKET: {e}");
    }
}

/// Tells systemd the service is up.
pub fn ready(projects: usize) {
    let status = format!("watching {projects} project(s)");
    send(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

/// Tells systemd the service is stopping.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// Pings the watchdog while the tree is alive, if systemd asked for it.
/// Runs on the actors' own thread: if that thread is stuck, so are the pings.
pub fn spawn_watchdog(liveness: Liveness) {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    let every = period / 2;
    log::info!(periodMs = every.as_millis() as u64; "🐕 Pinging the systemd watchdog while every check ticks");
    actix_rt::spawn(async move {
        let mut interval = actix_rt::time::interval(every);
        let mut withheld = false;
        loop {
            interval.tick().await;
            match liveness.check(Instant::now()) {
                Ok(()) => {
                    if withheld {
                        log::info!("🐕 Every check ticks again: watchdog pings resume");
                        withheld = false;
                    }
                    send(&[NotifyState::Watchdog]);
                }
                Err(problems) => {
                    if !withheld {
                        log::error!(problems:serde = problems;
                            "🐕 Withholding the systemd watchdog ping: checks stopped ticking");
                        withheld = true;
                    }
                }
            }
        }
    });
}
