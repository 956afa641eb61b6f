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
use std::time::Duration;

use actix::prelude::*;
use actix_web::dev::ServerHandle;
use registre_actors::alerts::AlertSink;
use registre_actors::in_flight;
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
/// when the HTTP address cannot be listened on (for the caller to print as
/// a configuration error), or when the actor tree's root has died (logged
/// at ERROR).
pub fn run(config: Config) -> Result<(), RunError> {
    actix_rt::System::new().block_on(async move {
        ignore_other_signals();
        // Bind before any database is touched: a taken port stops start-up
        // (as a configuration error, printed by the caller).
        let listener = config
            .http
            .addr
            .map(http::bind)
            .transpose()
            .map_err(RunError::Startup)?;
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
        cancel_statements().await;
        if let Some(server) = server {
            server.stop(true).await;
        }
        System::current().stop();
        outcome
    })
}

/// How long shutdown gives the statements in flight to be cancelled.
const CANCEL_WITHIN: Duration = Duration::from_secs(2);

/// Cancels the statements still running on the servers (a reset waiting on
/// a lock would otherwise run on, and could commit, after the exit), and
/// says so; from then on no statement is sent.
async fn cancel_statements() {
    let cancelled = in_flight::every_project().cancel_all(CANCEL_WITHIN).await;
    if cancelled.count > 0 {
        log::warn!(count = cancelled.count, environments:serde = cancelled.environments;
            "🛑 Cancelled the statements still running");
    }
    if cancelled.failed > 0 {
        log::warn!(count = cancelled.failed;
            "🛑 Could not cancel every statement still running: the server ends them at their statement timeout");
    }
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
        Err(e) => Err(RunError::Startup(format!(
            "MONITOR_HTTP_ADDR={addr}: the HTTP server did not start ({e}); expected a free address on this host, or off"
        ))),
    }
}

/// Resolves when `supervisor` has stopped: a panic there would otherwise
/// leave a process that runs and watches nothing.
async fn gone(supervisor: Addr<Supervisor>) {
    while supervisor.connected() {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// SIGHUP, SIGUSR1 and SIGUSR2 would end the process at once (their
/// default action), without `🛑 Shutting down` or `STOPPING=1`. The monitor
/// has nothing to reload (its settings are read from the environment at
/// start), so each is logged at WARN and otherwise ignored.
fn ignore_other_signals() {
    use tokio::signal::unix::{SignalKind, signal};
    for (kind, name) in [
        (SignalKind::hangup(), "SIGHUP"),
        (SignalKind::user_defined1(), "SIGUSR1"),
        (SignalKind::user_defined2(), "SIGUSR2"),
    ] {
        match signal(kind) {
            Ok(mut received) => {
                actix_rt::spawn(async move {
                    while received.recv().await.is_some() {
                        log::warn!(signal = name;
                            "📨 {name} received and ignored: settings are read at start, restart the monitor to change them");
                    }
                });
            }
            Err(e) => log::warn!("cannot handle {name} ({e}): it would stop the monitor at once"),
        }
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
