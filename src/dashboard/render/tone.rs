//! How a project, an event or the whole fleet is judged at a glance:
//! red, amber or green, and the words for a project's role and failing
//! check.

use registre_actors::anomaly::Anomaly;
use registre_actors::events::KINDS;
use registre_actors::state::ProjectState;
use registre_actors::{ChildKind, DbError, Role};

use super::format::escape;

/// How a card, an event or the summary is coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tone {
    Ok,
    Warn,
    Bad,
}

impl Tone {
    pub(super) fn class(self) -> &'static str {
        match self {
            Tone::Ok => "t-ok",
            Tone::Warn => "t-warn",
            Tone::Bad => "t-bad",
        }
    }
}

pub(super) const ANOMALIES: [Anomaly; 3] = [
    Anomaly::NoActiveWorkers,
    Anomaly::TooManyProcessing,
    Anomaly::HighFailures,
];

/// A project's acting role, as a person reads it.
pub(super) fn role(p: &ProjectState) -> String {
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
pub(super) fn failing(p: &ProjectState) -> Option<(&'static str, &DbError)> {
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

pub(super) fn event_tone(kind: &str) -> Tone {
    match kind {
        "unreachable" | "failing" | "jobs_failed" | "anomaly" | "restart" => Tone::Bad,
        "recovered" | "anomaly_cleared" | "leadership" => Tone::Ok,
        _ => Tone::Warn,
    }
}

pub(super) fn kind_label(kind: &str) -> &str {
    KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(kind, |(_, label)| label)
}
