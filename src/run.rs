//! `registre-monitor run`: the actor tree until SIGTERM or Ctrl-C.

use actix::prelude::*;
use registre_actors::alerts::{AlertSink, Endpoint};
use registre_actors::{MonitorState, Supervisor};

use crate::config::Config;

/// Runs the monitor; returns when asked to stop.
pub fn run(config: Config) {
    let system = actix_rt::System::new();
    system.block_on(async move {
        for warning in &config.warnings {
            log::warn!("{warning}");
        }
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
        let _supervisor = Supervisor::new(config.projects, config.settings, state).start();
        shutdown_signal().await;
        log::info!("🛑 Shutting down");
        System::current().stop();
    });
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
