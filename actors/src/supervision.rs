//! How a parent learns that a child actor died, and when to restart it.
//!
//! actix's own `Supervisor` restarts an actor only when it stops normally: a
//! panic drops the actor for good. So each child carries an [`ExitNotice`]
//! whose `Drop` tells its parent, whatever ended it, and the parent starts a
//! fresh child after the delay [`Restarts::exited`] gives (exponential
//! backoff, per child). The links upward are weak, so a child never keeps a
//! dead parent alive; a parent that goes away sends [`Stop`] to its
//! children, so no orphan keeps working. Both parents (the `Supervisor` of
//! the `Environment`s, an `Environment` of its checks) use these parts.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use actix::{Message, WeakRecipient};

use crate::kind::ActorKind;
use crate::state::MonitorState;

/// Sent to a parent when its child `K` is gone.
#[derive(Debug)]
pub struct Exited<K>(pub K);

impl<K: 'static> Message for Exited<K> {
    type Result = ();
}

/// Asks an actor to stop for good (its parent is gone or shutting down).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Stop;

/// Held by a child; tells the parent when the child is dropped.
pub struct ExitNotice<K: Clone + Send + 'static> {
    parent: WeakRecipient<Exited<K>>,
    child: K,
}

impl<K: Clone + Send + 'static> ExitNotice<K> {
    pub fn new(parent: WeakRecipient<Exited<K>>, child: K) -> Self {
        ExitNotice { parent, child }
    }

    /// Whether the parent still exists; an orphan should stop.
    pub fn parent_alive(&self) -> bool {
        self.parent.upgrade().is_some()
    }
}

impl<K: Clone + Send + 'static> Drop for ExitNotice<K> {
    fn drop(&mut self) {
        if let Some(parent) = self.parent.upgrade() {
            parent.do_send(Exited(self.child.clone()));
        }
    }
}

/// Exponential backoff between restarts of one child: 1 s, 2 s, 4 s, ... up
/// to a cap, starting over once the child has stayed up for a while.
#[derive(Debug, Default)]
pub struct RestartBackoff {
    restarts: u32,
    last: Option<Instant>,
}

impl RestartBackoff {
    /// First delay.
    pub const BASE: Duration = Duration::from_secs(1);
    /// A child up this long since its last restart counts as healthy again.
    pub const FORGET_AFTER: Duration = Duration::from_secs(5 * 60);

    /// The delay before the next restart; counts it.
    pub fn next_delay(&mut self, cap: Duration) -> Duration {
        if self.last.is_some_and(|t| t.elapsed() > Self::FORGET_AFTER) {
            self.restarts = 0;
        }
        let delay = Self::BASE
            .saturating_mul(2u32.saturating_pow(self.restarts.min(16)))
            .min(cap);
        self.restarts += 1;
        self.last = Some(Instant::now());
        delay
    }
}

/// A parent's record of its children's deaths: each child's backoff.
#[derive(Debug)]
pub struct Restarts<K> {
    backoff: BTreeMap<K, RestartBackoff>,
}

impl<K> Default for Restarts<K> {
    fn default() -> Self {
        Restarts {
            backoff: BTreeMap::new(),
        }
    }
}

impl<K: Ord> Restarts<K> {
    /// A child (`actor` of `project`, known to the parent as `key`) died:
    /// records and logs it, and says when to start a fresh one (at most
    /// `cap` from now).
    pub fn exited(
        &mut self,
        key: K,
        project: &str,
        actor: ActorKind,
        state: &MonitorState,
        cap: Duration,
    ) -> Duration {
        let delay = self.backoff.entry(key).or_default().next_delay(cap);
        state.restarted(project, actor);
        let name = actor.name();
        log::error!(environment = project, actor = name, restartInMs = delay.as_millis() as u64;
            "🔁 {name} stopped unexpectedly; restarting it");
        let text = format!("🔁 {name} stopped unexpectedly; restarting it");
        state.event(crate::events::Event::new(project, "restart", text));
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut b = RestartBackoff::default();
        let cap = Duration::from_secs(60);
        let delays: Vec<u64> = (0..9).map(|_| b.next_delay(cap).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }
}
