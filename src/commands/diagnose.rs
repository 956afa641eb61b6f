//! `registre-monitor diagnose`: what each project's queue looks like now.
//!
//! Per project: the workers (alive or dead by `MONITOR_DEAD_WORKER_AFTER`),
//! job counts by status, the jobs stuck by `MONITOR_STUCK_JOB_AFTER` (the
//! resetter's own condition), and the recommended indexes the database lacks,
//! each with the statement that creates it. Tables for people, or `--json`
//! (shape in docs/operations.md). Read-only; exit 1 when a project could not be read.

use std::process::ExitCode;
use std::time::Duration;

use futures_util::future::join_all;
use registre_actors::indexes::{self, RecommendedIndex};
use registre_actors::sql::{self, Diagnosis, ReleasedJob, StatusCount, WorkerRow};
use registre_actors::{Database, Project, Settings};
use serde::Serialize;

use crate::commands::table::{self, Colour, Style, cell};
use crate::config::cli::DiagnoseArgs;
use crate::config::{self, Config, ConfigError};

/// A missing index, as reported.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MissingIndex {
    pub name: String,
    /// Which of the monitor's statements wants it.
    pub purpose: String,
    /// The exact `CREATE INDEX CONCURRENTLY ...` to run.
    pub create: String,
}

/// One project's report (the `--json` shape).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectReport {
    pub name: String,
    /// The connection as shown: user, host, port, database (no password).
    pub url: String,
    /// Why the project could not be read; the lists are then empty.
    pub error: Option<String>,
    pub stuck_job_after_seconds: f64,
    pub dead_worker_after_seconds: f64,
    pub workers: Vec<WorkerRow>,
    pub jobs: Vec<StatusCount>,
    pub stuck_jobs: Vec<ReleasedJob>,
    pub missing_indexes: Vec<MissingIndex>,
}

/// Everything `--json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub projects: Vec<ProjectReport>,
}

/// `diagnose` as the command line asks: the projects selected by `--env`
/// (an unknown name is a configuration error).
pub fn command(config: Config, args: &DiagnoseArgs) -> Result<ExitCode, ConfigError> {
    let projects = config::select_projects(config.projects, args.env.as_deref())?;
    Ok(run(projects, &config.settings, args.json))
}

