//! registre-monitor: a self-healing health monitor for the extraction job
//! queue. `main` reads `.env`, parses the command line, checks the
//! configuration (exit 2 on a bad setting), starts logging and runs the
//! chosen subcommand.

use std::process::ExitCode;

use clap::Parser;
use registre_monitor::commands::{check, demo, diagnose, healthcheck, reset_stuck_jobs};
use registre_monitor::config::cli::{Cli, Command};
use registre_monitor::config::{self, ConfigError, dotenv};
use registre_monitor::{logging, serve};

/// Exit code for a bad setting or bad command line (as clap's own).
const EXIT_BAD_CONFIG: u8 = 2;

fn main() -> ExitCode {
    if let Err(message) = dotenv::load() {
        return config_error(&ConfigError(message));
    }
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Run);
    if let Command::Healthcheck = command {
        // Needs no project, nor logging.
        return healthcheck::run(&cli.settings);
    }
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    // The demo brings its own database: it needs no configured project.
    let loaded = match command {
        Command::Demo(_) => config::load_without_projects(&cli.settings, &env),
        _ => config::load(&cli.settings, &env),
    };
    let config = match loaded {
        Ok(config) => config,
        Err(e) => return config_error(&e),
    };
    match command {
        Command::Demo(_) => logging::init_for_live_line(&config.log),
        _ => logging::init(&config.log),
    }
    let outcome = match command {
        Command::Run => Ok(match serve::run(config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(serve::RunError::Startup(_)) => ExitCode::from(EXIT_BAD_CONFIG),
            Err(serve::RunError::SupervisorDied) => ExitCode::FAILURE,
        }),
        // Answered above, before the configuration.
        Command::Healthcheck => Ok(healthcheck::run(&cli.settings)),
        Command::Check => Ok(check::run(config)),
        Command::Diagnose(args) => diagnose::command(config, &args),
        Command::ResetStuckJobs(args) => reset_stuck_jobs::command(config, &args),
        Command::Demo(args) => Ok(demo::run(args)),
    };
    outcome.unwrap_or_else(|e| config_error(&e))
}

fn config_error(e: &ConfigError) -> ExitCode {
    eprintln!("registre-monitor: configuration error: {e}");
    ExitCode::from(EXIT_BAD_CONFIG)
}
