//! This instance's role for a project: whether it acts or stands by.
//!
//! Decided by the [`LeaderElection`](crate::leader::LeaderElection), the
//! only writer, and kept in the project's [`MonitorState`](crate::MonitorState),
//! where the checks (through their `Ticker`), the alert gate, `/status`
//! and `/metrics` read it.

/// What this instance does for a project.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Role {
    /// No election run has decided yet (the database may be down). Acts,
    /// so that the checks still report what is wrong; every statement is
    /// exactly-once anyway.
    #[default]
    Undecided,
    /// Holds the project's lock: acts.
    Acting,
    /// Another instance holds the lock: counts (for metrics and `/status`)
    /// but neither resets, reaps, warns nor alerts.
    StandingBy,
    /// Acts without an election (`MONITOR_LEADER_ELECTION=off`, or a
    /// transaction pooler where a session lock cannot hold).
    Alone,
}

impl Role {
    /// Whether this instance acts for the project now: unless another
    /// instance is known to.
    pub fn acts(self) -> bool {
        self != Role::StandingBy
    }

    /// As `/status` shows it: `acting` or `standby`.
    pub fn name(self) -> &'static str {
        if self.acts() { "acting" } else { "standby" }
    }
}
