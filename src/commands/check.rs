//! `registre-monitor check`: is every project reachable, with the tables and
//! columns the monitor uses, of the expected types?
//!
//! One line per project, `ok` or exactly what is wrong; exit 0 when every
//! project is fine, 1 otherwise. Quick and read-only (one statement per
//! project, all projects at once), so it serves as a readiness probe.

use std::process::ExitCode;

use futures_util::future::join_all;
use registre_actors::schema::{self, SchemaProblem};
use registre_actors::{Database, DbError, Project};

use crate::config::Config;

/// Checks every project and prints one line each.
pub fn run(config: Config) -> ExitCode {
    let settings = config.settings;
    let results =
        actix_rt::System::new().block_on(join_all(config.projects.iter().map(|project| async {
            let db = Database::new(
                project,
                settings.connect_timeout,
                settings.statement_timeout,
            );
            schema::check(&db).await
        })));
    let mut all_ok = true;
    for (project, result) in config.projects.iter().zip(results) {
        let (ok, line) = verdict(project, result);
        all_ok &= ok;
        crate::commands::table::print(&format!("{line}\n"));
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Whether the project is fine, and its line.
fn verdict(project: &Project, result: Result<Vec<SchemaProblem>, DbError>) -> (bool, String) {
    let what = match &result {
        Ok(problems) if problems.is_empty() => "ok".to_string(),
        Ok(problems) => problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "),
        Err(e) => e.to_string(),
    };
    let ok = matches!(&result, Ok(p) if p.is_empty());
    (ok, format!("{}: {what} ({})", project.name, project.shown))
}
