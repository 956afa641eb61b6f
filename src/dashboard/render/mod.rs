//! The page, drawn on the server: readable without JavaScript.
//!
//! [`View::page`] is the whole document; [`View::sections`] are its parts
//! that change (each an element with an `id`), which the event stream sends
//! again when they do and the page's script swaps in place. Every value
//! from the database or a log goes through [`escape`]. Times are written as
//! `<time data-at>` in UTC, which the script shows as "12 s ago".
//!
//! One file a part of the page: `fleet.rs` (summary and cards),
//! `history.rs` (charts), `timeline.rs` and its `filter.rs`, `workers.rs`,
//! `jobs.rs`, and `page.rs` (the documents); `tone.rs` judges colours,
//! `format.rs` writes values.

mod filter;
mod fleet;
mod format;
mod history;
mod jobs;
mod page;
mod timeline;
mod tone;
mod workers;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Instant;

use registre_actors::sql::dashboard::LiveRead;
use registre_actors::state::ProjectState;

pub use filter::Filter;
pub use format::{escape, utc_hm};
pub use page::login_page;

use super::Dashboard;
use super::auth::Level;
use super::live::Snapshot;

/// Events shown in the timeline (the ring holds more; the filter reaches them).
pub const TIMELINE_SHOWN: usize = 100;

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

    /// Project `name`'s block in section `section` (`workers`, `jobs`),
    /// opened up to inside its heading, with the live read; or, when there
    /// is no read, the whole block saying why.
    fn live_block(&self, section: &str, name: &str) -> Result<(String, &LiveRead), String> {
        let n = escape(name);
        let head = format!("<div id=\"{section}-{n}\" class=\"block\"><h3>{n}");
        let words = match self.live.get(name) {
            Some(Snapshot { result: Ok(r), .. }) => return Ok((head, r)),
            None => "<p class=\"muted\">Not read yet: it is read while someone looks.</p>".into(),
            Some(Snapshot { result: Err(e), .. }) => format!(
                "<p class=\"err\">Could not read: {}</p>",
                escape(&e.to_string())
            ),
        };
        Err(format!("{head}</h3>{words}</div>"))
    }

    /// The start of a table of `headers` (`<th>` cells), with an empty
    /// column for the action buttons of an admin session.
    fn table_start(&self, table_attrs: &str, headers: &str) -> String {
        let actions = if self.admin() { "<th></th>" } else { "" };
        format!(
            "<div class=\"scroll\"><table{table_attrs}><thead><tr>{headers}{actions}</tr></thead><tbody>"
        )
    }
}
