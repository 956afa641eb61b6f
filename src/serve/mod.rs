//! `registre-monitor run`: the actor tree until SIGTERM or Ctrl-C, with
//! what watches it and what it tells beside it.
//!
//! Parts: [`http`] (the endpoints), [`metrics`] (Prometheus text),
//! [`liveness`] (the rule `/healthz` and the systemd watchdog share),
//! [`notify`] (systemd's notify protocol), [`webhook`] (alerts posted).

pub mod http;
pub mod liveness;
pub mod metrics;
pub mod notify;
pub mod webhook;

use std::net::TcpListener;

use actix::prelude::*;
use actix_web::dev::ServerHandle;
use registre_actors::alerts::AlertSink;
use registre_actors::{MonitorState, Settings, Supervisor};

use crate::config::Config;
use liveness::Liveness;

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
    actix_rt::System::new().block_on(async move {
        for warning in &config.warnings {
            log::warn!("{warning}");
        }
        // Bind before any database is touched: a taken port stops start-up.
        let listener = config.http.addr.map(http::bind).transpose().map_err(|e| {
            log::error!("{e}");
            RunError::Startup(e)
        })?;
        let state = MonitorState::new();
        start_alerts(&config.settings, &state);
        let liveness = Liveness::new(state.clone(), config.settings.clone());
        let supervisor =
            Supervisor::new(config.projects.clone(), config.settings.clone(), state).start();
        let server = match listener {
            Some(listener) => Some(serve_http(listener, &liveness, &supervisor, &config)?),
            None => None,
        };
        notify::ready(config.projects.len());
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

/// With a webhook, alerts go to a queue its sender empties.
fn start_alerts(settings: &Settings, state: &MonitorState) {
    let Some(url) = &settings.alert_webhook else {
        return;
    };
    let (sink, queue) = AlertSink::new(settings.alert_repeat_after);
    state.set_alerts(sink);
    webhook::spawn(queue, url.clone(), settings.instance_id.clone());
    log::info!(minResets = settings.alert_min_resets;
        "📮 Alerts go to the configured webhook (URL not shown)");
}

/// Serves the endpoints on the bound `listener`.
fn serve_http(
    (listener, addr): (TcpListener, std::net::SocketAddr),
    liveness: &Liveness,
    supervisor: &Addr<Supervisor>,
    config: &Config,
) -> Result<ServerHandle, RunError> {
    let faults = config.http.fault_injection;
    let served = http::serve(
        listener,
        liveness.clone(),
        supervisor.clone(),
        &config.projects,
        &config.http,
    );
    match served {
        Ok(handle) => {
            log::info!(addr = addr.to_string().as_str(), faultInjection = faults;
                "🌐 HTTP endpoints listening");
            Ok(handle)
        }
        Err(e) => {
            let e = format!("HTTP server on {addr} did not start: {e}");
            log::error!("{e}");
            Err(RunError::Startup(e))
        }
    }
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
