//! The "Jobs that need a person" section: jobs processing for long (with
//! "reset now") and failed jobs grouped by message (with "retry"), from
//! the live read.

use std::fmt::Write;

use super::format::{code, escape, human, job_id};
use super::{Act, View};

impl View<'_> {
    pub(super) fn jobs(&self, name: &str) -> String {
        let (mut out, r) = match self.live_block("jobs", name) {
            Ok(open) => open,
            Err(block) => return block,
        };
        out.push_str("</h3>");
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
            out.push_str(&self.table_start(
                "",
                "<th>Job</th><th>Document</th><th>Worker</th><th>Processing for</th>",
            ));
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
                    job.worker.as_deref().map_or("–".to_string(), code),
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
        out.push_str(&self.table_start(
            " class=\"groups\"",
            "<th>Error</th><th>Jobs</th><th>First seen</th><th>Last seen</th><th>Most recent</th>",
        ));
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
}
