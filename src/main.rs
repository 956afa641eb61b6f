//! registre-monitor: a self-healing health monitor for the extraction job
//! queue. `main` reads `.env` and the environment, parses the command line,
//! checks the configuration (exit 2 on a bad setting, in the log format
//! asked for), starts logging and runs the chosen subcommand.

use std::process::ExitCode;

use clap::Parser;
use registre_monitor::commands::{check, demo, diagnose, healthcheck, reset_stuck_jobs};
use registre_monitor::config::cli::{Cli, Command};
use registre_monitor::config::{self, ConfigError, Purpose, dotenv};
use registre_monitor::{logging, serve};

/// Exit code for a bad setting or bad command line (as clap's own).
const EXIT_BAD_CONFIG: u8 = 2;

fn main() -> ExitCode {
    // Before the command line is read, only the variable can say JSON.
    let json_asked = std::env::var("LOG_FORMAT").is_ok_and(|f| f.trim() == "json");
    if let Err(message) = dotenv::load() {
        return config_error(json_asked, &ConfigError(message));
    }
    let env = config::environment(std::env::vars_os());
    let command = Cli::parse().into_command();
    let args = command.settings();
    if let Command::Healthcheck(_) = command {
        // Needs no project, nor logging; exits 0 or 1 only (docker's rule).
        return healthcheck::run(&args);
    }
    let json = config::wants_json(&args);
    let env = match env {
        Ok(env) => env,
        Err(e) => return config_error(json, &e),
    };
    let purpose = match command {
        Command::Run(_) => Purpose::Monitor,
        Command::Demo(_) => Purpose::Demo,
        _ => Purpose::Command,
    };
    let config = match config::load(&args, &env, purpose) {
        Ok(config) => config,
        Err(e) => return config_error(json, &e),
    };
    match command {
        Command::Demo(_) => logging::init_for_live_line(&config.log),
        _ => logging::init(&config.log),
    }
    for warning in &config.warnings {
        log::warn!("{warning}");
    }
    let outcome = match command {
        Command::Run(_) => match serve::run(config) {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(serve::RunError::Startup(e)) => Err(ConfigError(e)),
            Err(serve::RunError::SupervisorDied) => Ok(ExitCode::FAILURE),
        },
        // Answered above, before the configuration.
        Command::Healthcheck(_) => Ok(healthcheck::run(&args)),
        Command::Check(_) => Ok(check::run(config)),
        Command::Diagnose(args) => diagnose::command(config, &args),
        Command::ResetStuckJobs(args) => reset_stuck_jobs::command(config, &args),
        Command::Demo(args) => Ok(demo::run(args)),
    };
    outcome.unwrap_or_else(|e| config_error(json, &e))
}

/// Prints a start-up error as one line (one JSON object when JSON logs
/// were asked for) and gives the exit code for it.
fn config_error(json: bool, e: &ConfigError) -> ExitCode {
    logging::startup_error(json, &format!("configuration error: {e}"));
    ExitCode::from(EXIT_BAD_CONFIG)
}
