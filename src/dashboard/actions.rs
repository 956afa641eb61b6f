//! `POST /actions/{action}`: what a person may do from the page.
//!
//! Only with `MONITOR_ADMIN_TOKEN` set, and only for a request
//! [`Auth::admit_action`](super::auth::Auth::admit_action) lets through
//! (checked before the body is read). The body is JSON naming the project
//! and the state the person saw; each action is one guarded statement of
//! [`sql::dashboard`](registre_actors::sql::dashboard), so rows that moved
//! on since are left alone. What changed is logged at WARN, put on the
//! timeline and alerted, like the monitor's own actions.
//!
//! - `retry-job` `{project, id, seen}`: a failed job back to waiting,
//!   attempts from zero, if its `updated_at` is still `seen`;
//! - `retry-group` `{project, key, seen, count}`: every job still failed
//!   with that message (`key`) up to the last failure seen;
//! - `reset-job` `{project, id, worker, started}`: a processing job back to
//!   waiting now, if the same worker holds it since the same start;
//! - `worker-offline` `{project, worker, seen}`: the worker marked offline
//!   and its jobs freed here (and, as for a reaped worker, in every other
//!   project), if its heartbeat is still `seen`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use registre_actors::alerts::Alert;
use registre_actors::events::Event;
use registre_actors::sql::ReleasedJob;
use registre_actors::sql::dashboard::{self as statements, Changed, ChangedJob};
use registre_actors::worker_reaper::WorkersDied;
use serde::Deserialize;
use serde_json::json;

use super::Dashboard;
use super::auth::Refusal;

/// Longest body accepted.
const BODY_MAX: usize = 4096;

/// Any action's body; each action reads the fields it needs.
#[derive(Debug, Deserialize)]
struct Body {
    project: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    seen: Option<String>,
    #[serde(default)]
    worker: Option<String>,
    #[serde(default)]
    started: Option<String>,
    #[serde(default)]
    count: Option<String>,
}

fn bad(why: &str) -> Refusal {
    Refusal::new(StatusCode::BAD_REQUEST, why)
}

/// A job id as the database writes it.
fn uuid_shaped(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// A timestamp as the page got it: short, plain characters.
fn timestamp_shaped(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || " :.+-TZ".contains(c))
}

fn required<'a>(field: &'a Option<String>, name: &str) -> Result<&'a str, Refusal> {
    field
        .as_deref()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| bad(&format!("missing {name}")))
}

fn as_released(jobs: &[ChangedJob]) -> Vec<ReleasedJob> {
    jobs.iter()
        .map(|j| ReleasedJob {
            id: j.id.clone(),
            worker: j.worker.clone(),
            doc: j.doc.clone(),
            seconds: j.seconds.unwrap_or(0),
            attempts: None,
            failed: false,
        })
        .collect()
}

/// The handler.
pub async fn act(
    dash: web::Data<Dashboard>,
    req: HttpRequest,
    action: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    if let Err(refused) = dash.auth.admit_action(&req) {
        return refused.response();
    }
    if body.len() > BODY_MAX {
        return bad("body too large").response();
    }
    let body: Body = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return bad(&format!("expected a JSON body: {e}")).response(),
    };
    let project = body.project.as_str();
    if !dash.urls.contains_key(project) {
        return Refusal::new(
            StatusCode::NOT_FOUND,
            format!("no project named {project:?}"),
        )
        .response();
    }
    let from = req
        .peer_addr()
        .map_or("unknown".to_string(), |a| a.ip().to_string());
    match run(&dash, action.as_str(), &body).await {
        Ok(Err(refused)) => refused.response(),
        Err(e) => {
            let message = e.to_string();
            log::error!(environment = project, action = action.as_str(), from = from.as_str();
                "❌ Dashboard action failed: {message}");
            Refusal::new(StatusCode::BAD_GATEWAY, message).response()
        }
        Ok(Ok((changed, what))) => report(&dash, project, &action, &from, &changed, what),
    }
}

/// What an action did, in words: (what changed, the event's text).
struct What {
    /// Past tense, with the count: "retried 3 failed jobs".
    done: String,
    /// Said when nothing changed.
    nothing: &'static str,
    /// The worker marked offline, if any.
    worker: Option<String>,
}

type Outcome = Result<Result<(Changed, What), Refusal>, registre_actors::DbError>;

