//! The monitor's settings ([`Settings`]), read from the flags and their
//! variables and checked once: durations, counts, the one boolean form, the
//! attempts column, the webhook URL.

use std::time::Duration;

use registre_actors::Settings;
use registre_actors::identifier::{self, Identifier};
use registre_actors::settings::{LeaderElection, WebhookUrl};

use super::cli::SettingsArgs;
use super::duration;
use super::{ConfigError, bad};

/// `value` read by `parse`, or `default` when it is not set.
fn or_default<T>(
    value: &Option<String>,
    default: T,
    parse: impl FnOnce(&str) -> Result<T, ConfigError>,
) -> Result<T, ConfigError> {
    value.as_deref().map_or(Ok(default), parse)
}

fn duration_setting(
    var: &str,
    value: &Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    or_default(value, default, |text| {
        duration::parse(text).map_err(|problem| bad(var, text, &problem, duration::EXPECTED))
    })
}

/// The one boolean form of every boolean setting: `true`/`false`,
/// `1`/`0`, `yes`/`no` or `on`/`off`, in any case; anything else (the empty
/// string included) is an error naming the variable.
pub fn boolean(var: &str, text: &str) -> Result<bool, ConfigError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(bad(
            var,
            text,
            "is not a boolean",
            "true or false (or 1/0, yes/no, on/off)",
        )),
    }
}

fn bool_setting(var: &str, value: &Option<String>, default: bool) -> Result<bool, ConfigError> {
    or_default(value, default, |text| boolean(var, text))
}

/// A column name: checked here once, written into statements quoted.
fn identifier_setting(
    var: &str,
    value: &Option<String>,
    default: Identifier,
) -> Result<Identifier, ConfigError> {
    or_default(value, default, |text| {
        Identifier::new(text).map_err(|_| {
            bad(
                var,
                text,
                "is not a plain column name",
                identifier::EXPECTED,
            )
        })
    })
}

/// `MONITOR_LIVE_WORKER_GRACE`: a duration, or zero (`0`, `0s`) for none.
fn grace_setting(value: &Option<String>) -> Result<Duration, ConfigError> {
    let var = "MONITOR_LIVE_WORKER_GRACE";
    match value {
        Some(text) if duration::is_zero(text) => Ok(Duration::ZERO),
        _ => duration_setting(var, value, Settings::LIVE_WORKER_GRACE_DEFAULT),
    }
}

/// The webhook URL, parsed here once; a secret: errors describe it, never
/// show it. Empty means no alerts.
fn webhook_setting(value: &Option<String>) -> Result<Option<WebhookUrl>, ConfigError> {
    let Some(text) = value.as_deref().map(str::trim) else {
        return Ok(None);
    };
    if text.is_empty() {
        return Ok(None);
    }
    let url = WebhookUrl::parse(text).map_err(|problem| {
        ConfigError(format!(
            "MONITOR_ALERT_WEBHOOK_URL (value hidden) {problem}; expected an http:// or https:// URL \
             such as https://hooks.slack.com/services/..."
        ))
    })?;
    Ok(Some(url))
}

