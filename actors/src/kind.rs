//! The actors of the tree, as logs, metrics and `/status` name them.

/// The children of an [`Environment`](crate::Environment), one per check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChildKind {
    /// First, so the others know at once whether this instance acts.
    LeaderElection,
    StuckJobResetter,
    WorkerReaper,
    HealthReporter,
}

impl ChildKind {
    /// Every check, in the order an `Environment` starts them.
    pub const ALL: [ChildKind; 4] = [
        ChildKind::LeaderElection,
        ChildKind::StuckJobResetter,
        ChildKind::WorkerReaper,
        ChildKind::HealthReporter,
    ];

    /// The name used in logs, metrics and `/status`.
    pub fn name(self) -> &'static str {
        match self {
            ChildKind::LeaderElection => "LeaderElection",
            ChildKind::StuckJobResetter => "StuckJobResetter",
            ChildKind::WorkerReaper => "WorkerReaper",
            ChildKind::HealthReporter => "HealthReporter",
        }
    }

    /// The check named `name`, as the drill hook is given it.
    pub fn from_name(name: &str) -> Option<ChildKind> {
        ChildKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// An actor that can die and be restarted: a project's `Environment`, or
/// one of its checks. Keys a project's per-actor figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ActorKind {
    Environment,
    Check(ChildKind),
}

impl ActorKind {
    /// The name used in logs and metrics (`actor="Environment"`).
    pub fn name(self) -> &'static str {
        match self {
            ActorKind::Environment => "Environment",
            ActorKind::Check(kind) => kind.name(),
        }
    }
}

impl From<ChildKind> for ActorKind {
    fn from(kind: ChildKind) -> Self {
        ActorKind::Check(kind)
    }
}
