//! Configuration: the projects to watch and the settings, checked once.
//!
//! Projects come from the environment ([`projects`]); settings from flags or
//! their variables ([`cli`], [`settings`]), `.env` filling in what the
//! environment lacks ([`dotenv`]). Whatever is wrong becomes one
//! [`ConfigError`] line that names the variable, says what is wrong with the
//! value and what is expected; the program prints it and exits with code 2.
//! What is checked here is handed on typed (durations, identifiers, the
//! webhook URL), never as text to be parsed again.

pub mod cli;
pub mod dotenv;
pub mod duration;
pub mod names;
pub mod projects;
pub mod settings;

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use log::LevelFilter;
use registre_actors::{Project, Settings};

use crate::dashboard::auth::{Access, Secret};
use cli::SettingsArgs;

/// Everything the program needs, checked.
#[derive(Debug)]
pub struct Config {
    pub projects: Vec<Project>,
    /// Shared as is by every actor and endpoint.
    pub settings: Arc<Settings>,
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

/// Whether a variable is one the monitor reads (or may be meant to): a
/// project's (`*_SUPABASE_*`) or a setting's.
fn is_ours(name: &str) -> bool {
    name.contains("SUPABASE")
        || name.starts_with("MONITOR_")
        || ["LOG_LEVEL", "LOG_FORMAT", "RUST_LOG", "DEMO_DATABASE_URL"].contains(&name)
}

/// The environment as text. A variable whose name or value is not valid
/// UTF-8 is left out, unless it is one of the monitor's: that is an error
/// naming it (its value is never shown: it may hold a password).
pub fn environment(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut env = Vec::new();
    for (name, value) in vars {
        let shown_name = name.to_string_lossy().into_owned();
        match (name.into_string(), value.into_string()) {
            (Ok(name), Ok(value)) => env.push((name, value)),
            _ if is_ours(&shown_name) => {
                return Err(ConfigError(format!(
                    "{shown_name} is not valid UTF-8 (value not shown); expected text in UTF-8: \
                     percent-encode other bytes of a password in a connection string (a byte 0xFF as %FF)"
                )));
            }
            _ => {}
        }
    }
    Ok(env)
}

/// What the configuration is loaded for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `run`: projects, every setting, the thresholds checked against the
    /// check interval.
    Monitor,
    /// `check`, `diagnose`, `reset-stuck-jobs`: projects, and the settings
    /// the subcommand takes.
    Command,
    /// The demo, which brings its own database: no `<NAME>_SUPABASE_DB_URL`
    /// is needed and any is ignored.
    Demo,
}

/// Reads the settings from `args` and, but for the demo, the projects
/// from `env`, with warnings for variables that look misspelled.
pub fn load(
    args: &SettingsArgs,
    env: &[(String, String)],
    purpose: Purpose,
) -> Result<Config, ConfigError> {
    let log = log_settings(args, env)?;
    let settings = settings::settings(args)?;
    if purpose == Purpose::Monitor {
        settings::check_thresholds(&settings)?;
    }
    let http = http_settings(args)?;
    if purpose == Purpose::Demo {
        return Ok(Config {
            projects: Vec::new(),
            settings: Arc::new(settings),
            log,
            http,
            warnings: Vec::new(),
        });
    }
    let misspelled = names::misspelled(env, &cli::Cli::variables());
    let (projects, mut warnings) = projects::projects(env).map_err(|e| {
        // A misspelled project variable is often why none is found.
        match misspelled.is_empty() {
            true => e,
            false => ConfigError(format!("{e} ({})", misspelled.join("; "))),
        }
    })?;
    warnings.extend(misspelled);
    Ok(Config {
        projects,
        settings: Arc::new(settings),
        log,
        http,
        warnings,
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

/// Whether JSON logs were asked for (`LOG_FORMAT=json`): then start-up
/// errors are JSON too, even when `LOG_FORMAT` is all that was right.
pub fn wants_json(args: &SettingsArgs) -> bool {
    args.log.log_format.as_deref().map(str::trim) == Some("json")
}

/// Reads `MONITOR_HTTP_ADDR`, `MONITOR_ENABLE_FAULT_INJECTION` and the
/// dashboard's tokens; needs no project, so `healthcheck` can use it alone.
pub fn http_settings(args: &SettingsArgs) -> Result<HttpSettings, ConfigError> {
    let addr = match args.monitor.http_addr.as_deref().map(str::trim) {
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
    let fault_injection = match &args.monitor.enable_fault_injection {
        None => false,
        Some(text) => settings::boolean("MONITOR_ENABLE_FAULT_INJECTION", text)?,
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
        view_token: token("MONITOR_HTTP_TOKEN", &args.monitor.http_token)?,
        admin_token: token("MONITOR_ADMIN_TOKEN", &args.monitor.admin_token)?,
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
        .log
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
                let raw = args.log.log_level.as_deref().unwrap_or_default();
                return Err(bad(
                    "LOG_LEVEL",
                    raw,
                    "is not a log level",
                    "one of error, warn, info, debug, trace",
                ));
            }
        },
    };
    let format = match args.log.log_format.as_deref().map(str::trim) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_address_and_fault_hook_settings() {
        use clap::Parser;
        let parse = |args: &[&str]| {
            let cli = crate::config::cli::Cli::try_parse_from(
                std::iter::once("registre-monitor").chain(args.iter().copied()),
            )
            .unwrap();
            http_settings(&cli.into_command().settings())
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
}
