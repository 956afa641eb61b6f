//! The command line: subcommands, and one flag per setting.
//!
//! Each flag also reads the environment variable of the same name; values
//! arrive here as text and are checked by [`crate::config`], which names the
//! variable in its one-line errors.

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "registre-monitor",
    version,
    about = "Self-healing health monitor for the extraction job queue",
    long_about = "Self-healing health monitor for the extraction job queue.\n\n\
        Watches every project named by a <NAME>_SUPABASE_DB_URL variable: puts stuck \
        jobs back in the queue, retires dead workers and frees their jobs, and logs \
        the queue's health."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub settings: SettingsArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the monitor until SIGTERM or Ctrl-C (the default).
    Run,
    /// Ask a running monitor's /healthz (MONITOR_HTTP_ADDR): exit 0 when
    /// healthy, 1 otherwise. For container health checks (no shell, no curl).
    Healthcheck,
    /// Check every project's tables and columns; exit 1 if any is wrong or unreachable.
    Check,
    /// Show each project's workers, job counts, stuck jobs and missing indexes.
    Diagnose(DiagnoseArgs),
    /// Put stuck jobs back in the queue once, as the monitor would.
    ResetStuckJobs(ResetStuckJobsArgs),
    /// Watch the monitor heal a simulated fleet on a scratch local database.
    Demo(DemoArgs),
}

#[derive(Debug, Args)]
pub struct DiagnoseArgs {
    /// Only this project (as named by <NAME>_SUPABASE_DB_URL, in lower case)
    #[arg(long = "env", value_name = "NAME")]
    pub env: Option<String>,

    /// One JSON document for scripts instead of tables (shape in docs/operations.md)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ResetStuckJobsArgs {
    /// Only this project (as named by <NAME>_SUPABASE_DB_URL, in lower case)
    #[arg(long = "env", value_name = "NAME")]
    pub env: Option<String>,

    /// Reset jobs processing for longer than this [default: MONITOR_STUCK_JOB_AFTER]
    #[arg(long, value_name = "DURATION")]
    pub older_than: Option<String>,

    /// List what would be reset and change nothing
    #[arg(long)]
    pub dry_run: bool,
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
}

/// Settings shared by every subcommand.
#[derive(Debug, Args)]
pub struct SettingsArgs {
    /// How often each check runs [default: 30s]
    #[arg(
        long,
        env = "MONITOR_CHECK_INTERVAL",
        global = true,
        value_name = "DURATION"
    )]
    pub check_interval: Option<String>,

    /// A job processing for longer than this goes back to the queue [default: 3m]
    #[arg(
        long,
        env = "MONITOR_STUCK_JOB_AFTER",
        global = true,
        value_name = "DURATION"
    )]
    pub stuck_job_after: Option<String>,

    /// A worker whose heartbeat is older than this is dead [default: 2m]
    #[arg(
        long,
        env = "MONITOR_DEAD_WORKER_AFTER",
        global = true,
        value_name = "DURATION"
    )]
    pub dead_worker_after: Option<String>,

    /// How often the health status line is logged [default: 5m]
    #[arg(
        long,
        env = "MONITOR_HEALTH_LOG_EVERY",
        global = true,
        value_name = "DURATION"
    )]
    pub health_log_every: Option<String>,

    /// Warn when more jobs than this have failed [default: 10]
    #[arg(
        long,
        env = "MONITOR_FAILED_JOBS_WARN",
        global = true,
        value_name = "COUNT"
    )]
    pub failed_jobs_warn: Option<String>,

    /// Bound on opening a database connection [default: 10s]
    #[arg(
        long,
        env = "MONITOR_CONNECT_TIMEOUT",
        global = true,
        value_name = "DURATION"
    )]
    pub connect_timeout: Option<String>,

    /// Bound on each statement, enforced by the server [default: 15s]
    #[arg(
        long,
        env = "MONITOR_STATEMENT_TIMEOUT",
        global = true,
        value_name = "DURATION"
    )]
    pub statement_timeout: Option<String>,

    /// Count each automatic reset or release as an attempt of the job [default: true]
    #[arg(
        long,
        env = "MONITOR_COUNT_RESETS_AS_ATTEMPTS",
        global = true,
        value_name = "BOOL"
    )]
    pub count_resets_as_attempts: Option<String>,

    /// The job's attempts column [default: attemtps]
    #[arg(
        long,
        env = "MONITOR_ATTEMPTS_COLUMN",
        global = true,
        value_name = "COLUMN"
    )]
    pub attempts_column: Option<String>,

    /// Extra time for a job whose worker is alive and working on it [default: 0]
    #[arg(
        long,
        env = "MONITOR_LIVE_WORKER_GRACE",
        global = true,
        value_name = "DURATION"
    )]
    pub live_worker_grace: Option<String>,

    /// An OCR job in processing for longer than this goes back to status 3 [default: 10m]
    #[arg(
        long,
        env = "MONITOR_STUCK_OCR_AFTER",
        global = true,
        value_name = "DURATION"
    )]
    pub stuck_ocr_after: Option<String>,

    /// session (one instance acts, by advisory lock) or off (every instance acts) [default: session]
    #[arg(
        long,
        env = "MONITOR_LEADER_ELECTION",
        global = true,
        value_name = "MODE"
    )]
    pub leader_election: Option<String>,

    /// Post alerts as JSON to this URL (a secret: never logged) [default: none]
    #[arg(
        long,
        env = "MONITOR_ALERT_WEBHOOK_URL",
        global = true,
        value_name = "URL",
        hide_env_values = true
    )]
    pub alert_webhook_url: Option<String>,

    /// Alert on a batch of resets or reaped workers of at least this size [default: 1]
    #[arg(
        long,
        env = "MONITOR_ALERT_MIN_RESETS",
        global = true,
        value_name = "COUNT"
    )]
    pub alert_min_resets: Option<String>,

    /// At most one alert of a kind per project within this [default: 5m]
    #[arg(
        long,
        env = "MONITOR_ALERT_REPEAT_AFTER",
        global = true,
        value_name = "DURATION"
    )]
    pub alert_repeat_after: Option<String>,

    /// error, warn, info, debug or trace; RUST_LOG wins when set [default: info]
    #[arg(long, env = "LOG_LEVEL", global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// text or json (one JSON object a line) [default: text]
    #[arg(long, env = "LOG_FORMAT", global = true, value_name = "FORMAT")]
    pub log_format: Option<String>,

    /// Address of the dashboard, /healthz, /readyz, /metrics and /status, or off [default: 127.0.0.1:9464]
    #[arg(long, env = "MONITOR_HTTP_ADDR", global = true, value_name = "ADDR")]
    pub http_addr: Option<String>,

    /// Token needed to see the dashboard, /status, /metrics (a secret; prefer the variable) [default: none: open]
    #[arg(
        long,
        env = "MONITOR_HTTP_TOKEN",
        global = true,
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub http_token: Option<String>,

    /// Token that enables the dashboard's actions (a secret; prefer the variable) [default: none: read-only]
    #[arg(
        long,
        env = "MONITOR_ADMIN_TOKEN",
        global = true,
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,

    /// true enables POST /debug/fault, a drill hook that makes a check panic or hang [default: false]
    #[arg(
        long,
        env = "MONITOR_ENABLE_FAULT_INJECTION",
        global = true,
        value_name = "BOOL"
    )]
    pub enable_fault_injection: Option<String>,
}
