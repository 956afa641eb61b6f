//! Configuration: the projects to watch and the settings, checked once.
//!
//! Projects come from the environment (`<NAME>_SUPABASE_DB_URL`, or a
//! `<NAME>_SUPABASE_URL` that holds a Postgres string); settings from flags
//! or their variables. Whatever is wrong becomes one [`ConfigError`] line that
//! names the variable, says what is wrong with the value and what is expected;
//! the program prints it and exits with code 2.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use log::LevelFilter;
use registre_actors::settings::{LeaderElection, WebhookUrl};
use registre_actors::{Project, Settings};

use crate::cli::SettingsArgs;
use crate::dashboard::auth::{Access, Secret};
use crate::duration;

/// The variable suffix that names a project's Postgres connection string.
const DB_URL_SUFFIX: &str = "_SUPABASE_DB_URL";
/// The seed's variable: an HTTPS API URL, or sometimes a Postgres string.
const API_URL_SUFFIX: &str = "_SUPABASE_URL";

/// Everything the program needs, checked.
#[derive(Debug)]
pub struct Config {
    pub projects: Vec<Project>,
    pub settings: Settings,
    pub log: LogSettings,
    pub http: HttpSettings,
    /// Things worth a WARN line once logging is up.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub level: LevelFilter,
    /// `RUST_LOG`, which wins over `LOG_LEVEL` when set.
    pub rust_log: Option<String>,
    pub format: LogFormat,
}

/// The HTTP endpoints (`/healthz`, `/metrics`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// Where to listen; `None` when `MONITOR_HTTP_ADDR=off`.
    pub addr: Option<SocketAddr>,
    /// Whether `POST /debug/fault` (a drill hook) is served.
    pub fault_injection: bool,
    /// The dashboard's tokens (`MONITOR_HTTP_TOKEN`, `MONITOR_ADMIN_TOKEN`).
    pub access: Access,
}

impl HttpSettings {
    /// Local only by default: the endpoints tell about the queue.
    pub const ADDR_DEFAULT: &str = "127.0.0.1:9464";
}

/// A bad setting, as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad(var: &str, value: &str, problem: &str, expected: &str) -> ConfigError {
    ConfigError(format!("{var}={value:?} {problem}; expected {expected}"))
}

/// Reads the settings from `args` and the projects from `env`.
pub fn load(args: &SettingsArgs, env: &[(String, String)]) -> Result<Config, ConfigError> {
    let log = log_settings(args, env)?;
    let settings = settings(args)?;
    let http = http_settings(args)?;
    let (projects, warnings) = projects(env)?;
    Ok(Config {
        projects,
        settings,
        log,
        http,
        warnings,
    })
}

/// As [`load`], for a command that brings its own project (the demo): no
/// `<NAME>_SUPABASE_DB_URL` is needed and any is ignored.
pub fn load_without_projects(
    args: &SettingsArgs,
    env: &[(String, String)],
) -> Result<Config, ConfigError> {
    Ok(Config {
        projects: Vec::new(),
        settings: settings(args)?,
        log: log_settings(args, env)?,
        http: http_settings(args)?,
        warnings: Vec::new(),
    })
}

/// The projects to work on: all, or only the one named `only` (an unknown
/// name is an error that lists the known ones).
pub fn select_projects(
    projects: Vec<Project>,
    only: Option<&str>,
) -> Result<Vec<Project>, ConfigError> {
    let Some(name) = only else {
        return Ok(projects);
    };
    let wanted = name.trim().to_ascii_lowercase();
    let known: Vec<&str> = projects.iter().map(|p| p.name.as_str()).collect();
    if !known.contains(&wanted.as_str()) {
        return Err(ConfigError(format!(
            "--env {name:?} names no configured project; expected one of: {}",
            known.join(", ")
        )));
    }
    Ok(projects.into_iter().filter(|p| p.name == wanted).collect())
}

fn duration_setting(
    var: &str,
    value: &Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(text) => {
            duration::parse(text).map_err(|problem| bad(var, text, &problem, duration::EXPECTED))
        }
    }
}

fn bool_setting(var: &str, value: &Option<String>, default: bool) -> Result<bool, ConfigError> {
    match value.as_deref().map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) => match v.as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(bad(
                var,
                value.as_deref().unwrap_or_default(),
                "is not a boolean",
                "true or false",
            )),
        },
    }
}

