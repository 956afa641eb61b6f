//! The command line: subcommands, each with the flags it uses.
//!
//! Each flag also reads the environment variable of the same name; values
//! arrive here as text and are checked by [`crate::config`], which names the
//! variable in its one-line errors. The flags come in groups
//! ([`MonitorArgs`], [`Thresholds`], [`ConnectionArgs`], [`LogArgs`]), and
//! each subcommand takes the groups it uses, so its `--help` shows those
//! and no other: `demo --help` has no `--check-interval`. Whatever a
//! subcommand takes ends up in one [`SettingsArgs`], the rest unset.

use clap::{Args, CommandFactory, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "registre-monitor",
    version,
    about = "Self-healing health monitor for the extraction job queue",
    long_about = "Self-healing health monitor for the extraction job queue.\n\n\
        Watches every project named by a <NAME>_SUPABASE_DB_URL variable: puts stuck \
        jobs back in the queue, retires dead workers and frees their jobs, and logs \
        the queue's health. Without a subcommand it runs the monitor (`run`), with \
        the flags below.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// `run`'s flags, when `run` is left out.
    #[command(flatten)]
    pub run: RunArgs,
}

// Parsed once per process: the size of `Run`'s settings costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the monitor until SIGTERM or Ctrl-C (the default).
    Run(RunArgs),
    /// Ask a running monitor's /healthz (MONITOR_HTTP_ADDR): exit 0 when
    /// healthy, 1 otherwise. For container health checks (no shell, no curl).
    Healthcheck(HealthcheckArgs),
    /// Check every project's tables and columns; exit 1 if any is wrong or unreachable.
    Check(CheckArgs),
    /// Show each project's workers, job counts, stuck jobs and missing indexes.
    Diagnose(DiagnoseArgs),
    /// Put stuck jobs back in the queue once, as the monitor would.
    ResetStuckJobs(ResetStuckJobsArgs),
    /// Watch the monitor heal a simulated fleet on a scratch local database.
    Demo(DemoArgs),
}

impl Cli {
    /// The subcommand to run (`run` when none is given).
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Run(self.run))
    }

    /// Every environment variable a flag of any subcommand reads.
    pub fn variables() -> Vec<String> {
        let cli = Cli::command();
        let mut names: Vec<String> = std::iter::once(&cli)
            .chain(cli.get_subcommands())
            .flat_map(|c| c.get_arguments())
            .filter_map(|a| a.get_env())
            .map(|e| e.to_string_lossy().into_owned())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

impl Command {
    /// The settings this subcommand takes, the rest unset.
    pub fn settings(&self) -> SettingsArgs {
        let mut s = SettingsArgs::default();
        match self {
            Command::Run(a) => {
                s.monitor = a.monitor.clone();
                s.thresholds = a.thresholds.clone();
                s.connection = a.connection.clone();
                s.log = a.log.clone();
            }
            Command::Healthcheck(a) => s.monitor.http_addr = a.http_addr.clone(),
            Command::Check(a) => {
                s.connection = a.connection.clone();
                s.log = a.log.clone();
            }
            Command::Diagnose(a) => {
                s.thresholds = a.thresholds.clone();
                s.connection = a.connection.clone();
                s.log = a.log.clone();
            }
            Command::ResetStuckJobs(a) => {
                s.thresholds.stuck_job_after = a.stuck_job_after.clone();
                s.connection = a.connection.clone();
                s.log = a.log.clone();
            }
            Command::Demo(a) => s.log = a.log.clone(),
        }
        s
    }
}

/// Every setting, as text; what a subcommand does not take stays unset
/// (its default).
#[derive(Debug, Clone, Default)]
pub struct SettingsArgs {
    pub monitor: MonitorArgs,
    pub thresholds: Thresholds,
    pub connection: ConnectionArgs,
    pub log: LogArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub thresholds: Thresholds,
    #[command(flatten)]
    pub monitor: MonitorArgs,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// Address of the running monitor's endpoints (loopback is asked when it is 0.0.0.0) [default: 127.0.0.1:9464]
    #[arg(long, env = "MONITOR_HTTP_ADDR", value_name = "ADDR")]
    pub http_addr: Option<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Args)]