/// Diagnoses `projects` and prints the result.
pub fn run(projects: Vec<Project>, settings: &Settings, json: bool) -> ExitCode {
    let report = actix_rt::System::new().block_on(diagnose_all(&projects, settings));
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => table::print(&format!("{text}\n")),
            Err(e) => {
                eprintln!("registre-monitor: cannot write the report as JSON: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        table::print(&human(&report, Style::for_stdout()));
    }
    if report.projects.iter().all(|p| p.error.is_none()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Diagnoses every project at once.
pub async fn diagnose_all(projects: &[Project], settings: &Settings) -> Report {
    let recommended = indexes::recommended();
    let names: Vec<&str> = recommended.iter().map(|i| i.name.as_str()).collect();
    let reports = join_all(projects.iter().map(|project| async {
        let db = Database::new(
            project,
            settings.connect_timeout,
            settings.statement_timeout,
        );
        let result = sql::diagnose(
            &db,
            settings.stuck_job_after,
            settings.dead_worker_after,
            &names,
        )
        .await;
        report(
            project,
            settings,
            &recommended,
            result.map_err(|e| e.to_string()),
        )
    }))
    .await;
    Report { projects: reports }
}

fn report(
    project: &Project,
    settings: &Settings,
    recommended: &[RecommendedIndex],
    result: Result<Diagnosis, String>,
) -> ProjectReport {
    let mut r = ProjectReport {
        name: project.name.clone(),
        url: project.shown.clone(),
        error: None,
        stuck_job_after_seconds: settings.stuck_job_after.as_secs_f64(),
        dead_worker_after_seconds: settings.dead_worker_after.as_secs_f64(),
        workers: Vec::new(),
        jobs: Vec::new(),
        stuck_jobs: Vec::new(),
        missing_indexes: Vec::new(),
    };
    match result {
        Err(e) => r.error = Some(e),
        Ok(d) => {
            r.missing_indexes = recommended
                .iter()
                .filter(|i| !d.present_indexes.contains(&i.name))
                .map(|i| MissingIndex {
                    name: i.name.clone(),
                    purpose: i.purpose.clone(),
                    create: i.create.clone(),
                })
                .collect();
            r.workers = d.workers;
            r.jobs = d.jobs;
            r.stuck_jobs = d.stuck_jobs;
        }
    }
    r
}

fn seconds(s: f64) -> String {
    crate::config::duration::show(Duration::from_secs_f64(s))
}

/// The report as tables.
pub fn human(report: &Report, style: Style) -> String {
    let mut out = String::new();
    for (i, p) in report.projects.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&style.paint(&format!("== {} ", p.name), Some(Colour::Bold)));
        out.push_str(&format!("({})\n", p.url));
        if let Some(e) = &p.error {
            out.push_str(&format!("  {}\n", style.paint(e, Some(Colour::Red))));
            continue;
        }
        project_tables(&mut out, p, style);
    }
    out
}

fn project_tables(out: &mut String, p: &ProjectReport, style: Style) {
    let alive = p.workers.iter().filter(|w| w.alive).count();
    out.push_str(&format!(
        "\nWorkers: {} ({alive} alive; dead after {} without heartbeat)\n",
        p.workers.len(),
        seconds(p.dead_worker_after_seconds)
    ));
    if !p.workers.is_empty() {
        let rows: Vec<Vec<table::Cell>> = p
            .workers
            .iter()
            .map(|w| {
                vec![
                    cell(&w.id),
                    cell(w.status.as_deref().unwrap_or("-")),
                    cell(
                        w.heartbeat_age_seconds
                            .map_or("never".into(), |s| format!("{} ago", table::age(s))),
                    ),
                    cell(w.current_job.as_deref().unwrap_or("-")),
                    cell(w.jobs_completed.map_or("-".into(), |n| n.to_string())),
                    cell(w.jobs_failed.map_or("-".into(), |n| n.to_string())),
                    if w.alive {
                        ("alive".into(), Some(Colour::Green))
                    } else {
                        ("dead".into(), Some(Colour::Red))
                    },
                ]
            })
            .collect();
        out.push_str(&table::render(
            style,
            "  ",
            &[
                "WORKER",
                "STATUS",
                "HEARTBEAT",
                "CURRENT JOB",
                "COMPLETED",
                "FAILED",
                "STATE",
            ],
            &rows,
        ));
    }

    let total: i64 = p.jobs.iter().map(|j| j.count).sum();
    out.push_str(&format!("\nJobs: {total}\n"));
    let rows: Vec<Vec<table::Cell>> = p
        .jobs
        .iter()
        .map(|j| {
            vec![
                cell(j.status_id.map_or("NULL".to_string(), |id| id.to_string())),
                cell(j.name.as_deref().unwrap_or("(not in extraction_status)")),
                cell(j.count.to_string()),
            ]
        })
        .collect();
    out.push_str(&table::render(
        style,
        "  ",
        &["ID", "STATUS", "JOBS"],
        &rows,
    ));

    let stuck_title = format!(
        "\nStuck jobs: {} (processing for more than {})\n",
        p.stuck_jobs.len(),
        seconds(p.stuck_job_after_seconds)
    );
    let colour = (!p.stuck_jobs.is_empty()).then_some(Colour::Yellow);
    out.push_str(&style.paint(&stuck_title, colour));
    if !p.stuck_jobs.is_empty() {
        out.push_str(&jobs_table(&p.stuck_jobs, style));
    }

    out.push_str(&format!(
        "\nMissing indexes: {}\n",
        if p.missing_indexes.is_empty() {
            "none".to_string()
        } else {
            p.missing_indexes.len().to_string()
        }
    ));
    for i in &p.missing_indexes {
        out.push_str(&format!(
            "  {}\n    -- {}\n    {}\n",
            style.paint(&i.name, Some(Colour::Yellow)),
            i.purpose,
            i.create
        ));
    }
}

/// Jobs (stuck or reset) as a table: id, worker, document, time in processing.
pub fn jobs_table(jobs: &[ReleasedJob], style: Style) -> String {
    let rows: Vec<Vec<table::Cell>> = jobs
        .iter()
        .map(|j| {
            vec![
                cell(&j.id),
                cell(j.worker.as_deref().unwrap_or("-")),
                cell(&j.doc),
                cell(table::age(j.seconds)),
            ]
        })
        .collect();
    table::render(
        style,
        "  ",
        &["JOB", "WORKER", "DOCUMENT", "PROCESSING FOR"],
        &rows,
    )
}