/// Reads every setting of [`Settings`] from `args`, or its default.
pub fn settings(args: &SettingsArgs) -> Result<Settings, ConfigError> {
    let d = Settings::default();
    let failed_jobs_warn =
        or_default(&args.monitor.failed_jobs_warn, d.failed_jobs_warn, |text| {
            text.trim().parse::<u64>().map_err(|_| {
                bad(
                    "MONITOR_FAILED_JOBS_WARN",
                    text,
                    "is not a whole number",
                    "a count such as 10 (0 or more)",
                )
            })
        })?;
    let s = Settings {
        check_interval: duration_setting(
            "MONITOR_CHECK_INTERVAL",
            &args.monitor.check_interval,
            d.check_interval,
        )?,
        stuck_job_after: duration_setting(
            "MONITOR_STUCK_JOB_AFTER",
            &args.thresholds.stuck_job_after,
            d.stuck_job_after,
        )?,
        dead_worker_after: duration_setting(
            "MONITOR_DEAD_WORKER_AFTER",
            &args.thresholds.dead_worker_after,
            d.dead_worker_after,
        )?,
        health_log_every: duration_setting(
            "MONITOR_HEALTH_LOG_EVERY",
            &args.monitor.health_log_every,
            d.health_log_every,
        )?,
        failed_jobs_warn,
        connect_timeout: duration_setting(
            "MONITOR_CONNECT_TIMEOUT",
            &args.connection.connect_timeout,
            d.connect_timeout,
        )?,
        statement_timeout: duration_setting(
            "MONITOR_STATEMENT_TIMEOUT",
            &args.connection.statement_timeout,
            d.statement_timeout,
        )?,
        count_resets_as_attempts: bool_setting(
            "MONITOR_COUNT_RESETS_AS_ATTEMPTS",
            &args.monitor.count_resets_as_attempts,
            d.count_resets_as_attempts,
        )?,
        attempts_column: identifier_setting(
            "MONITOR_ATTEMPTS_COLUMN",
            &args.monitor.attempts_column,
            d.attempts_column.clone(),
        )?,
        live_worker_grace: grace_setting(&args.monitor.live_worker_grace)?,
        stuck_ocr_after: duration_setting(
            "MONITOR_STUCK_OCR_AFTER",
            &args.monitor.stuck_ocr_after,
            d.stuck_ocr_after,
        )?,
        leader_election: match args.monitor.leader_election.as_deref().map(str::trim) {
            None => d.leader_election,
            Some("session") => LeaderElection::Session,
            Some("off") => LeaderElection::Off,
            Some(other) => {
                return Err(bad(
                    "MONITOR_LEADER_ELECTION",
                    other,
                    "is not a mode",
                    "session or off",
                ));
            }
        },
        instance_id: d.instance_id.clone(),
        alert_webhook: webhook_setting(&args.monitor.alert_webhook_url)?,
        alert_min_resets: match &args.monitor.alert_min_resets {
            None => d.alert_min_resets,
            Some(text) => match text.trim().parse::<u64>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err(bad(
                        "MONITOR_ALERT_MIN_RESETS",
                        text,
                        "is not a positive whole number",
                        "a count such as 1 (1 or more)",
                    ));
                }
            },
        },
        alert_repeat_after: duration_setting(
            "MONITOR_ALERT_REPEAT_AFTER",
            &args.monitor.alert_repeat_after,
            d.alert_repeat_after,
        )?,
    };
    Ok(s)
}

/// The thresholds against the check interval, for the monitor that runs
/// the checks (`diagnose` and `reset-stuck-jobs` judge by a threshold
/// without checking on an interval).
pub fn check_thresholds(s: &Settings) -> Result<(), ConfigError> {
    if s.dead_worker_after < s.check_interval {
        return Err(ConfigError(format!(
            "MONITOR_DEAD_WORKER_AFTER={} is shorter than MONITOR_CHECK_INTERVAL={}: a worker could die \
             and be replaced between two checks unseen; expected a dead-worker threshold of at least the check interval",
            duration::show(s.dead_worker_after),
            duration::show(s.check_interval)
        )));
    }
    if s.stuck_job_after < s.check_interval {
        return Err(ConfigError(format!(
            "MONITOR_STUCK_JOB_AFTER={} is shorter than MONITOR_CHECK_INTERVAL={}: jobs would be judged \
             stuck before a check could see them progress; expected a stuck-job threshold of at least the check interval",
            duration::show(s.stuck_job_after),
            duration::show(s.check_interval)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_grace_is_none_and_a_negative_one_an_error() {
        for zero in ["0", "0s", "0ms", " 0m "] {
            assert_eq!(
                grace_setting(&Some(zero.into())),
                Ok(Duration::ZERO),
                "{zero}"
            );
        }
        assert_eq!(
            grace_setting(&Some("90s".into())),
            Ok(Duration::from_secs(90))
        );
        for bad in ["-1s", "0x", "soon"] {
            assert!(grace_setting(&Some(bad.into())).is_err(), "{bad}");
        }
    }
}
