//! What one election run's finding means for this instance's role: pure
//! functions of what the statement returned, unit-tested here.
//!
//! With the lease table ([`judge_lease`]) the lease decides alone: ours,
//! this instance acts; another's, live, it stands by (the lease expires
//! within 1.5 check intervals of its holder's death). Without it
//! ([`judge_lock`]) the advisory lock only decides who speaks: another
//! session holding it makes this instance a backup that still heals, and a
//! holder whose backend has sat idle for [`ORPHANED_AFTER_INTERVALS`] check
//! intervals is taken for orphaned (a pooler's server connection kept the
//! lock after its client died), so this instance speaks too.

use std::time::Duration;

use crate::role::Role;
use crate::sql::{Leadership, Lease};

/// A lock holder idle for this many check intervals is orphaned: a live
/// instance runs its election on that session every interval.
pub const ORPHANED_AFTER_INTERVALS: u32 = 3;

/// What a run's finding means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No election here: off, or no session lock can hold (a transaction
    /// pooler) and there is no lease table. Acts alone.
    Alone,
    /// The lock held, but by another backend of the same session: a
    /// transaction pooler, seen now. Acts alone from now on.
    Pooler,
    /// Holds the lease or the lock.
    Acting,
    /// Another instance (named, when known) holds a live lease.
    StandingBy(Option<String>),
    /// Another session (named, when visible) holds the lock.
    Backup(Option<String>),
    /// Another session holds the lock but has been idle for `idle`: its
    /// holder is taken for gone; this instance is undecided (speaks too).
    Orphaned {
        holder: Option<String>,
        idle: Duration,
    },
}

impl Verdict {
    /// The role it makes of this instance.
    pub fn role(&self) -> Role {
        match self {
            Verdict::Alone | Verdict::Pooler => Role::Alone,
            Verdict::Acting => Role::Acting,
            Verdict::StandingBy(_) => Role::StandingBy,
            Verdict::Backup(_) => Role::Backup,
            Verdict::Orphaned { .. } => Role::Undecided,
        }
    }
}

/// The time-to-live of a lease taken or renewed now: 1.5 check intervals,
/// so the holder's renewal every interval keeps it with half an interval
/// to spare, and a dead holder's lease is free 1.5 intervals after its
/// last renewal.
pub fn lease_ttl(check_interval: Duration) -> Duration {
    check_interval * 3 / 2
}

/// How often a standby tries to take the lease: a quarter interval, so
/// that it takes over at most 1.75 intervals after the holder's last
/// renewal, under two intervals (one single-row statement each time).
pub fn standby_retry(check_interval: Duration) -> Duration {
    check_interval / 4
}

/// Judges a lease run.
pub fn judge_lease(lease: &Lease) -> Verdict {
    if lease.ours {
        Verdict::Acting
    } else {
        Verdict::StandingBy(lease.holder.clone())
    }
}

/// What a lock run is judged with besides its finding.
#[derive(Debug, Clone, Copy)]
pub struct LockRun {
    /// The role until now.
    pub before: Role,
    /// The backend that took the lock.
    pub last_pid: i64,
    /// Whether this run opened the session.
    pub fresh: bool,
    pub check_interval: Duration,
}

/// Judges a lock run. A sign of a transaction pooler under the session:
/// the lock held, but on another backend than the one that took it. (The
/// lock held elsewhere under this instance's own name is no sign: several
/// projects may be one database.)
pub fn judge_lock(run: &LockRun, found: &Leadership) -> Verdict {
    let moved = run.before == Role::Acting && !run.fresh && run.last_pid != found.pid;
    if found.acting && moved {
        return Verdict::Pooler;
    }
    if found.acting {
        return Verdict::Acting;
    }
    let (holder, check_interval) = (found.holder_instance(), run.check_interval);
    let idle = Duration::from_millis(found.holder_idle_ms.unwrap_or(0).max(0) as u64);
    if idle > check_interval * ORPHANED_AFTER_INTERVALS {
        Verdict::Orphaned { holder, idle }
    } else {
        Verdict::Backup(holder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn found(acting: bool, pid: i64, idle_ms: Option<i64>) -> Leadership {
        Leadership {
            pid,
            acting,
            holder: Some("registre-monitor host:42".into()),
            holder_idle_ms: idle_ms,
        }
    }

    fn run(before: Role, last_pid: i64, fresh: bool) -> LockRun {
        LockRun {
            before,
            last_pid,
            fresh,
            check_interval: SECOND,
        }
    }

    #[test]
    fn another_backend_under_the_same_session_is_a_pooler() {
        let acting = Role::Acting;
        let judge = |before, last, f: &Leadership, fresh| judge_lock(&run(before, last, fresh), f);
        assert_eq!(
            judge(acting, 7, &found(true, 8, None), false),
            Verdict::Pooler
        );
        assert_eq!(
            judge(acting, 7, &found(true, 7, None), false),
            Verdict::Acting
        );
        // A session opened in this run, or a first win, is no evidence.
        assert_eq!(
            judge(acting, 7, &found(true, 8, None), true),
            Verdict::Acting
        );
        let first = found(true, 8, None);
        assert_eq!(judge(Role::Undecided, 0, &first, false), Verdict::Acting);
        // Our own name on the lock elsewhere: another project, same database.
        let mine = Leadership {
            holder: Some("registre-monitor me:1".into()),
            ..found(false, 8, None)
        };
        let same = Verdict::Backup(Some("me:1".into()));
        assert_eq!(judge(Role::Backup, 7, &mine, false), same);
    }

    #[test]
    fn another_session_holding_the_lock_makes_a_backup_unless_idle_for_three_intervals() {
        let judge = |idle| judge_lock(&run(Role::Backup, 7, false), &found(false, 7, idle));
        let host = Some("host:42".to_string());
        assert_eq!(judge(None), Verdict::Backup(host.clone()));
        assert_eq!(judge(Some(2_900)), Verdict::Backup(host.clone()));
        assert_eq!(judge(Some(3_000)), Verdict::Backup(host.clone()));
        let idle = Duration::from_millis(3_001);
        let orphaned = Verdict::Orphaned { holder: host, idle };
        assert_eq!(judge(Some(3_001)), orphaned);
        assert_eq!(orphaned.role(), Role::Undecided);
        assert!(orphaned.role().speaks() && judge(None).role().acts());
    }

    #[test]
    fn the_lease_decides_alone_and_a_standby_takes_over_within_two_intervals() {
        let ours = Lease {
            ours: true,
            holder: Some("me:1".into()),
            expires_in_ms: Some(1_500),
        };
        assert_eq!(judge_lease(&ours), Verdict::Acting);
        let other = Lease {
            ours: false,
            ..ours
        };
        let standby = judge_lease(&other);
        assert_eq!(standby, Verdict::StandingBy(Some("me:1".into())));
        assert!(!standby.role().acts() && !standby.role().speaks());
        let i = Duration::from_secs(30);
        // Dead right after renewing: free after the TTL, taken at the next retry.
        assert!(lease_ttl(i) + standby_retry(i) < 2 * i);
        assert!(lease_ttl(i) > i, "the holder renews before it expires");
    }
}