/// A column name written into statements as is: a plain lower-case SQL
/// identifier only, so nothing can be injected and no quoting is needed.
fn identifier_setting(
    var: &str,
    value: &Option<String>,
    default: &str,
) -> Result<String, ConfigError> {
    let Some(text) = value else {
        return Ok(default.to_string());
    };
    let t = text.trim();
    let plain = t.len() <= 63
        && t.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && t.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !plain {
        return Err(bad(
            var,
            text,
            "is not a plain column name",
            "lower-case letters, digits and underscores, starting with a letter or underscore (as attemtps)",
        ));
    }
    Ok(t.to_string())
}

/// `MONITOR_LIVE_WORKER_GRACE`: a duration, or zero (`0`, `0s`) for none.
fn grace_setting(value: &Option<String>) -> Result<Duration, ConfigError> {
    // Zero in any unit means no grace; anything else is a positive duration.
    let zero = |t: &str| {
        let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        matches!(unit, "" | "ms" | "s" | "m" | "h") && number.trim().parse::<f64>() == Ok(0.0)
    };
    match value.as_deref().map(str::trim) {
        None => Ok(Settings::LIVE_WORKER_GRACE_DEFAULT),
        Some(t) if zero(t) => Ok(Duration::ZERO),
        Some(_) => duration_setting(
            "MONITOR_LIVE_WORKER_GRACE",
            value,
            Settings::LIVE_WORKER_GRACE_DEFAULT,
        ),
    }
}

/// The webhook URL is a secret: errors describe it, never show it.
fn webhook_setting(value: &Option<String>) -> Result<Option<WebhookUrl>, ConfigError> {
    let Some(text) = value.as_deref().map(str::trim) else {
        return Ok(None);
    };
    if text.is_empty() {
        return Ok(None);
    }
    registre_actors::alerts::Endpoint::parse(text).map_err(|problem| {
        ConfigError(format!(
            "MONITOR_ALERT_WEBHOOK_URL (value hidden) {problem}; expected an http:// or https:// URL \
             such as https://hooks.slack.com/services/..."
        ))
    })?;
    Ok(Some(WebhookUrl(text.to_string())))
}

