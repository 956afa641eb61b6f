//! The timeline: what the monitor did, newest first, as narrowed by the
//! [`Filter`](super::Filter), with the jobs and workers each event names.

use std::fmt::Write;

use super::format::{code, escape, human, job_id, when};
use super::tone::{event_tone, kind_label};
use super::{TIMELINE_SHOWN, View};

impl View<'_> {
    pub(super) fn timeline(&self) -> String {
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
                let names: Vec<String> = e.workers.iter().map(|w| code(w)).collect();
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
                        j.worker.as_deref().map_or("no worker".to_string(), code),
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
}
