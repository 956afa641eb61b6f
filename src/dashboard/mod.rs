//! The dashboard: the page a person keeps open on a second screen, at `GET /`.
//!
//! Served by the same actix-web server as `/healthz` and `/metrics`
//! ([`crate::http`]), which registers these routes with [`configure`] and
//! puts [`auth::gate`] in front of everything:
//!
//! - `GET /`: the page, drawn on the server ([`render`]), readable without
//!   JavaScript; `?project=..&kind=..` narrows the timeline;
//! - `GET /dashboard.css`, `GET /dashboard.js`: the only other files, from
//!   `assets/`, inside the binary (no CDN, nothing fetched at run time);
//! - `GET /events`: server-sent events with the parts of the page that
//!   changed ([`stream`]); the script closes it while the tab is hidden;
//! - `GET /login`, `POST /login`, `POST /logout`: the session cookie
//!   ([`auth`]);
//! - `POST /actions/{retry-job,retry-group,reset-job,worker-offline}`: a
//!   person's actions, only with `MONITOR_ADMIN_TOKEN` ([`actions`]).
//!
//! What the checks know comes from memory ([`MonitorState`], with its
//! history and timeline); the rest is read only while someone looks
//! ([`live`]).

pub mod actions;
pub mod auth;
pub mod chart;
pub mod live;
pub mod render;
pub mod stream;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::Recipient;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use registre_actors::worker_reaper::WorkersDied;
use registre_actors::{MonitorState, Project, Settings};

use crate::serve::liveness::Liveness;
use auth::{Access, Auth, Level};
use live::Live;
use render::{Filter, View};

/// The stylesheet and the script, compiled in.
pub const CSS: &str = include_str!("assets/dashboard.css");
pub const JS: &str = include_str!("assets/dashboard.js");

/// How long a page request waits for the live reads before drawing with
/// what it has (a project down must not hold the page).
const PAGE_WAIT: Duration = Duration::from_millis(1500);

/// What the dashboard's handlers share.
pub struct Dashboard {
    pub state: MonitorState,
    pub settings: Arc<Settings>,
    pub liveness: Liveness,
    /// Project name -> connection string with the password hidden.
    pub urls: BTreeMap<String, String>,
    pub live: Arc<Live>,
    pub auth: Auth,
    /// Where a worker marked offline by a person is announced, so the
    /// other projects free its jobs too (the Supervisor).
    pub deaths: Option<Recipient<WorkersDied>>,
    /// Whether the actor tree's root is still there.
    pub tree_alive: Box<dyn Fn() -> bool + Send + Sync>,
}

impl Dashboard {
    pub fn new(
        liveness: Liveness,
        projects: &[Project],
        access: Access,
        deaths: Option<Recipient<WorkersDied>>,
        tree_alive: Box<dyn Fn() -> bool + Send + Sync>,
    ) -> Dashboard {
        Dashboard {
            state: liveness.state.clone(),
            settings: liveness.settings.clone(),
            urls: projects
                .iter()
                .map(|p| (p.name.clone(), p.shown.clone()))
                .collect(),
            live: Arc::new(Live::new(projects, &liveness.settings)),
            liveness,
            auth: Auth::new(access),
            deaths,
            tree_alive,
        }
    }

    /// The tree's health, as `/healthz` judges it.
    pub fn health(&self) -> Result<(), Vec<String>> {
        if !(self.tree_alive)() {
            return Err(vec!["the Supervisor actor is gone".into()]);
        }
        self.liveness.check(Instant::now())
    }

    /// A drawing of the page for `level`, with the live reads `live`.
    pub fn view(
        &self,
        live: BTreeMap<String, live::Snapshot>,
        filter: Filter,
        level: Level,
    ) -> View<'_> {
        let projects = self.state.snapshot();
        let filter = filter.sanitize(projects.keys().map(String::as_str));
        View {
            dash: self,
            projects,
            live,
            filter,
            level,
            now_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            now: Instant::now(),
        }
    }

    /// The live reads, refreshed where stale, waiting at most `wait`: a
    /// read still running then finishes in the background for next time.
    pub async fn live_within(&self, wait: Duration) -> BTreeMap<String, live::Snapshot> {
        let live = self.live.clone();
        let reads = actix_rt::spawn(async move { live.all().await });
        match tokio::time::timeout(wait, reads).await {
            Ok(Ok(all)) => all,
            _ => self.live.cached(),
        }
    }

    /// The metrics of the dashboard itself, for `/metrics`.
    pub fn collector(&self) -> Box<dyn Collector> {
        Box::new(DashboardCollector {
            live: self.live.clone(),
        })
    }
}

