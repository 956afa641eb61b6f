//! The HTTP endpoints: how people and machines watch the monitor.
//!
//! Served by actix-web inside the monitor's own actix System, on one worker
//! thread, with actix-web's signal handling off (`run` owns SIGTERM):
//!
//! - `GET /healthz`: 200 while the actor tree is alive and every check ticks
//!   (see [`crate::serve::liveness`]), else 503 with the reasons;
//! - `GET /readyz`: 200 while every project is ready (reached at least
//!   once, and no check failing for a reason retrying will not fix), else
//!   503 naming each project that is not and why;
//! - `GET /metrics`: Prometheus text ([`crate::serve::metrics`]);
//! - `GET /status`: a JSON snapshot of every project, without secrets;
//! - `POST /debug/fault?environment=..&actor=..&fault=panic|hang`: a drill
//!   hook, served only when `MONITOR_ENABLE_FAULT_INJECTION=true`, that
//!   makes one check of one project panic or hang;
//! - `GET /` and the rest of the dashboard ([`crate::dashboard`]), whose
//!   gate also guards the routes above but `/healthz` and `/readyz` when
//!   `MONITOR_HTTP_TOKEN` is set.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use actix::Addr;
use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use registre_actors::state::{CheckState, ProjectState};
use registre_actors::{ActorKind, ChildKind, Fault, InjectFault, Project, Supervisor};
use serde_json::{Value, json};

use crate::config::HttpSettings;
use crate::dashboard::{self, Dashboard};
use crate::serve::liveness::Liveness;
use crate::serve::metrics::{CONTENT_TYPE, Metrics};

/// How long a stopping server waits for requests in flight.
const SHUTDOWN_TIMEOUT_SECS: u64 = 5;

/// What the handlers read.
struct Shared {
    liveness: Liveness,
    metrics: Metrics,
    supervisor: Addr<Supervisor>,
    /// Project name -> its connection as shown (no password).
    urls: BTreeMap<String, String>,
    fault_injection: bool,
}

/// Binds `addr` (before anything else starts, so a taken port stops
/// start-up at once) and says where it listens: port 0 picks a free one.
pub fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), String> {
    let listener = TcpListener::bind(addr).map_err(|e| {
        format!(
            "MONITOR_HTTP_ADDR={addr} cannot be listened on: {e}; expected a free address on this host, or off"
        )
    })?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("MONITOR_HTTP_ADDR={addr}: {e}"))?;
    Ok((listener, bound))
}

/// Serves the endpoints on `listener`; stop it through the handle.
pub fn serve(
    listener: TcpListener,
    liveness: Liveness,
    supervisor: Addr<Supervisor>,
    projects: &[Project],
    http: &HttpSettings,
) -> std::io::Result<ServerHandle> {
    let fault_injection = http.fault_injection;
    let tree = supervisor.clone();
    let dashboard = web::Data::new(Dashboard::new(
        liveness.clone(),
        projects,
        http.access.clone(),
        Some(supervisor.clone().recipient()),
        Box::new(move || tree.connected()),
    ));
    let shared = web::Data::from(Arc::new(Shared {
        metrics: Metrics::new(liveness.state.clone()).with(dashboard.collector()),
        liveness,
        supervisor,
        urls: projects
            .iter()
            .map(|p| (p.name.clone(), p.shown.clone()))
            .collect(),
        fault_injection,
    }));
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .wrap(actix_web::middleware::from_fn(dashboard::auth::gate))
            .app_data(dashboard.clone())
            .configure(dashboard::configure)
            .app_data(shared.clone())
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(metrics))
            .route("/status", web::get().to(status))
            .route("/debug/fault", web::post().to(fault))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
    .listen(listener)?
    .run();
    let handle = server.handle();
    actix_rt::spawn(async move {
        if let Err(e) = server.await {
            log::error!("HTTP server stopped: {e}");
        }
    });
    Ok(handle)
}

fn json_response(code: StatusCode, body: Value) -> HttpResponse {
    HttpResponse::build(code).json(body)
}

/// The tree's health, as `/healthz` and `/status` report it.
fn health(shared: &Shared) -> Result<(), Vec<String>> {
    if !shared.supervisor.connected() {
        return Err(vec!["the Supervisor actor is gone".into()]);
    }
    shared.liveness.check(Instant::now())
}

async fn healthz(shared: web::Data<Shared>) -> HttpResponse {
    match health(&shared) {
        Ok(()) => json_response(StatusCode::OK, json!({ "status": "ok" })),
        Err(problems) => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "status": "unhealthy", "problems": problems }),
        ),
    }
}

async fn readyz(shared: web::Data<Shared>) -> HttpResponse {
    let snapshot = shared.liveness.state.snapshot();
    let not_ready: serde_json::Map<String, Value> = snapshot
        .iter()
        .filter_map(|(name, p)| Some((name.clone(), Value::String(p.not_ready()?))))
        .collect();
    if not_ready.is_empty() {
        return json_response(StatusCode::OK, json!({ "status": "ready" }));
    }
    let not_reached: Vec<&String> = snapshot
        .iter()
        .filter(|(_, p)| !p.ever_reached)
        .map(|(name, _)| name)
        .collect();
    json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({ "status": "not ready", "notReady": not_ready, "notReached": not_reached }),
    )
}

