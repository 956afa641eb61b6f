//! The page, drawn on the server: readable without JavaScript.
//!
//! [`View::page`] is the whole document; [`View::sections`] are its parts
//! that change (each an element with an `id`), which the event stream sends
//! again when they do and the page's script swaps in place. Every value
//! from the database or a log goes through [`escape`]. Times are written as
//! `<time data-at>` in UTC, which the script shows as "12 s ago".

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Instant;

use registre_actors::anomaly::Anomaly;
use registre_actors::events::{Event, KINDS};
use registre_actors::history::{COARSE_STEP_SECS, FINE_STEP_SECS};
use registre_actors::sql_dashboard::LiveRead;
use registre_actors::state::ProjectState;
use registre_actors::{ChildKind, DbError, Role};
use serde::Deserialize;

use super::Dashboard;
use super::auth::Level;
use super::chart;
use super::live::Snapshot;

/// Events shown in the timeline (the ring holds more; the filter reaches them).
pub const TIMELINE_SHOWN: usize = 100;

/// Text made safe for HTML, in text and in quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// (year, month, day) of a day count since 1970-01-01 (proleptic Gregorian).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `2026-11-29T14:02:11Z`.
pub fn iso(unix_secs: u64) -> String {
    let (y, m, d) = civil((unix_secs / 86_400) as i64);
    let s = unix_secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// `14:02` (UTC).
pub fn utc_hm(unix_secs: u64) -> String {
    let s = unix_secs % 86_400;
    format!("{:02}:{:02}", s / 3600, s / 60 % 60)
}

/// `14:02:11` (UTC).
fn utc_hms(unix_secs: u64) -> String {
    let s = unix_secs % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// A duration in words a person reads at a glance: `45 s`, `3 min 5 s`,
/// `2 h 5 min`, `3 d 4 h`.
pub fn human(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 if s % 60 == 0 || s >= 600 => format!("{} min", s / 60),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86_400 if s % 3600 < 60 => format!("{} h", s / 3600),
        3600..86_400 => format!("{} h {} min", s / 3600, s / 60 % 60),
        _ if s % 86_400 < 3600 => format!("{} d", s / 86_400),
        _ => format!("{} d {} h", s / 86_400, s / 3600 % 24),
    }
}

/// A moment, as `<time>`: UTC clock time, which the script turns into
/// "… ago" (and keeps up to date).
fn when(at_ms: u64) -> String {
    let secs = at_ms / 1000;
    format!(
        "<time data-at=\"{at_ms}\" datetime=\"{iso}\" title=\"{iso}\">{} UTC</time>",
        utc_hms(secs),
        iso = iso(secs)
    )
}

/// A job id as shown: its first 8 characters, the whole in the tooltip.
fn job_id(id: &str) -> String {
    format!(
        "<code title=\"{}\">{}</code>",
        escape(id),
        escape(id.get(..8).unwrap_or(id))
    )
}

/// What the timeline is narrowed to (`?project=..&kind=..`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Filter {
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
}

impl Filter {
    /// Keeps only a known project and a known kind.
    pub fn sanitize<'a>(self, mut projects: impl Iterator<Item = &'a str>) -> Filter {
        let project = self
            .project
            .filter(|p| !p.is_empty() && projects.any(|known| known == p));
        let kind = self
            .kind
            .filter(|k| KINDS.iter().any(|(known, _)| known == k));
        Filter { project, kind }
    }

    pub fn keeps(&self, e: &Event) -> bool {
        self.project.as_ref().is_none_or(|p| *p == e.project)
            && self.kind.as_ref().is_none_or(|k| k == e.kind)
    }
}

/// How a card, an event or the summary is coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tone {
    Ok,
    Warn,
    Bad,
}

impl Tone {
    fn class(self) -> &'static str {
        match self {
            Tone::Ok => "t-ok",
            Tone::Warn => "t-warn",
            Tone::Bad => "t-bad",
        }
    }
}

const ANOMALIES: [Anomaly; 3] = [
    Anomaly::NoActiveWorkers,
    Anomaly::TooManyProcessing,
    Anomaly::HighFailures,
];

/// A project's acting role, as a person reads it.
fn role(p: &ProjectState) -> String {
    match p.role {
        Role::Acting => "acting".into(),
        Role::Alone => "acting (no election)".into(),
        Role::StandingBy => match &p.acting_instance {
            Some(other) => format!("standing by ({} acts)", escape(other)),
            None => "standing by".into(),
        },
        Role::Backup => "healing as backup".into(),
        Role::Undecided => "role not decided yet".into(),
    }
}

