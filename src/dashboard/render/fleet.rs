//! The Fleet section: the one-line summary at the top and a card per
//! project (its state, counts, anomalies, what the monitor did, its checks).

use std::fmt::Write;

use registre_actors::ChildKind;
use registre_actors::state::ProjectState;

use super::View;
use super::format::{escape, when};
use super::tone::{ANOMALIES, Tone, failing, role, tone};

impl View<'_> {
    pub(super) fn summary(&self) -> String {
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

    pub(super) fn card(&self, name: &str, p: &ProjectState) -> String {
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
}