/// Registers the dashboard's routes (the gate is `wrap`ped by the caller).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(page))
        .route("/dashboard.css", web::get().to(css))
        .route("/dashboard.js", web::get().to(js))
        .route("/events", web::get().to(stream::events))
        .route("/login", web::get().to(login_form))
        .route("/login", web::post().to(login))
        .route("/logout", web::post().to(logout))
        .route("/actions/{action}", web::post().to(actions::act));
}

async fn page(
    dash: web::Data<Dashboard>,
    req: HttpRequest,
    filter: web::Query<Filter>,
) -> HttpResponse {
    let level = dash.auth.level(req.headers());
    // A page request is someone looking: the live reads are refreshed.
    let live = dash.live_within(PAGE_WAIT).await;
    let html = dash.view(live, filter.into_inner(), level).page();
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html)
}

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Cache-Control", "no-cache"))
        .body(body)
}

async fn css() -> HttpResponse {
    asset("text/css; charset=utf-8", CSS)
}

async fn js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", JS)
}

async fn login_form(dash: web::Data<Dashboard>) -> HttpResponse {
    if dash.auth.open_viewing() && !dash.auth.actions_enabled() {
        return see_other("/");
    }
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(render::login_page(None))
}

fn see_other(to: &'static str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header(("Location", to))
        .finish()
}

#[derive(Debug, serde::Deserialize)]
struct LoginForm {
    token: String,
}

/// Sets the session cookie for the token given, if it is one.
async fn login(
    dash: web::Data<Dashboard>,
    req: HttpRequest,
    form: web::Form<LoginForm>,
) -> HttpResponse {
    let page = |code: StatusCode, why: &str| {
        HttpResponse::build(code)
            .content_type("text/html; charset=utf-8")
            .body(render::login_page(Some(why)))
    };
    if let Some(why) = auth::cross_site(req.headers()) {
        return page(StatusCode::FORBIDDEN, why);
    }
    let level = dash.auth.level_of_token(form.token.trim());
    if level == Level::None {
        let from = req
            .peer_addr()
            .map_or("unknown".to_string(), |a| a.ip().to_string());
        log::warn!(from = from.as_str(); "🔒 Dashboard login refused: wrong token");
        return page(StatusCode::UNAUTHORIZED, "Wrong token.");
    }
    HttpResponse::SeeOther()
        .insert_header(("Location", "/"))
        .insert_header(("Set-Cookie", secure(&req, dash.auth.session_cookie(level))))
        .finish()
}

async fn logout(dash: web::Data<Dashboard>, req: HttpRequest) -> HttpResponse {
    if let Some(why) = auth::cross_site(req.headers()) {
        return auth::refusal(StatusCode::FORBIDDEN, why);
    }
    HttpResponse::SeeOther()
        .insert_header(("Location", "/"))
        .insert_header((
            "Set-Cookie",
            secure(&req, dash.auth.session_cookie(Level::None)),
        ))
        .finish()
}

/// `cookie`, marked `Secure` when the page came over HTTPS (through a proxy
/// that says so in `X-Forwarded-Proto`): the browser then never sends it in
/// clear. Served over plain HTTP (loopback), it could not be `Secure`.
fn secure(req: &HttpRequest, cookie: String) -> String {
    let https = req.connection_info().scheme() == "https";
    if https {
        format!("{cookie}; Secure")
    } else {
        cookie
    }
}

/// `dashboard_viewers` (open event streams), `dashboard_pools_open`, and
/// `dashboard_statements_total{environment}`: every statement the
/// dashboard sent (its reads, probes and actions), none of the checks'.
#[derive(Debug)]
struct DashboardCollector {
    live: Arc<Live>,
}

impl Collector for DashboardCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, help, value) in [
            (
                "dashboard_viewers",
                "Dashboard event streams open now",
                self.live.viewers(),
            ),
            (
                "dashboard_pools_open",
                "Dashboard connection pools open now (one connection at most each)",
                self.live.open_pools(),
            ),
        ] {
            let gauge = ConstGauge::new(value as i64);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let mut family = encoder.encode_descriptor(
            "dashboard_statements",
            "Statements the dashboard sent (live reads, probes, actions)",
            None,
            MetricType::Counter,
        )?;
        for name in self.live.names() {
            let labels = [("environment", name)];
            let counter = ConstCounter::new(self.live.statements(name));
            counter.encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