fn settings(args: &SettingsArgs) -> Result<Settings, ConfigError> {
    let d = Settings::default();
    let failed_jobs_warn = match &args.failed_jobs_warn {
        None => d.failed_jobs_warn,
        Some(text) => text.trim().parse::<u64>().map_err(|_| {
            bad(
                "MONITOR_FAILED_JOBS_WARN",
                text,
                "is not a whole number",
                "a count such as 10 (0 or more)",
            )
        })?,
    };
    let s = Settings {
        check_interval: duration_setting(
            "MONITOR_CHECK_INTERVAL",
            &args.check_interval,
            d.check_interval,
        )?,
        stuck_job_after: duration_setting(
            "MONITOR_STUCK_JOB_AFTER",
            &args.stuck_job_after,
            d.stuck_job_after,
        )?,
        dead_worker_after: duration_setting(
            "MONITOR_DEAD_WORKER_AFTER",
            &args.dead_worker_after,
            d.dead_worker_after,
        )?,
        health_log_every: duration_setting(
            "MONITOR_HEALTH_LOG_EVERY",
            &args.health_log_every,
            d.health_log_every,
        )?,
        failed_jobs_warn,
        connect_timeout: duration_setting(
            "MONITOR_CONNECT_TIMEOUT",
            &args.connect_timeout,
            d.connect_timeout,
        )?,
        statement_timeout: duration_setting(
            "MONITOR_STATEMENT_TIMEOUT",
            &args.statement_timeout,
            d.statement_timeout,
        )?,
        count_resets_as_attempts: bool_setting(
            "MONITOR_COUNT_RESETS_AS_ATTEMPTS",
            &args.count_resets_as_attempts,
            d.count_resets_as_attempts,
        )?,
        attempts_column: identifier_setting(
            "MONITOR_ATTEMPTS_COLUMN",
            &args.attempts_column,
            &d.attempts_column,
        )?,
        live_worker_grace: grace_setting(&args.live_worker_grace)?,
        stuck_ocr_after: duration_setting(
            "MONITOR_STUCK_OCR_AFTER",
            &args.stuck_ocr_after,
            d.stuck_ocr_after,
        )?,
        leader_election: match args.leader_election.as_deref().map(str::trim) {
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
        alert_webhook: webhook_setting(&args.alert_webhook_url)?,
        alert_min_resets: match &args.alert_min_resets {
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
            &args.alert_repeat_after,
            d.alert_repeat_after,
        )?,
    };
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
    Ok(s)
}

/// Reads `MONITOR_HTTP_ADDR` and `MONITOR_ENABLE_FAULT_INJECTION`; needs no
/// project, so `healthcheck` can use it alone.
pub fn http_settings(args: &SettingsArgs) -> Result<HttpSettings, ConfigError> {
    let addr = match args.http_addr.as_deref().map(str::trim) {
        Some("off") => None,
        text => {
            let text = text.unwrap_or(HttpSettings::ADDR_DEFAULT);
            Some(text.parse::<SocketAddr>().map_err(|_| {
                bad(
                    "MONITOR_HTTP_ADDR",
                    text,
                    "is not an IP address and port",
                    "an address such as 127.0.0.1:9464, 0.0.0.0:9464 or [::1]:9464 (port 0 picks a free one), or off",
                )
            })?)
        }
    };
    let fault_injection = match args
        .enable_fault_injection
        .as_deref()
        .map(|t| t.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("false" | "0" | "no" | "") => false,
        Some("true" | "1" | "yes") => true,
        Some(_) => {
            let raw = args.enable_fault_injection.as_deref().unwrap_or_default();
            return Err(bad(
                "MONITOR_ENABLE_FAULT_INJECTION",
                raw,
                "is not a boolean",
                "true or false",
            ));
        }
    };
    Ok(HttpSettings {
        addr,
        fault_injection,
        access: access_settings(args)?,
    })
}

/// The dashboard's tokens: secrets, never repeated in an error.
fn access_settings(args: &SettingsArgs) -> Result<Access, ConfigError> {
    let token = |var: &str, value: &Option<String>| {
        value
            .as_deref()
            .map_or(Ok(None), |v| Secret::parse(var, v))
            .map_err(ConfigError)
    };
    let access = Access {
        view_token: token("MONITOR_HTTP_TOKEN", &args.http_token)?,
        admin_token: token("MONITOR_ADMIN_TOKEN", &args.admin_token)?,
    };
    if access.view_token.is_some() && access.view_token == access.admin_token {
        return Err(ConfigError(
            "MONITOR_ADMIN_TOKEN (value hidden) is the same as MONITOR_HTTP_TOKEN; expected two different \
             secrets (the admin token also lets its holder view)"
                .into(),
        ));
    }
    Ok(access)
}

fn log_settings(args: &SettingsArgs, env: &[(String, String)]) -> Result<LogSettings, ConfigError> {
    let level = match args
        .log_level
        .as_deref()
        .map(|l| l.trim().to_ascii_lowercase())
    {
        None => LevelFilter::Info,
        Some(l) => match l.as_str() {
            "error" => LevelFilter::Error,
            "warn" | "warning" => LevelFilter::Warn,
            "info" => LevelFilter::Info,
            "debug" => LevelFilter::Debug,
            "trace" => LevelFilter::Trace,
            _ => {
                let raw = args.log_level.as_deref().unwrap_or_default();
                return Err(bad(
                    "LOG_LEVEL",
                    raw,
                    "is not a log level",
                    "one of error, warn, info, debug, trace",
                ));
            }
        },
    };
    let format = match args.log_format.as_deref().map(str::trim) {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            return Err(bad(
                "LOG_FORMAT",
                other,
                "is not a log format",
                "text or json",
            ));
        }
    };
    let rust_log = env
        .iter()
        .find(|(k, v)| k == "RUST_LOG" && !v.trim().is_empty())
        .map(|(_, v)| v.clone());
    Ok(LogSettings {
        level,
        rust_log,
        format,
    })
}

