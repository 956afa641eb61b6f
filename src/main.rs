//! registre-monitor: a self-healing health monitor for the extraction job
//! queue. `main` reads `.env`, parses the command line, checks the
//! configuration (exit 2 on a bad setting), starts logging and runs the
//! chosen subcommand.

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use registre_monitor::cli::{Cli, Command};
use registre_monitor::{
    check, config, demo, diagnose, dotenv, healthcheck, logging, reset_stuck_jobs, run,
};

/// Exit code for a bad setting or bad command line (as clap's own).
const EXIT_BAD_CONFIG: u8 = 2;

fn main() -> ExitCode {
    if let Err(message) = load_dotenv() {
        return config_error(&message);
    }
    let cli = Cli::parse();
    if let Some(Command::Healthcheck) = cli.command {
        return healthcheck::run(&cli.settings);
    }
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let command = cli.command.unwrap_or(Command::Run);
    // The demo brings its own database: it needs no configured project.
    let loaded = match command {
        Command::Demo(_) => config::load_without_projects(&cli.settings, &env),
        _ => config::load(&cli.settings, &env),
    };
    let config = match loaded {
        Ok(config) => config,
        Err(e) => return config_error(&e.0),
    };
    match command {
        Command::Demo(_) => logging::init_for_live_line(&config.log),
        _ => logging::init(&config.log),
    }
    match command {
        Command::Run => match run::run(config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::from(EXIT_BAD_CONFIG),
        },
        // Normally answered above, before the configuration (it needs no project).
        Command::Healthcheck => healthcheck::run(&cli.settings),
        Command::Check => check::run(config),
        Command::Diagnose(args) => {
            diagnose::command(config, &args).unwrap_or_else(|e| config_error(&e.0))
        }
        Command::ResetStuckJobs(args) => {
            reset_stuck_jobs::command(config, &args).unwrap_or_else(|e| config_error(&e.0))
        }
        Command::Demo(args) => demo::run(args),
    }
}

fn config_error(message: &str) -> ExitCode {
    eprintln!("registre-monitor: configuration error: {message}");
    ExitCode::from(EXIT_BAD_CONFIG)
}

/// Copies `.env` into the environment, never over a variable already set.
fn load_dotenv() -> Result<(), String> {
    let Some(vars) = dotenv::read(Path::new(".env"))? else {
        return Ok(());
    };
    for (name, value) in vars {
        if std::env::var_os(&name).is_none() {
            // SAFETY: no other thread exists yet; the runtime starts later.
            unsafe { std::env::set_var(name, value) };
        }
    }
    Ok(())
}