pub struct DiagnoseArgs {
    /// Only this project (as named by <NAME>_SUPABASE_DB_URL, in lower case)
    #[arg(long = "env", value_name = "NAME")]
    pub env: Option<String>,

    /// One JSON document for scripts instead of tables (shape in docs/operations.md)
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub thresholds: Thresholds,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Args)]
pub struct ResetStuckJobsArgs {
    /// Only this project (as named by <NAME>_SUPABASE_DB_URL, in lower case)
    #[arg(long = "env", value_name = "NAME")]
    pub env: Option<String>,

    /// Reset jobs processing for longer than this [default: MONITOR_STUCK_JOB_AFTER, else 3m]
    #[arg(long, value_name = "DURATION")]
    pub older_than: Option<String>,

    /// List what would be reset and change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// The monitor's stuck-job threshold, `--older-than`'s default.
    #[arg(long, env = "MONITOR_STUCK_JOB_AFTER", hide = true)]
    pub stuck_job_after: Option<String>,

    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// A Postgres server where the demo may create (and drop) a scratch database
    #[arg(
        long,
        env = "DEMO_DATABASE_URL",
        value_name = "URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres",
        hide_env_values = true
    )]
    pub database_url: String,

    /// Simulated workers
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub workers: u32,

    /// Jobs to enqueue
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub jobs: u32,

    /// Give up after this long if jobs are still unfinished
    #[arg(long, value_name = "DURATION", default_value = "2m")]
    pub duration: String,

    #[command(flatten)]
    pub log: LogArgs,
}

/// When a job is stuck and a worker dead: what `run` acts on and
/// `diagnose` reports by.
#[derive(Debug, Clone, Default, Args)]
pub struct Thresholds {
    /// A job processing for longer than this goes back to the queue [default: 3m]
    #[arg(long, env = "MONITOR_STUCK_JOB_AFTER", value_name = "DURATION")]
    pub stuck_job_after: Option<String>,

    /// A worker whose heartbeat is older than this is dead [default: 2m]
    #[arg(long, env = "MONITOR_DEAD_WORKER_AFTER", value_name = "DURATION")]
    pub dead_worker_after: Option<String>,
}

/// The monitor's own settings (`run` only).
#[derive(Debug, Clone, Default, Args)]
pub struct MonitorArgs {
    /// How often each check runs [default: 30s]
    #[arg(long, env = "MONITOR_CHECK_INTERVAL", value_name = "DURATION")]
    pub check_interval: Option<String>,

    /// How often the health status line is logged [default: 5m]
    #[arg(long, env = "MONITOR_HEALTH_LOG_EVERY", value_name = "DURATION")]
    pub health_log_every: Option<String>,

    /// Warn when more jobs than this have failed [default: 10]
    #[arg(long, env = "MONITOR_FAILED_JOBS_WARN", value_name = "COUNT")]
    pub failed_jobs_warn: Option<String>,

    /// Count each automatic reset or release as an attempt of the job [default: true]
    #[arg(long, env = "MONITOR_COUNT_RESETS_AS_ATTEMPTS", value_name = "BOOL")]
    pub count_resets_as_attempts: Option<String>,

    /// The job's attempts column [default: attemtps]
    #[arg(long, env = "MONITOR_ATTEMPTS_COLUMN", value_name = "COLUMN")]
    pub attempts_column: Option<String>,

    /// Extra time for a job whose worker is alive and working on it [default: 0]
    #[arg(long, env = "MONITOR_LIVE_WORKER_GRACE", value_name = "DURATION")]
    pub live_worker_grace: Option<String>,

    /// An OCR job in processing for longer than this goes back to status 3 [default: 10m]
    #[arg(long, env = "MONITOR_STUCK_OCR_AFTER", value_name = "DURATION")]
    pub stuck_ocr_after: Option<String>,

    /// session (one instance acts, by advisory lock) or off (every instance acts) [default: session]
    #[arg(long, env = "MONITOR_LEADER_ELECTION", value_name = "MODE")]
    pub leader_election: Option<String>,

    /// Post alerts as JSON to this URL (a secret: never logged) [default: none]
    #[arg(
        long,
        env = "MONITOR_ALERT_WEBHOOK_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub alert_webhook_url: Option<String>,