/// The check whose last run failed, and its error.
fn failing(p: &ProjectState) -> Option<(&'static str, &DbError)> {
    ChildKind::ALL
        .iter()
        .find_map(|k| Some((k.name(), p.check(*k)?.last_error.as_ref()?)))
}

/// Red: unreachable, a check failing, or nobody working while jobs wait.
/// Amber: another anomaly, or not reached yet. Green otherwise.
pub fn tone(p: &ProjectState) -> Tone {
    let anomaly = |a: Anomaly| p.anomalies.iter().any(|n| n == a.name());
    if p.reachable == Some(false) || failing(p).is_some() || anomaly(Anomaly::NoActiveWorkers) {
        Tone::Bad
    } else if !p.anomalies.is_empty() || !p.ever_reached {
        Tone::Warn
    } else {
        Tone::Ok
    }
}

fn event_tone(kind: &str) -> Tone {
    match kind {
        "unreachable" | "failing" | "jobs_failed" | "anomaly" | "restart" => Tone::Bad,
        "recovered" | "anomaly_cleared" | "leadership" => Tone::Ok,
        _ => Tone::Warn,
    }
}

fn kind_label(kind: &str) -> &str {
    KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(kind, |(_, label)| label)
}

/// Everything one drawing of the page needs.
pub struct View<'a> {
    pub dash: &'a Dashboard,
    pub projects: BTreeMap<String, ProjectState>,
    pub live: BTreeMap<String, Snapshot>,
    pub filter: Filter,
    pub level: Level,
    /// Now, Unix milliseconds and monotonic.
    pub now_ms: u64,
    pub now: Instant,
}

/// An action button, for an admin session only.
struct Act<'a> {
    action: &'a str,
    project: &'a str,
    data: Vec<(&'a str, String)>,
    confirm: String,
    label: String,
}

