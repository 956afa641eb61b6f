//! This instance's role for a project: whether it heals and whether it
//! speaks.
//!
//! Two questions, kept apart so that the election can never stop the
//! healing: [`Role::acts`] (reset stuck jobs, reap dead workers, and log and
//! alert what it did) is false only when a lease in the database confirms
//! that another instance holds it now; [`Role::speaks`] (warn and alert about
//! anomalies) is what the election saves from being said twice.
//!
//! Decided by the [`LeaderElection`](crate::leader::LeaderElection), the
//! only writer, and kept in the project's [`MonitorState`](crate::MonitorState),
//! where the checks (through their `Ticker`), the alert gate, `/status`
//! and `/metrics` read it.

use std::time::Duration;

use crate::state::{MonitorState, ProjectState};

/// What this instance does for a project.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Role {
    /// No election run has decided (the database may be down, the run
    /// failed, or the lock's holder looks orphaned). Acts and speaks, so
    /// that nothing is left undone or unsaid; every statement is
    /// exactly-once anyway.
    #[default]
    Undecided,
    /// Holds the project's lease or lock: acts and speaks.
    Acting,
    /// Another instance holds a live lease (the opt-in lease table): counts
    /// (for metrics and `/status`) but neither resets, reaps, warns nor
    /// alerts. The only role that does not heal: the lease expires when its
    /// holder dies, so this one takes over within two check intervals.
    StandingBy,
    /// Another session holds the advisory lock (no lease table): heals
    /// too, since a session lock can outlive its holder through a pooler,
    /// but leaves the anomaly warnings and alerts to the holder.
    Backup,
    /// Acts without an election (`MONITOR_LEADER_ELECTION=off`, or a
    /// transaction pooler where a session lock cannot hold and there is no
    /// lease table).
    Alone,
}

impl Role {
    /// Whether this instance heals the project now (resets, reaps, and logs
    /// and alerts what it did): unless a lease says another instance does.
    pub fn acts(self) -> bool {
        self != Role::StandingBy
    }

    /// Whether this instance warns and alerts about the project's
    /// anomalies: unless another instance is known to.
    pub fn speaks(self) -> bool {
        !matches!(self, Role::StandingBy | Role::Backup)
    }

    /// As `/status` shows it: `acting` (speaks), `backup` (heals, silent)
    /// or `standby`.
    pub fn name(self) -> &'static str {
        match self {
            Role::StandingBy => "standby",
            Role::Backup => "backup",
            _ => "acting",
        }
    }
}

/// The role as the project's state keeps it.
impl MonitorState {
    /// This instance's role for the project.
    pub fn role(&self, project: &str) -> Role {
        self.lock().get(project).map_or(Role::Undecided, |p| p.role)
    }

    /// Records the role and who acts (the election's only way to write
    /// it); `settled` says whether the checks may stop waiting for it.
    pub fn set_role(&self, project: &str, role: Role, acting: Option<String>, settled: bool) {
        {
            let mut all = self.lock();
            let p = all.entry(project.to_string()).or_default();
            p.role = role;
            p.acting_instance = acting;
            p.role_settled = settled;
        }
        self.roles.notify_waiters();
    }

    /// Records that an election run finished without deciding (the
    /// database is down, say): the checks stop waiting and act.
    pub fn election_ran(&self, project: &str) {
        self.update(project, |p| p.role_settled = true);
        self.roles.notify_waiters();
    }

    /// The role once `ready` says so of the project (the role settled, or
    /// acting), or as it is after waiting `bound`: so the first runs at
    /// start-up act (or keep quiet) as they should, instead of skipping.
    pub async fn wait_role(
        &self,
        project: &str,
        bound: Duration,
        ready: fn(&ProjectState) -> bool,
    ) -> Role {
        let wait = async {
            loop {
                let woken = self.roles.notified();
                if self.lock().get(project).is_some_and(ready) {
                    return;
                }
                woken.await;
            }
        };
        let _ = tokio::time::timeout(bound, wait).await;
        self.role(project)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_lease_confirmed_standby_stops_healing() {
        let all = [
            Role::Undecided,
            Role::Acting,
            Role::StandingBy,
            Role::Backup,
            Role::Alone,
        ];
        let acts: Vec<bool> = all.iter().map(|r| r.acts()).collect();
        assert_eq!(acts, [true, true, false, true, true]);
        let speaks: Vec<bool> = all.iter().map(|r| r.speaks()).collect();
        assert_eq!(speaks, [true, true, false, false, true]);
        let names: Vec<&str> = all.iter().map(|r| r.name()).collect();
        assert_eq!(names, ["acting", "acting", "standby", "backup", "acting"]);
    }
}