    /// Alert on a batch of resets or reaped workers of at least this size [default: 1]
    #[arg(long, env = "MONITOR_ALERT_MIN_RESETS", value_name = "COUNT")]
    pub alert_min_resets: Option<String>,

    /// At most one alert of a kind per project within this [default: 5m]
    #[arg(long, env = "MONITOR_ALERT_REPEAT_AFTER", value_name = "DURATION")]
    pub alert_repeat_after: Option<String>,

    /// Address of the dashboard, /healthz, /readyz, /metrics and /status, or off [default: 127.0.0.1:9464]
    #[arg(long, env = "MONITOR_HTTP_ADDR", value_name = "ADDR")]
    pub http_addr: Option<String>,

    /// Token needed to see the dashboard, /status, /metrics (a secret; prefer the variable) [default: none: open]
    #[arg(
        long,
        env = "MONITOR_HTTP_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub http_token: Option<String>,

    /// Token that enables the dashboard's actions (a secret; prefer the variable) [default: none: read-only]
    #[arg(
        long,
        env = "MONITOR_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,

    /// true enables POST /debug/fault, a drill hook that makes a check panic or hang [default: false]
    #[arg(long, env = "MONITOR_ENABLE_FAULT_INJECTION", value_name = "BOOL")]
    pub enable_fault_injection: Option<String>,
}

/// Bounds on talking to a database.
#[derive(Debug, Clone, Default, Args)]
pub struct ConnectionArgs {
    /// Bound on opening a database connection [default: 10s]
    #[arg(long, env = "MONITOR_CONNECT_TIMEOUT", value_name = "DURATION")]
    pub connect_timeout: Option<String>,

    /// Bound on each statement, enforced by the server [default: 15s]
    #[arg(long, env = "MONITOR_STATEMENT_TIMEOUT", value_name = "DURATION")]
    pub statement_timeout: Option<String>,
}

/// What is logged, and how.
#[derive(Debug, Clone, Default, Args)]
pub struct LogArgs {
    /// error, warn, info, debug or trace; RUST_LOG wins when set [default: info]
    #[arg(long, env = "LOG_LEVEL", value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// text or json (one JSON object a line) [default: text]
    #[arg(long, env = "LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn help(subcommand: &str) -> String {
        let mut cli = Cli::command();
        cli.find_subcommand_mut(subcommand)
            .unwrap()
            .render_long_help()
            .to_string()
    }

    #[test]
    fn each_subcommand_shows_the_flags_it_uses() {
        let demo = help("demo");
        assert!(
            demo.contains("--workers") && demo.contains("--log-level"),
            "{demo}"
        );
        assert!(!demo.contains("--check-interval"), "{demo}");
        let check = help("check");
        assert!(check.contains("--connect-timeout"), "{check}");
        assert!(!check.contains("--stuck-job-after"), "{check}");
        let diagnose = help("diagnose");
        assert!(diagnose.contains("--dead-worker-after"), "{diagnose}");
        assert!(!diagnose.contains("--check-interval"), "{diagnose}");
        let reset = help("reset-stuck-jobs");
        assert!(reset.contains("--older-than"), "{reset}");
        assert!(!reset.contains("--stuck-job-after"), "{reset}");
        let healthcheck = help("healthcheck");
        assert!(healthcheck.contains("--http-addr"), "{healthcheck}");
        assert!(!healthcheck.contains("--log-level"), "{healthcheck}");
        let run = help("run");
        for flag in [
            "--check-interval",
            "--stuck-job-after",
            "--connect-timeout",
            "--log-format",
        ] {
            assert!(run.contains(flag), "{run}");
        }
    }

    #[test]
    fn flags_go_to_their_subcommand_only() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("registre-monitor").chain(args.iter().copied()))
        };
        assert!(parse(&["check", "--check-interval", "5s"]).is_err());
        assert!(parse(&["--check-interval", "5s", "check"]).is_err());
        let run = parse(&["--check-interval", "5s"]).unwrap().into_command();
        assert!(matches!(run, Command::Run(_)));
        assert_eq!(run.settings().monitor.check_interval.as_deref(), Some("5s"));
        assert!(Cli::variables().contains(&"DEMO_DATABASE_URL".to_string()));
        assert!(Cli::variables().contains(&"MONITOR_CHECK_INTERVAL".to_string()));
    }
}
