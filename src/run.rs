//! `registre-monitor run`: the actor tree until SIGTERM or Ctrl-C, with the
//! HTTP endpoints and systemd's notify protocol beside it.

use actix::prelude::*;
use registre_actors::alerts::{AlertSink, Endpoint};
use registre_actors::{MonitorState, Supervisor};

use crate::config::Config;
use crate::liveness::Liveness;
use crate::{http, notify};

/// Why `run` ended other than by being asked to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunError {
    /// Start-up could not finish (the HTTP address cannot be listened on);
    /// a configuration problem: exit code 2.
    Startup(String),
    /// The root of the actor tree is gone, so nothing is watched any more:
    /// exit code 1, for docker or systemd to start a fresh process.
    SupervisorDied,
}

/// Runs the monitor; returns when asked to stop, at once with the reason
/// when the HTTP address cannot be listened on, or when the actor tree's
/// root has died (each logged at ERROR).
pub fn run(config: Config) -> Result<(), RunError> {
    let system = actix_rt::System::new();
    system.block_on(async move {
        for warning in &config.warnings {
            log::warn!("{warning}");
        }
        // Bind before any database is touched: a taken port stops start-up.
        let listener = match config.http.addr.map(http::bind).transpose() {
            Ok(listener) => listener,
            Err(e) => {
                log::error!("{e}");
                return Err(RunError::Startup(e));
            }
        };
        let state = MonitorState::new();
        if let Some(url) = &config.settings.alert_webhook {
            match Endpoint::parse(&url.0) {
                Ok(endpoint) => {
                    state.set_alerts(AlertSink::start(
                        endpoint,
                        config.settings.instance_id.clone(),
                        config.settings.alert_repeat_after,
                    ));
                    log::info!(minResets = config.settings.alert_min_resets;
                        "📮 Alerts go to the configured webhook (URL not shown)");
                }
                Err(problem) => log::error!("MONITOR_ALERT_WEBHOOK_URL {problem}: no alerts"),
            }
        }
        let liveness = Liveness::new(state.clone(), config.settings.clone());
        let count = config.projects.len();
        let supervisor =
            Supervisor::new(config.projects.clone(), config.settings, state).start();
        let server = match listener {
            Some((listener, addr)) => {
                let served = http::serve(
                    listener,
                    liveness.clone(),
                    supervisor.clone(),
                    &config.projects,
                    &config.http,
                );
                match served {
                    Ok(handle) => {
                        log::info!(addr = addr.to_string().as_str(), faultInjection = config.http.fault_injection;
                            "🌐 HTTP endpoints listening");
                        Some(handle)
                    }
                    Err(e) => {
                        let e = format!("HTTP server on {addr} did not start: {e}");
                        log::error!("{e}");
                        return Err(RunError::Startup(e));
                    }
                }
            }
            None => None,
        };
        notify::ready(count);
        notify::spawn_watchdog(liveness);
        let outcome = tokio::select! {
            _ = shutdown_signal() => Ok(()),
            _ = gone(supervisor.clone()) => {
                log::error!("💥 The Supervisor stopped: exiting so that the service manager starts a fresh monitor");
                Err(RunError::SupervisorDied)
            }
        };
        log::info!("🛑 Shutting down");
        notify::stopping();
        if let Some(server) = server {
            server.stop(true).await;
        }
        System::current().stop();
        outcome
    })
}

/// Resolves when `supervisor` has stopped: a panic there would otherwise
/// leave a process that runs and watches nothing.
async fn gone(supervisor: Addr<Supervisor>) {
    while supervisor.connected() {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// Resolves on the first SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot listen for SIGTERM ({e}); only Ctrl-C will stop the monitor");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