/// Finds the projects in `env`; see the module documentation.
fn projects(env: &[(String, String)]) -> Result<(Vec<Project>, Vec<String>), ConfigError> {
    // Lower-case name -> (variable, value), Postgres strings only.
    let mut found: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut api_only: BTreeMap<String, String> = BTreeMap::new();
    let mut sorted: Vec<&(String, String)> = env.iter().collect();
    // `_DB_URL` first, so it wins over a Postgres `_SUPABASE_URL` of the same project.
    sorted.sort_by_key(|(k, _)| (!k.ends_with(DB_URL_SUFFIX), k.clone()));
    for (var, value) in sorted {
        let (prefix, is_db_url) = if let Some(p) = var.strip_suffix(DB_URL_SUFFIX) {
            (p, true)
        } else if let Some(p) = var.strip_suffix(API_URL_SUFFIX) {
            (p, false)
        } else {
            continue;
        };
        let is_postgres = value.starts_with("postgres://") || value.starts_with("postgresql://");
        if !is_db_url && !is_postgres {
            api_only.insert(prefix.to_ascii_lowercase(), var.clone());
            continue;
        }
        let valid_name = prefix.starts_with(|c: char| c.is_ascii_alphabetic())
            && prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            return Err(ConfigError(format!(
                "{var}: {prefix:?} is not a valid project name; expected letters, digits and underscores, \
                 starting with a letter (as in PROD_SUPABASE_DB_URL)"
            )));
        }
        if value.trim().is_empty() {
            return Err(ConfigError(format!(
                "{var} is empty; expected a Postgres connection string such as \
                 postgres://postgres:PASSWORD@db.PROJECT.supabase.co:5432/postgres"
            )));
        }
        let name = prefix.to_ascii_lowercase();
        match found.get(&name) {
            Some((other, _)) if other.ends_with(DB_URL_SUFFIX) && !is_db_url => continue,
            Some((other, _)) => {
                return Err(ConfigError(format!(
                    "{var} and {other} both name the project {name:?}; expected one variable per project \
                     (names are compared in lower case)"
                )));
            }
            None => {}
        }
        found.insert(name, (var.clone(), value.clone()));
    }

    let mut warnings = Vec::new();
    for (name, var) in &api_only {
        if !found.contains_key(name) {
            let want = format!("{}{DB_URL_SUFFIX}", name.to_ascii_uppercase());
            if found.is_empty() {
                return Err(ConfigError(format!(
                    "{var} is an HTTPS API URL, but registre-monitor talks to Postgres directly; expected {want} \
                     set to the project's Postgres connection string (Supabase dashboard, Connect)"
                )));
            }
            warnings.push(format!(
                "{var} is set but {want} is not: project {name} is not watched"
            ));
        }
    }
    if found.is_empty() {
        return Err(ConfigError(
            "no project configured; expected at least one <NAME>_SUPABASE_DB_URL variable (in the environment \
             or a .env file) holding a Postgres connection string, such as \
             DEV_SUPABASE_DB_URL=postgres://postgres:PASSWORD@db.PROJECT.supabase.co:5432/postgres"
                .into(),
        ));
    }
    let projects = found
        .into_iter()
        .map(|(name, (var, url))| {
            Project::parse(&name, &url).map_err(|e| ConfigError(format!("{var} {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((projects, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn finds_projects_by_suffix_in_lower_case() {
        let (p, w) = projects(&env(&[
            ("PROD_SUPABASE_DB_URL", "postgres://u:p@h/db"),
            ("STAGING_SUPABASE_URL", "postgresql://u@h2/db"),
            ("DEV_SUPABASE_URL", "https://x.supabase.co"),
            ("PROD_SUPABASE_URL", "https://y.supabase.co"),
        ]))
        .unwrap();
        let names: Vec<&str> = p.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["prod", "staging"]);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("DEV_SUPABASE_DB_URL"));
    }

    #[test]
    fn the_db_url_wins_over_a_postgres_api_url() {
        let (p, _) = projects(&env(&[
            ("PROD_SUPABASE_URL", "postgres://u@other/db"),
            ("PROD_SUPABASE_DB_URL", "postgres://u@h/db"),
        ]))
        .unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].redacted_url, "postgres://u@h/db");
    }

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

    #[test]
    fn http_address_and_fault_hook_settings() {
        use clap::Parser;
        let parse = |args: &[&str]| {
            let cli = crate::cli::Cli::try_parse_from(
                std::iter::once("registre-monitor").chain(args.iter().copied()),
            )
            .unwrap();
            http_settings(&cli.settings)
        };
        // Flags win over the variables; the defaults only show without them.
        if std::env::var_os("MONITOR_HTTP_ADDR").is_none() {
            assert_eq!(
                parse(&[]).unwrap().addr,
                Some("127.0.0.1:9464".parse().unwrap())
            );
        }
        assert_eq!(parse(&["--http-addr", "off"]).unwrap().addr, None);
        let e = parse(&["--http-addr", "9464"]).unwrap_err();
        assert!(e.0.starts_with("MONITOR_HTTP_ADDR=\"9464\""), "{e}");
        assert!(
            parse(&["--enable-fault-injection", "true"])
                .unwrap()
                .fault_injection
        );
        let e = parse(&["--enable-fault-injection", "maybe"]).unwrap_err();
        assert!(e.0.contains("MONITOR_ENABLE_FAULT_INJECTION"), "{e}");
    }

    #[test]
    fn https_only_names_the_variable_to_add() {
        let e = projects(&env(&[("DEV_SUPABASE_URL", "https://x.supabase.co")])).unwrap_err();
        assert!(e.0.contains("DEV_SUPABASE_DB_URL"), "{e}");
    }
}
