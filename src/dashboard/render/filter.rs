//! What the timeline is narrowed to, from `?project=..&kind=..`: read
//! from the query, kept only when it names a known project and kind, and
//! drawn as the form above the timeline.

use std::fmt::Write;

use registre_actors::events::{Event, KINDS};
use serde::Deserialize;

use super::View;
use super::format::escape;

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

impl View<'_> {
    /// The form that narrows the timeline, the current choice selected.
    pub(super) fn filter_form(&self) -> String {
        let mut out = String::from(
            "<form id=\"filter\" class=\"filter\" method=\"get\" action=\"/\"><label>Project <select name=\"project\"><option value=\"\">all</option>",
        );
        for name in self.projects.keys() {
            let selected = self.filter.project.as_deref() == Some(name);
            option(&mut out, &escape(name), name, selected);
        }
        out.push_str(
            "</select></label> <label>Kind <select name=\"kind\"><option value=\"\">all</option>",
        );
        for (kind, label) in KINDS {
            option(
                &mut out,
                kind,
                label,
                self.filter.kind.as_deref() == Some(kind),
            );
        }
        out.push_str("</select></label> <button type=\"submit\">Filter</button></form>");
        out
    }
}

/// One `<option>`: `value` already safe for an attribute, `label` escaped here.
fn option(out: &mut String, value: &str, label: &str, selected: bool) {
    let selected = if selected { " selected" } else { "" };
    let _ = write!(
        out,
        "<option value=\"{value}\"{selected}>{}</option>",
        escape(label)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

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
