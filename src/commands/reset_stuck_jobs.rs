//! `registre-monitor reset-stuck-jobs`: the stuck-job rule, once, by hand.
//!
//! Runs the stuck-job statement with the plain rule ([`sql::reset_stuck_jobs`]):
//! the `StuckJobResetter`'s condition and message, without counting the
//! reset as an attempt, without the live-worker grace and without the OCR
//! rule, with `--older-than` as the threshold (default
//! `MONITOR_STUCK_JOB_AFTER`). `--dry-run` lists the jobs that the same
//! condition selects and changes nothing. Exit 1 when a project failed.

use std::process::ExitCode;
use std::time::Duration;

use registre_actors::sql::{self, ReleasedJob};
use registre_actors::{Database, DbError, Project, Settings};

use crate::commands::diagnose::jobs_table;
use crate::commands::table::Style;
use crate::config::cli::ResetStuckJobsArgs;
use crate::config::duration;
use crate::config::{self, Config, ConfigError};

/// `reset-stuck-jobs` as the command line asks: the projects selected by
/// `--env`, `--older-than` or `MONITOR_STUCK_JOB_AFTER` (a bad value or an
/// unknown name is a configuration error).
pub fn command(config: Config, args: &ResetStuckJobsArgs) -> Result<ExitCode, ConfigError> {
    let older_than = match &args.older_than {
        None => config.settings.stuck_job_after,
        Some(text) => duration::parse(text).map_err(|problem| {
            ConfigError(format!(
                "--older-than={text:?} {problem}; expected {}",
                duration::EXPECTED
            ))
        })?,
    };
    let projects = config::select_projects(config.projects, args.env.as_deref())?;
    Ok(run(projects, &config.settings, older_than, args.dry_run))
}

/// Resets (or lists, with `dry_run`) each project's stuck jobs and prints them.
pub fn run(
    projects: Vec<Project>,
    settings: &Settings,
    older_than: Duration,
    dry_run: bool,
) -> ExitCode {
    let style = Style::for_stdout();
    let mut all_ok = true;
    actix_rt::System::new().block_on(async {
        // One project after the other: the output reads in order, and a
        // by-hand reset is no time-critical path.
        for project in &projects {
            let db = Database::new(
                project,
                settings.connect_timeout,
                settings.statement_timeout,
            );
            let result = if dry_run {
                sql::find_stuck_jobs(&db, older_than).await
            } else {
                sql::reset_stuck_jobs(&db, older_than).await
            };
            all_ok &= result.is_ok();
            crate::commands::table::print(&describe(project, older_than, dry_run, result, style));
        }
    });
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// What happened in one project, as printed.
fn describe(
    project: &Project,
    older_than: Duration,
    dry_run: bool,
    result: Result<Vec<ReleasedJob>, DbError>,
    style: Style,
) -> String {
    let limit = duration::show(older_than);
    match result {
        Err(e) => format!("{}: {e} ({})\n", project.name, project.shown),
        Ok(jobs) if jobs.is_empty() => format!(
            "{}: no job processing for more than {limit}{}\n",
            project.name,
            if dry_run { " (dry run)" } else { "" }
        ),
        Ok(jobs) => {
            let verb = if dry_run { "would reset" } else { "reset" };
            let plural = if jobs.len() == 1 { "" } else { "s" };
            let mut out = format!(
                "{}: {verb} {} job{plural} processing for more than {limit}{}\n",
                project.name,
                jobs.len(),
                if dry_run {
                    " (dry run: nothing changed)"
                } else {
                    " (back to waiting)"
                }
            );
            out.push_str(&jobs_table(&jobs, style));
            out
        }
    }
}