impl View<'_> {
    fn admin(&self) -> bool {
        self.level == Level::Admin
    }

    fn button(&self, act: Act<'_>) -> String {
        if !self.admin() {
            return String::new();
        }
        let mut out = format!(
            "<button type=\"button\" class=\"act\" data-action=\"{}\" data-project=\"{}\" data-confirm=\"{}\"",
            act.action,
            escape(act.project),
            escape(&act.confirm)
        );
        for (k, v) in act.data {
            let _ = write!(out, " data-{k}=\"{}\"", escape(&v));
        }
        let _ = write!(out, ">{}</button>", escape(&act.label));
        out
    }

    /// The parts that change, by element id, in page order.
    pub fn sections(&self) -> Vec<(String, String)> {
        let mut out = vec![("summary".to_string(), self.summary())];
        for (name, p) in &self.projects {
            out.push((format!("card-{name}"), self.card(name, p)));
        }
        for name in self.projects.keys() {
            out.push((format!("chart-{name}"), self.chart(name)));
        }
        out.push(("timeline".to_string(), self.timeline()));
        for name in self.projects.keys() {
            out.push((format!("workers-{name}"), self.workers(name)));
        }
        for name in self.projects.keys() {
            out.push((format!("jobs-{name}"), self.jobs(name)));
        }
        out
    }

    fn summary(&self) -> String {
        let mut bad = Vec::new();
        let (mut warn, mut ok) = (0, 0);
        for (name, p) in &self.projects {
            match tone(p) {
                Tone::Bad => bad.push(name.as_str()),
                Tone::Warn => warn += 1,
                Tone::Ok => ok += 1,
            }
        }
        let overall = if !bad.is_empty() {
            Tone::Bad
        } else if warn > 0 {
            Tone::Warn
        } else {
            Tone::Ok
        };
        let health = match self.dash.health() {
            Ok(()) => "monitor healthy".to_string(),
            Err(problems) => format!("monitor unhealthy: {}", escape(&problems.join("; "))),
        };
        let trouble = if bad.is_empty() {
            "none in trouble".to_string()
        } else {
            let links: Vec<String> = bad
                .iter()
                .map(|n| format!("<a href=\"#card-{0}\">{0}</a>", escape(n)))
                .collect();
            format!("in trouble: {}", links.join(", "))
        };
        format!(
            "<p id=\"summary\" class=\"summary {}\">{} project{}: {trouble} · {warn} to watch · {ok} fine · {health}</p>",
            overall.class(),
            self.projects.len(),
            if self.projects.len() == 1 { "" } else { "s" },
        )
    }

    fn card(&self, name: &str, p: &ProjectState) -> String {
        let t = tone(p);
        let mut out = format!(
            "<article id=\"card-{n}\" class=\"card {}\" data-project=\"{n}\"><h3>{n} <span class=\"role\">{}</span></h3>",
            t.class(),
            role(p),
            n = escape(name)
        );
        let state = match (p.reachable, failing(p)) {
            (Some(false), Some((_, e))) => {
                format!("<b>Unreachable</b>: {}", escape(&e.to_string()))
            }
            (Some(false), None) => "<b>Unreachable</b>".to_string(),
            (_, Some((check, e))) => format!("<b>{check} failing</b>: {}", escape(&e.to_string())),
            (None, None) => "Not reached yet".to_string(),
            (Some(true), None) => "Reachable".to_string(),
        };
        let ready = if p.ever_reached { "ready" } else { "not ready" };
        let _ = write!(out, "<p class=\"state\">{state} · {ready}</p>");
        out.push_str("<dl class=\"counts\">");
        let c = p.last_counts;
        for (label, value) in [
            ("Waiting", c.map(|c| c.pending_jobs)),
            ("Processing", c.map(|c| c.processing_jobs)),
            ("Failed", c.map(|c| c.error_jobs)),
            ("Active workers", c.map(|c| c.active_workers)),
        ] {
            let v = value.map_or("–".to_string(), |v| v.to_string());
            let _ = write!(
                out,
                "<div><dt>{label}</dt><dd data-count=\"{}\">{v}</dd></div>",
                label.to_ascii_lowercase().replace(' ', "-")
            );
        }
        out.push_str("</dl>");
        let active: Vec<&str> = ANOMALIES
            .iter()
            .filter(|a| p.anomalies.iter().any(|n| n == a.name()))
            .map(|a| a.message())
            .collect();
        if !active.is_empty() {
            out.push_str("<ul class=\"anomalies\">");
            for message in active {
                let _ = write!(out, "<li>{}</li>", escape(message));
            }
            out.push_str("</ul>");
        }
        let _ = write!(
            out,
            "<p class=\"done\">Since start: {} reset · {} reaped · {} released · {} failed out</p>",
            p.jobs_reset + p.ocr_jobs_reset,
            p.workers_reaped,
            p.jobs_released,
            p.jobs_failed
        );
        out.push_str("<ul class=\"checks\">");
        for kind in ChildKind::ALL {
            let Some(c) = p.check(kind) else {
                let _ = write!(out, "<li>{}: not run yet</li>", kind.name());
                continue;
            };
            let last = c.last_finished.map_or("never".to_string(), |t| {
                let ago = self.now.saturating_duration_since(t).as_millis() as u64;
                // In whole seconds: two drawings of the same run then
                // match, and the stream does not send the card again.
                let at = self.now_ms.saturating_sub(ago);
                when(at - at % 1000)
            });
            let mark = if c.last_error.is_some() {
                " class=\"err\""
            } else {
                ""
            };
            let _ = write!(out, "<li{mark}>{}: last ran {last}", kind.name());
            if c.restarts > 0 {
                let _ = write!(out, " · restarted {}×", c.restarts);
            }
            out.push_str("</li>");
        }
        out.push_str("</ul>");
        if let Some(url) = self.dash.urls.get(name) {
            let _ = write!(out, "<p class=\"url\">{}</p>", escape(url));
        }
        out.push_str("</article>");
        out
    }

    fn chart(&self, name: &str) -> String {
        // Drawn as of the start of the current slot: the drawing changes
        // when a slot does, not at every tick of the event stream.
        let now = self.now_ms / 1000;
        let (now, day_now) = (now - now % FINE_STEP_SECS, now - now % COARSE_STEP_SECS);
        let series = self.dash.state.history().series(name, now);
        let n = escape(name);
        // Each chart spans what there is (a monitor started ten minutes ago
        // has ten minutes to show), in whole units, up to its full length.
        let span = |points: &[registre_actors::history::Point], unit: u64, full: u64| {
            let since = points
                .first()
                .map_or(0, |p| now.saturating_sub(u64::from(p.at)));
            (since / unit + 1).saturating_mul(unit).clamp(unit, full)
        };
        let hour = span(&series.hour, 60, 3600);
        let day = span(&series.day, 3600, 86_400);
        let axis = |span: u64| {
            format!(
                "<div class=\"axis\"><span>−{}</span><span>−{}</span><span>now</span></div>",
                human(span as i64),
                human((span / 2) as i64)
            )
        };
        format!(
            "<figure id=\"chart-{n}\" class=\"block\"><figcaption>{n}: last {}</figcaption>\
             <div class=\"legend\">{}</div>{}{}\
             <details id=\"day-{n}\"><summary>Last {}</summary><div class=\"legend\">{}</div>{}{}</details></figure>",
            human(hour as i64),
            chart::legend(&series.hour),
            chart::svg(
                &series.hour,
                now,
                hour,
                FINE_STEP_SECS,
                &format!("{name}: queue over the last {}", human(hour as i64))
            ),
            axis(hour),
            human(day as i64),
            chart::legend(&series.day),
            chart::svg(
                &series.day,
                day_now,
                day,
                COARSE_STEP_SECS,
                &format!("{name}: queue over the last {}", human(day as i64))
            ),
            axis(day),
        )
    }

    fn timeline(&self) -> String {
        let events = self
            .dash
            .state
            .timeline()
            .recent(TIMELINE_SHOWN, |e| self.filter.keeps(e));
        let mut out = String::from("<ol id=\"timeline\" class=\"timeline\">");
        if events.is_empty() {
            out.push_str("<li class=\"muted\">Nothing yet.</li>");
        }
        for e in &events {
            let _ = write!(
                out,
                "<li class=\"ev {}\" data-project=\"{}\" data-kind=\"{}\"><div class=\"ev-head\">{} \
                 <span class=\"proj\">{}</span> <span class=\"kind\">{}</span></div><div class=\"ev-text\">{}",
                event_tone(e.kind).class(),
                escape(&e.project),
                e.kind,
                when(e.at_ms),
                escape(&e.project),
                escape(kind_label(e.kind)),
                escape(&e.text),
            );
            if e.count > 0 {
                let _ = write!(out, ": {}", e.count);
            }
            out.push_str("</div>");
            if !e.workers.is_empty() {
                let names: Vec<String> = e
                    .workers
                    .iter()
                    .map(|w| format!("<code>{}</code>", escape(w)))
                    .collect();
                let _ = write!(
                    out,
                    "<p class=\"ev-workers\">Workers: {}</p>",
                    names.join(", ")
                );
            }
            if !e.jobs.is_empty() {
                out.push_str("<ul class=\"ev-jobs\">");
                for j in &e.jobs {
                    let _ = write!(
                        out,
                        "<li>{} {} · {} · {} in processing",
                        job_id(&j.id),
                        escape(&j.doc),
                        j.worker
                            .as_deref()
                            .map_or("no worker".to_string(), |w| format!(
                                "<code>{}</code>",
                                escape(w)
                            )),
                        human(j.seconds)
                    );
                    if let Some(a) = j.attempts {
                        let _ = write!(out, " · attempt {a}");
                    }
                    if j.failed {
                        out.push_str(" · <b>failed</b>");
                    }
                    out.push_str("</li>");
                }
                out.push_str("</ul>");
                if e.count > e.jobs.len() as u64 {
                    let _ = write!(
                        out,
                        "<p class=\"muted\">and {} more</p>",
                        e.count - e.jobs.len() as u64
                    );
                }
            }
            out.push_str("</li>");
        }
        out.push_str("</ol>");
        out
    }

    /// The project's live read, or the words for its absence.
    fn live_read(&self, name: &str) -> Result<&LiveRead, String> {
        match self.live.get(name) {
            None => {
                Err("<p class=\"muted\">Not read yet: it is read while someone looks.</p>".into())
            }
            Some(Snapshot { result: Err(e), .. }) => Err(format!(
                "<p class=\"err\">Could not read: {}</p>",
                escape(&e.to_string())
            )),
            Some(Snapshot { result: Ok(r), .. }) => Ok(r),
        }
    }

    fn workers(&self, name: &str) -> String {
        let n = escape(name);
        let mut out = format!("<div id=\"workers-{n}\" class=\"block\"><h3>{n}");
        let r = match self.live_read(name) {
            Ok(r) => r,
            Err(words) => return format!("{out}</h3>{words}</div>"),
        };
        let c = r.worker_counts;
        let _ = write!(
            out,
            " <small>{} alive · {} stale · {} dead · {} offline</small></h3>",
            c.alive, c.stale, c.dead, c.offline
        );
        if r.workers.is_empty() {
            out.push_str("<p class=\"muted\">No worker has registered.</p></div>");
            return out;
        }
        out.push_str(
            "<div class=\"scroll\"><table><thead><tr><th>Worker</th><th>Judged</th><th>Status</th>\
             <th>Heartbeat</th><th>Current job</th><th>Done</th><th>Failed</th>",
        );
        if self.admin() {
            out.push_str("<th></th>");
        }
        out.push_str("</tr></thead><tbody>");
        for w in &r.workers {
            let _ = write!(
                out,
                "<tr class=\"h-{h}\"><td><code>{}</code></td><td><span class=\"pill h-{h}\">{h}</span></td>\
                 <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
                escape(&w.id),
                escape(w.status.as_deref().unwrap_or("–")),
                w.heartbeat_age_seconds
                    .map_or("never".to_string(), |s| format!("{} ago", human(s))),
                w.current_job.as_deref().map_or("–".to_string(), job_id),
                w.jobs_completed.unwrap_or(0),
                w.jobs_failed.unwrap_or(0),
                h = escape(&w.health),
            );
            if self.admin() {
                out.push_str("<td>");
                if w.health != "offline" {
                    out.push_str(&self.button(Act {
                        action: "worker-offline",
                        project: name,
                        data: vec![
                            ("worker", w.id.clone()),
                            ("seen", w.last_heartbeat.clone().unwrap_or_default()),
                        ],
                        confirm: format!(
                            "Mark {} offline and put the jobs it holds in {name} back in the queue?",
                            w.id
                        ),
                        label: "Mark offline".into(),
                    }));
                }
                out.push_str("</td>");
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table></div></div>");
        out
    }

    fn jobs(&self, name: &str) -> String {
        let n = escape(name);
        let mut out = format!("<div id=\"jobs-{n}\" class=\"block\"><h3>{n}</h3>");
        let r = match self.live_read(name) {
            Ok(r) => r,
            Err(words) => return format!("{out}{words}</div>"),
        };
        let j = self.dash.live.judging();
        let _ = write!(
            out,
            "<h4>Processing for long: {} <small>(over {}; stuck, and reset by the monitor, over {})</small></h4>",
            r.long_jobs_count,
            human(j.long_after.as_secs() as i64),
            human(j.stuck_after.as_secs() as i64)
        );
        if r.long_jobs.is_empty() {
            out.push_str("<p class=\"muted\">None.</p>");
        } else {
            out.push_str(
                "<div class=\"scroll\"><table><thead><tr><th>Job</th><th>Document</th><th>Worker</th><th>Processing for</th>",
            );
            if self.admin() {
                out.push_str("<th></th>");
            }
            out.push_str("</tr></thead><tbody>");
            for job in &r.long_jobs {
                let stuck = if job.stuck {
                    " <span class=\"pill h-dead\">stuck</span>"
                } else {
                    ""
                };
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}{stuck}</td>",
                    job_id(&job.id),
                    escape(&job.doc),
                    job.worker
                        .as_deref()
                        .map_or("–".to_string(), |w| format!("<code>{}</code>", escape(w))),
                    human(job.seconds),
                );
                if self.admin() {
                    let mut data = vec![("id", job.id.clone())];
                    if let Some(w) = &job.worker {
                        data.push(("worker", w.clone()));
                    }
                    if let Some(s) = &job.started_at {
                        data.push(("started", s.clone()));
                    }
                    let _ = write!(
                        out,
                        "<td>{}</td>",
                        self.button(Act {
                            action: "reset-job",
                            project: name,
                            data,
                            confirm: format!(
                                "Put job {} ({}) back in the queue now?",
                                job.id.get(..8).unwrap_or(&job.id),
                                job.doc
                            ),
                            label: "Reset now".into(),
                        })
                    );
                }
                out.push_str("</tr>");
            }
            out.push_str("</tbody></table></div>");
        }
        let _ = write!(
            out,
            "<h4>Failed: {} <small>in {} group{} by error message</small></h4>",
            r.failed_total,
            r.failed_groups_count,
            if r.failed_groups_count == 1 { "" } else { "s" }
        );
        if r.failed_groups.is_empty() {
            out.push_str("<p class=\"muted\">None.</p></div>");
            return out;
        }
        out.push_str(
            "<div class=\"scroll\"><table class=\"groups\"><thead><tr><th>Error</th><th>Jobs</th>\
             <th>First seen</th><th>Last seen</th><th>Most recent</th>",
        );
        if self.admin() {
            out.push_str("<th></th>");
        }
        out.push_str("</tr></thead><tbody>");
        for g in &r.failed_groups {
            let message = g.message.as_deref().unwrap_or("(no message)");
            let _ = write!(
                out,
                "<tr data-group=\"{}\"><td><code class=\"msg\">{}</code></td><td class=\"num\">{}</td>\
                 <td>{} ago</td><td>{} ago</td><td><ul class=\"sample\">",
                escape(&g.key),
                escape(message),
                g.count,
                human(g.first_seen_ago),
                human(g.last_seen_ago),
            );
            for job in &g.jobs {
                let _ = write!(out, "<li>{} {}", escape(&job.doc), job_id(&job.id));
                out.push_str(&self.button(Act {
                    action: "retry-job",
                    project: name,
                    data: vec![("id", job.id.clone()), ("seen", job.updated_at.clone())],
                    confirm: format!(
                        "Retry job {} ({}): back to waiting, attempts from zero?",
                        job.id.get(..8).unwrap_or(&job.id),
                        job.doc
                    ),
                    label: "Retry".into(),
                }));
                out.push_str("</li>");
            }
            out.push_str("</ul></td>");
            if self.admin() {
                let _ = write!(
                    out,
                    "<td>{}</td>",
                    self.button(Act {
                        action: "retry-group",
                        project: name,
                        data: vec![
                            ("key", g.key.clone()),
                            ("seen", g.last_seen.clone()),
                            ("count", g.count.to_string()),
                        ],
                        confirm: format!(
                            "Retry the {} jobs of {name} that failed with this error: back to waiting, attempts from zero?",
                            g.count
                        ),
                        label: format!("Retry all {}", g.count),
                    })
                );
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table></div></div>");
        out
    }

    fn filter_form(&self) -> String {
        let mut out = String::from(
            "<form id=\"filter\" class=\"filter\" method=\"get\" action=\"/\"><label>Project <select name=\"project\"><option value=\"\">all</option>",
        );
        for name in self.projects.keys() {
            let selected = if self.filter.project.as_deref() == Some(name) {
                " selected"
            } else {
                ""
            };
            let _ = write!(
                out,
                "<option value=\"{n}\"{selected}>{n}</option>",
                n = escape(name)
            );
        }
        out.push_str(
            "</select></label> <label>Kind <select name=\"kind\"><option value=\"\">all</option>",
        );
        for (kind, label) in KINDS {
            let selected = if self.filter.kind.as_deref() == Some(kind) {
                " selected"
            } else {
                ""
            };
            let _ = write!(
                out,
                "<option value=\"{kind}\"{selected}>{}</option>",
                escape(label)
            );
        }
        out.push_str("</select></label> <button type=\"submit\">Filter</button></form>");
        out
    }

    fn account(&self) -> String {
        let auth = &self.dash.auth;
        let logout = "<form method=\"post\" action=\"/logout\" class=\"inline\"><button type=\"submit\">Log out</button></form>";
        match self.level {
            Level::Admin => format!("<span class=\"who\">admin: actions on</span> {logout}"),
            Level::View if auth.actions_enabled() && auth.open_viewing() => {
                "<span class=\"who\">read-only</span> <a href=\"/login\">Log in to act</a>".into()
            }
            Level::View if auth.actions_enabled() => format!(
                "<span class=\"who\">viewer</span> <a href=\"/login\">Log in as admin</a> {logout}"
            ),
            Level::View if !auth.open_viewing() => {
                format!("<span class=\"who\">viewer</span> {logout}")
            }
            _ => "<span class=\"who\">read-only</span>".into(),
        }
    }

    /// The whole document.
    pub fn page(&self) -> String {
        let sections: BTreeMap<String, String> = self.sections().into_iter().collect();
        let take = |id: &str| sections.get(id).cloned().unwrap_or_default();
        let names: Vec<&String> = self.projects.keys().collect();
        let group = |prefix: &str| -> String {
            names
                .iter()
                .map(|n| take(&format!("{prefix}-{n}")))
                .collect()
        };
        let csrf = match (self.admin(), self.dash.auth.csrf_token()) {
            (true, Some(token)) => format!("<meta name=\"csrf-token\" content=\"{token}\">"),
            _ => String::new(),
        };
        let query = {
            let mut q = Vec::new();
            if let Some(p) = &self.filter.project {
                q.push(format!("project={}", escape(p)));
            }
            if let Some(k) = &self.filter.kind {
                q.push(format!("kind={k}"));
            }
            q.join("&amp;")
        };
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <meta name=\"color-scheme\" content=\"light dark\">{csrf}\
             <title>registre-monitor</title><link rel=\"icon\" href=\"data:,\">\
             <link rel=\"stylesheet\" href=\"/dashboard.css\"><script src=\"/dashboard.js\" defer></script></head>\
             <body data-filter=\"{query}\"><header><h1>registre-monitor</h1>{summary}\
             <p class=\"bar\"><span id=\"conn\" class=\"conn\">static page: reload for news</span> {account}</p></header>\
             <p id=\"notice\" class=\"notice\" role=\"status\" hidden></p><main>\
             <section aria-labelledby=\"h-fleet\"><h2 id=\"h-fleet\">Fleet</h2><div class=\"cards\">{cards}</div></section>\
             <section aria-labelledby=\"h-history\"><h2 id=\"h-history\">History</h2><div class=\"charts\">{charts}</div></section>\
             <section aria-labelledby=\"h-timeline\"><h2 id=\"h-timeline\">What the monitor did</h2>{form}{timeline}</section>\
             <section aria-labelledby=\"h-workers\"><h2 id=\"h-workers\">Workers</h2>{workers}</section>\
             <section aria-labelledby=\"h-jobs\"><h2 id=\"h-jobs\">Jobs that need a person</h2>{jobs}</section>\
             </main><footer>Instance {instance} · registre-monitor {version} · drawn at {drawn}</footer></body></html>\n",
            summary = take("summary"),
            account = self.account(),
            cards = group("card"),
            charts = group("chart"),
            form = self.filter_form(),
            timeline = take("timeline"),
            workers = group("workers"),
            jobs = group("jobs"),
            instance = escape(&self.dash.settings.instance_id),
            version = env!("CARGO_PKG_VERSION"),
            drawn = when(self.now_ms),
        )
    }
}