async fn run(dash: &Dashboard, action: &str, body: &Body) -> Outcome {
    let project = body.project.as_str();
    let Some(db) = dash.live.database(project) else {
        return Ok(Err(bad("unknown project")));
    };
    let count = |n: u64, one: &str, many: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {many}")
        }
    };
    match action {
        "retry-job" | "retry-group" => {
            let seen = match required(&body.seen, "seen") {
                Ok(s) if timestamp_shaped(s) => s,
                Ok(_) => return Ok(Err(bad("seen is not a timestamp"))),
                Err(r) => return Ok(Err(r)),
            };
            let attempts = dash.live.attempts_column(project).await?;
            let changed = if action == "retry-job" {
                let id = match required(&body.id, "id") {
                    Ok(id) if uuid_shaped(id) => id,
                    Ok(_) => return Ok(Err(bad("id is not a job id"))),
                    Err(r) => return Ok(Err(r)),
                };
                dash.live.count_statement(project);
                statements::retry_failed_job(&db, id, seen, attempts.as_ref()).await?
            } else {
                let key = match required(&body.key, "key") {
                    Ok(k)
                        if k == "null"
                            || (k.len() == 32 && k.bytes().all(|b| b.is_ascii_hexdigit())) =>
                    {
                        k
                    }
                    Ok(_) => return Ok(Err(bad("key is not a group key"))),
                    Err(r) => return Ok(Err(r)),
                };
                dash.live.count_statement(project);
                statements::retry_failed_group(&db, key, seen, attempts.as_ref()).await?
            };
            let mut done = format!(
                "retried {}",
                count(changed.count, "failed job", "failed jobs")
            );
            if let Some(shown) = body.count.as_deref().and_then(|c| c.parse::<u64>().ok())
                && shown > changed.count
            {
                done.push_str(&format!(
                    " (of {shown} shown: the others changed since the page showed them)"
                ));
            }
            let nothing = if action == "retry-job" {
                "nothing retried: the job changed since the page showed it"
            } else {
                "nothing retried: those jobs changed since the page showed them"
            };
            Ok(Ok((
                changed,
                What {
                    done,
                    nothing,
                    worker: None,
                },
            )))
        }
        "reset-job" => {
            let id = match required(&body.id, "id") {
                Ok(id) if uuid_shaped(id) => id,
                Ok(_) => return Ok(Err(bad("id is not a job id"))),
                Err(r) => return Ok(Err(r)),
            };
            if let Some(s) = &body.started
                && !timestamp_shaped(s)
            {
                return Ok(Err(bad("started is not a timestamp")));
            }
            dash.live.count_statement(project);
            let changed = statements::reset_processing_job(
                &db,
                id,
                body.worker.as_deref(),
                body.started.as_deref(),
            )
            .await?;
            let done = format!(
                "reset {}",
                count(changed.count, "processing job", "processing jobs")
            );
            Ok(Ok((
                changed,
                What {
                    done,
                    nothing: "nothing reset: the job is no longer held as the page showed it",
                    worker: None,
                },
            )))
        }
        "worker-offline" => {
            let worker = match required(&body.worker, "worker") {
                Ok(w) if w.len() <= 200 => w,
                Ok(_) => return Ok(Err(bad("worker id too long"))),
                Err(r) => return Ok(Err(r)),
            };
            let seen = body.seen.as_deref().filter(|s| !s.is_empty());
            if seen.is_some_and(|s| !timestamp_shaped(s)) {
                return Ok(Err(bad("seen is not a timestamp")));
            }
            dash.live.count_statement(project);
            let changed = statements::mark_worker_offline(&db, worker, seen).await?;
            let done = format!(
                "marked worker {worker} offline and released {}",
                count(changed.count, "job", "jobs")
            );
            let gone = changed.worker.clone();
            Ok(Ok((
                changed,
                What {
                    done,
                    nothing: "nothing done: the worker heartbeated (or went offline) since the page showed it",
                    worker: gone,
                },
            )))
        }
        _ => Ok(Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "no such action; expected retry-job, retry-group, reset-job or worker-offline",
        ))),
    }
}

/// Logs, records, alerts and answers what an action did.
fn report(
    dash: &Dashboard,
    project: &str,
    action: &str,
    from: &str,
    changed: &Changed,
    what: What,
) -> HttpResponse {
    dash.live.invalidate(project);
    let acted = changed.count > 0 || what.worker.is_some();
    if !acted {
        log::info!(environment = project, action = action, from = from;
            "🖐️  Dashboard action changed nothing: {}", what.nothing);
        return HttpResponse::Ok().json(json!({
            "count": 0,
            "message": what.nothing,
        }));
    }
    let jobs = as_released(&changed.jobs);
    let summary = registre_actors::report::summarize(&jobs);
    let text = format!("🖐️  From the dashboard: {}", what.done);
    log::warn!(environment = project, action = action, count = changed.count,
        jobs:serde = summary, from = from; "{text}");
    let mut event = Event::new(project, "dashboard", &text).jobs(&jobs);
    event.count = changed.count;
    if let Some(worker) = &what.worker {
        event = event.workers(std::slice::from_ref(worker));
        event.count = changed.count;
    }
    dash.state.event(event);
    dash.state.alert(
        Alert::new(project, "dashboard_action", format!("[{project}] {text}"))
            .field("action", action)
            .field("count", changed.count)
            .field("jobs", serde_json::to_value(&summary).unwrap_or_default()),
    );
    if let (Some(worker), Some(deaths)) = (&what.worker, &dash.deaths) {
        // As for a worker the reaper found dead: every project frees its
        // jobs (its id is never reused).
        deaths.do_send(WorkersDied {
            from: project.to_string(),
            workers: vec![worker.clone()],
        });
    }
    HttpResponse::Ok().json(json!({
        "count": changed.count,
        "message": format!("Done: {}.", what.done),
        "jobs": changed.jobs,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_timestamps_are_checked_before_any_statement() {
        assert!(uuid_shaped("0b7c3e0e-7d1f-4c57-9a3e-1d2f3a4b5c6d"));
        assert!(!uuid_shaped("0b7c3e0e-7d1f-4c57-9a3e-1d2f3a4b5c6"));
        assert!(!uuid_shaped("0b7c3e0e-7d1f-4c57-9a3e-1d2f3a4b5c6'"));
        assert!(timestamp_shaped("2026-11-29T14:02:11.123456+00:00"));
        assert!(!timestamp_shaped("2026-11-29'; DROP TABLE x; --"));
        assert!(!timestamp_shaped(""));
    }
}