async fn metrics(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(shared.metrics.render())
}

/// `x` rounded to `decimals` places: what people read needs no more.
fn round(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

/// Unix time to the millisecond.
fn unix_seconds(t: SystemTime) -> Option<f64> {
    t.duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| round(d.as_secs_f64(), 3))
}

fn check_json(c: &CheckState, now: Instant) -> Value {
    json!({
        "runs": c.runs,
        "errors": c.errors,
        "restarts": c.restarts,
        "lastRunSecondsAgo": c.last_finished.map(|t| round(now.saturating_duration_since(t).as_secs_f64(), 1)),
        "lastSuccessUnix": c.last_success.and_then(unix_seconds),
        "lastDurationMs": c.last_duration.as_millis() as u64,
        "lastError": c.last_error.as_ref().map(|e| json!({
            "kind": e.kind(),
            "message": e.to_string(),
        })),
    })
}

fn project_json(url: Option<&String>, p: &ProjectState, now: Instant) -> Value {
    let checks: serde_json::Map<String, Value> = ChildKind::ALL
        .iter()
        .filter_map(|k| {
            let c = p.check(*k)?;
            Some((k.name().to_string(), check_json(c, now)))
        })
        .collect();
    let last_error = ChildKind::ALL.iter().find_map(|k| {
        let e = p.check(*k)?.last_error.as_ref()?;
        Some(json!({
            "check": k.name(),
            "kind": e.kind(),
            "message": e.to_string(),
        }))
    });
    json!({
        "url": url,
        "ready": p.not_ready().is_none(),
        "notReadyReason": p.not_ready(),
        "reachable": p.reachable,
        "everReached": p.ever_reached,
        "counts": p.last_counts,
        "anomalies": p.anomalies,
        "jobsReset": p.jobs_reset,
        "workersReaped": p.workers_reaped,
        "jobsReleased": p.jobs_released,
        "jobsFailed": p.jobs_failed,
        "ocrJobsReset": p.ocr_jobs_reset,
        "role": p.role.name(),
        "actingInstance": p.acting_instance,
        "environmentRestarts": p.checks.get(&ActorKind::Environment).map_or(0, |c| c.restarts),
        "lastError": last_error,
        "checks": checks,
    })
}

async fn status(shared: web::Data<Shared>) -> HttpResponse {
    let now = Instant::now();
    let projects: serde_json::Map<String, Value> = shared
        .liveness
        .state
        .snapshot()
        .iter()
        .map(|(name, p)| (name.clone(), project_json(shared.urls.get(name), p, now)))
        .collect();
    let problems = health(&shared).err().unwrap_or_default();
    json_response(
        StatusCode::OK,
        json!({
            "healthy": problems.is_empty(),
            "problems": problems,
            "ready": projects.values().all(|p| p["ready"] == true),
            "instance": shared.liveness.settings.instance_id,
            "alerts": shared.liveness.state.alert_counters().map(|c| json!({
                "sent": c.sent.load(Ordering::Relaxed),
                "failed": c.failed.load(Ordering::Relaxed),
                "dropped": c.dropped.load(Ordering::Relaxed),
                "suppressed": c.suppressed.load(Ordering::Relaxed),
            })),
            "projects": projects,
        }),
    )
}

#[derive(Debug, serde::Deserialize)]
struct FaultQuery {
    environment: String,
    actor: String,
    fault: String,
}

async fn fault(shared: web::Data<Shared>, query: web::Query<FaultQuery>) -> HttpResponse {
    if !shared.fault_injection {
        return json_response(
            StatusCode::NOT_FOUND,
            json!({ "error": "fault injection is off; set MONITOR_ENABLE_FAULT_INJECTION=true to drill" }),
        );
    }
    let q = query.into_inner();
    let Some(child) = ChildKind::from_name(&q.actor) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({ "error": "actor must be LeaderElection, StuckJobResetter, WorkerReaper or HealthReporter" }),
        );
    };
    let fault = match q.fault.as_str() {
        "panic" => Fault::Panic,
        "hang" => Fault::Hang,
        _ => {
            return json_response(
                StatusCode::BAD_REQUEST,
                json!({ "error": "fault must be panic or hang" }),
            );
        }
    };
    if !shared.urls.contains_key(&q.environment) {
        return json_response(
            StatusCode::NOT_FOUND,
            json!({ "error": format!("no project named {:?}", q.environment) }),
        );
    }
    log::warn!(environment = q.environment.as_str(), actor = child.name(), fault = q.fault.as_str();
        "🧪 Fault injection requested over HTTP");
    shared.supervisor.do_send(InjectFault {
        project: q.environment.clone(),
        child,
        fault,
    });
    json_response(
        StatusCode::ACCEPTED,
        json!({ "injected": q.fault, "environment": q.environment, "actor": child.name() }),
    )
}