/// The login form (`GET /login`, and the answer to a page asked for
/// without the viewing token).
pub fn login_page(error: Option<&str>) -> String {
    let error = error.map_or(String::new(), |e| {
        format!("<p class=\"err\" role=\"alert\">{}</p>", escape(e))
    });
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light dark\"><title>registre-monitor: log in</title>\
         <link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"/dashboard.css\"></head>\
         <body class=\"login\"><main><h1>registre-monitor</h1>{error}\
         <form method=\"post\" action=\"/login\"><label>Token <input type=\"password\" name=\"token\" \
         autocomplete=\"current-password\" required autofocus></label> <button type=\"submit\">Log in</button></form>\
         <p class=\"muted\">The viewing token (MONITOR_HTTP_TOKEN) shows the dashboard; the admin token \
         (MONITOR_ADMIN_TOKEN) also allows its actions.</p></main></body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<script>alert(\"x\")</script> & 'y'"),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }

    #[test]
    fn dates_and_durations() {
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso(1_795_000_000), "2026-11-18T11:06:40Z");
        assert_eq!(iso(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_hm(1_795_000_000), "11:06");
        assert_eq!(
            [5, 60, 65, 600, 3700, 90_000].map(human),
            [
                "5 s",
                "1 min",
                "1 min 5 s",
                "10 min",
                "1 h 1 min",
                "1 d 1 h"
            ]
        );
    }

    #[test]
    fn the_filter_keeps_only_known_values() {
        let f = Filter {
            project: Some("prod".into()),
            kind: Some("<script>".into()),
        }
        .sanitize(["dev", "prod"].into_iter());
        assert_eq!(f.project.as_deref(), Some("prod"));
        assert_eq!(f.kind, None);
        let f = Filter {
            project: Some("nope".into()),
            kind: Some("jobs_reset".into()),
        }
        .sanitize(["dev"].into_iter());
        assert_eq!((f.project, f.kind.as_deref()), (None, Some("jobs_reset")));
    }
}
