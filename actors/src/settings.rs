//! The monitor's tunables, already validated by whoever built them.

use std::time::Duration;

/// Thresholds and intervals shared by every project.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// How often each check runs (the seed's 30 s).
    pub check_interval: Duration,
    /// A job processing for longer than this goes back to the queue (3 min).
    pub stuck_job_after: Duration,
    /// A worker whose heartbeat is older than this is dead (2 min; workers
    /// heartbeat every 10 to 30 s).
    pub dead_worker_after: Duration,
    /// How often the health line is logged, and an ongoing anomaly repeated.
    pub health_log_every: Duration,
    /// More failed jobs than this is an anomaly.
    pub failed_jobs_warn: u64,
    /// Bound on opening a connection, TLS and authentication included.
    pub connect_timeout: Duration,
    /// Bound on each statement, enforced by the server (`SET LOCAL`), so it
    /// also holds through a transaction pooler.
    pub statement_timeout: Duration,
}

impl Settings {
    pub const CHECK_INTERVAL_DEFAULT: Duration = Duration::from_secs(30);
    pub const STUCK_JOB_AFTER_DEFAULT: Duration = Duration::from_secs(3 * 60);
    pub const DEAD_WORKER_AFTER_DEFAULT: Duration = Duration::from_secs(2 * 60);
    pub const HEALTH_LOG_EVERY_DEFAULT: Duration = Duration::from_secs(5 * 60);
    pub const FAILED_JOBS_WARN_DEFAULT: u64 = 10;
    pub const CONNECT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
    pub const STATEMENT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(15);

    /// Longest wait between two tries of a failing check or two restarts of
    /// a failing actor: never below the check interval, never above a minute
    /// unless the interval itself is longer.
    pub fn backoff_cap(&self) -> Duration {
        (self.check_interval * 8)
            .min(Duration::from_secs(60))
            .max(self.check_interval)
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            check_interval: Self::CHECK_INTERVAL_DEFAULT,
            stuck_job_after: Self::STUCK_JOB_AFTER_DEFAULT,
            dead_worker_after: Self::DEAD_WORKER_AFTER_DEFAULT,
            health_log_every: Self::HEALTH_LOG_EVERY_DEFAULT,
            failed_jobs_warn: Self::FAILED_JOBS_WARN_DEFAULT,
            connect_timeout: Self::CONNECT_TIMEOUT_DEFAULT,
            statement_timeout: Self::STATEMENT_TIMEOUT_DEFAULT,
        }
    }
}
