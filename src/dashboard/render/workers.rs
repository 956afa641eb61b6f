//! The Workers section: each project's workers as the live read judged
//! them, with "mark offline" for an admin.

use std::fmt::Write;

use super::format::{escape, human, job_id};
use super::{Act, View};

impl View<'_> {
    pub(super) fn workers(&self, name: &str) -> String {
        let (mut out, r) = match self.live_block("workers", name) {
            Ok(open) => open,
            Err(block) => return block,
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
        out.push_str(&self.table_start(
            "",
            "<th>Worker</th><th>Judged</th><th>Status</th><th>Heartbeat</th>\
             <th>Current job</th><th>Done</th><th>Failed</th>",
        ));
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
}
