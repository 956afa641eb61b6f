//! The monitor's tunables, already validated by whoever built them.

use std::time::Duration;

use crate::identifier::Identifier;
use crate::sql::PROCESSING;

/// Thresholds and intervals shared by every project.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// How often each check runs (30 s).
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
    /// Whether each automatic reset or release counts as an attempt of the
    /// job (poison jobs end failed instead of looping forever); `false`: a
    /// job is put back however often it got stuck.
    pub count_resets_as_attempts: bool,
    /// The job's attempts column (`attemtps` in production, sic).
    pub attempts_column: Identifier,
    /// Extra time for a processing job whose worker is alive and reports it
    /// as its `current_job_id` (0: none, the plain stuck rule).
    pub live_worker_grace: Duration,
    /// An OCR job (`status_id = 6`) older than this goes back to status 3.
    pub stuck_ocr_after: Duration,
    /// How instances decide which one acts for a project.
    pub leader_election: LeaderElection,
    /// This instance, as logs and `/status` name it (`hostname:pid`).
    pub instance_id: String,
    /// Where alerts are posted; `None`: no alerts.
    pub alert_webhook: Option<WebhookUrl>,
    /// A batch of resets or reaped workers is alerted from this size on.
    pub alert_min_resets: u64,
    /// Alerts of one kind for one project are sent at most once per this.
    pub alert_repeat_after: Duration,
}

/// How several instances on the same projects share the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaderElection {
    /// The instance holding a session-level advisory lock on a dedicated
    /// connection acts; the others stand by. Needs a session (a direct
    /// connection or a pooler in session mode).
    Session,
    /// Every instance acts. Each statement is still exactly-once under
    /// concurrency, but anomaly logs and alerts are repeated per instance.
    Off,
}

/// A webhook URL, checked: `http` or `https`, a host, no user name or
/// password. A secret (Slack's carry a token), so `Debug` hides it and
/// errors about it never repeat it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl(url::Url);

impl WebhookUrl {
    pub fn parse(text: &str) -> Result<WebhookUrl, String> {
        if text.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err("has spaces or control characters in it".into());
        }
        let url = url::Url::parse(text).map_err(|e| format!("is not a valid URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("does not start with http:// or https://".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("has a user name or password in it, which is not supported".into());
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("has no valid host".into());
        }
        Ok(WebhookUrl(url))
    }

    /// The parsed URL (a secret: never log it).
    pub fn url(&self) -> &url::Url {
        &self.0
    }
}

impl std::fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookUrl({}://***)", self.0.scheme())
    }
}

impl Settings {
    pub const CHECK_INTERVAL_DEFAULT: Duration = Duration::from_secs(30);
    pub const STUCK_JOB_AFTER_DEFAULT: Duration = Duration::from_secs(3 * 60);
    pub const DEAD_WORKER_AFTER_DEFAULT: Duration = Duration::from_secs(2 * 60);
    pub const HEALTH_LOG_EVERY_DEFAULT: Duration = Duration::from_secs(5 * 60);
    pub const FAILED_JOBS_WARN_DEFAULT: u64 = 10;
    pub const CONNECT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
    pub const STATEMENT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(15);
    pub const COUNT_RESETS_AS_ATTEMPTS_DEFAULT: bool = true;
    pub const ATTEMPTS_COLUMN_DEFAULT: Identifier = Identifier::from_static(PROCESSING.attempts);
    pub const LIVE_WORKER_GRACE_DEFAULT: Duration = Duration::ZERO;
    pub const STUCK_OCR_AFTER_DEFAULT: Duration = Duration::from_secs(10 * 60);
    pub const LEADER_ELECTION_DEFAULT: LeaderElection = LeaderElection::Session;
    pub const ALERT_MIN_RESETS_DEFAULT: u64 = 1;
    pub const ALERT_REPEAT_AFTER_DEFAULT: Duration = Duration::from_secs(5 * 60);

    /// `hostname:pid`, naming this instance in logs and `/status`.
    pub fn default_instance_id() -> String {
        let host = host_name().unwrap_or_else(|| "unknown-host".into());
        format!("{host}:{}", std::process::id())
    }

    /// Longest wait between two tries of a failing check or two restarts of
    /// a failing actor: never below the check interval, never above a minute
    /// unless the interval itself is longer.
    pub fn backoff_cap(&self) -> Duration {
        (self.check_interval * 8)
            .min(Duration::from_secs(60))
            .max(self.check_interval)
    }
}

/// This host's name: gethostname(2), which needs no file (systemd's
/// `ProcSubset=pid` hides `/proc/sys/kernel/hostname`); else
/// `/etc/hostname`, else `HOSTNAME`.
pub fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    let called = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let from_call = (called == 0).then(|| {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    });
    [
        from_call,
        std::fs::read_to_string("/etc/hostname").ok(),
        std::env::var("HOSTNAME").ok(),
    ]
    .into_iter()
    .flatten()
    .map(|h| h.trim().to_string())
    .find(|h| !h.is_empty())
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
            count_resets_as_attempts: Self::COUNT_RESETS_AS_ATTEMPTS_DEFAULT,
            attempts_column: Self::ATTEMPTS_COLUMN_DEFAULT,
            live_worker_grace: Self::LIVE_WORKER_GRACE_DEFAULT,
            stuck_ocr_after: Self::STUCK_OCR_AFTER_DEFAULT,
            leader_election: Self::LEADER_ELECTION_DEFAULT,
            instance_id: Self::default_instance_id(),
            alert_webhook: None,
            alert_min_resets: Self::ALERT_MIN_RESETS_DEFAULT,
            alert_repeat_after: Self::ALERT_REPEAT_AFTER_DEFAULT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instance_is_named_by_the_hosts_name() {
        let host = host_name().expect("a host name");
        assert!(!host.is_empty() && !host.contains('\n'));
        let id = Settings::default_instance_id();
        assert_eq!(id, format!("{host}:{}", std::process::id()));
    }

    #[test]
    fn parses_webhook_urls_and_hides_them() {
        let e = WebhookUrl::parse("https://hooks.slack.com/services/T0/B0/secret").unwrap();
        let u = e.url();
        assert_eq!(u.scheme(), "https");
        assert_eq!(
            (u.host_str(), u.port_or_known_default()),
            (Some("hooks.slack.com"), Some(443))
        );
        assert_eq!(u.path(), "/services/T0/B0/secret");
        assert!(!format!("{e:?}").contains("secret"));
        let e = WebhookUrl::parse("http://127.0.0.1:9000").unwrap();
        assert_eq!((e.url().port(), e.url().path()), (Some(9000), "/"));
        let e = WebhookUrl::parse("http://[::1]:81/a?b=c").unwrap();
        assert_eq!(
            (e.url().host_str(), e.url().port()),
            (Some("[::1]"), Some(81))
        );
        for bad in [
            "ftp://x/y",
            "https://",
            "http://u:secret@h/",
            "http://h:notaport/",
            "http://h/a secret",
        ] {
            let err = WebhookUrl::parse(bad).unwrap_err();
            assert!(!err.contains("secret"), "{err}");
        }
    }
}
