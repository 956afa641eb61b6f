//! The statements that read what a database has, called directly on fresh
//! databases: the optional-column probe, the schema check and `diagnose`.

mod common;

use std::time::Duration;

use common::{SCHEMA, TestDb};
use registre_actors::identifier::Identifier;
use registre_actors::schema::{self, SchemaProblem};
use registre_actors::settings::Settings;
use registre_actors::sql::{self, OPTIONAL_COLUMNS};

/// The real schema without the OCR stage and the attempts column.
fn older_schema() -> String {
    let attempts = "    attemtps              integer     NOT NULL DEFAULT 0,\n";
    common::schema_without_ocr().replace(attempts, "")
}

/// The probe finds every optional column the real schema has, only the
/// ones an older schema has, and says when the table is missing.
#[test]
fn the_probe_finds_the_optional_columns_a_schema_has() {
    let attempts = Settings::ATTEMPTS_COLUMN_DEFAULT;
    let probe = |db: &TestDb| {
        let attempts = attempts.clone();
        db.run(async move |db| sql::probe_columns(&db, &attempts).await.unwrap())
    };
    let full = probe(&TestDb::new("sc_full"));
    assert!(full.table);
    for column in OPTIONAL_COLUMNS.iter().chain([&"attemtps"]) {
        assert!(full.has(column), "{column} in {full:?}");
    }
    let older = probe(&TestDb::with_schema("sc_older", &older_schema()));
    assert!(older.table);
    assert_eq!(older.columns, ["max_attempts"]);
    let empty = probe(&TestDb::with_schema("sc_empty", "SELECT 1"));
    assert!(!empty.table && empty.columns.is_empty(), "{empty:?}");
}

/// The schema check passes on the real schema and names a missing column
/// and a wrong type.
#[test]
fn the_schema_check_names_what_is_wrong() {
    let good = TestDb::new("sc_good");
    assert_eq!(good.run(async |db| schema::check(&db).await.unwrap()), []);
    let broken = SCHEMA
        .replace("    error_message         text,\n", "")
        .replace(
            "last_heartbeat timestamptz NOT NULL DEFAULT now()",
            "last_heartbeat text",
        );
    let bad = TestDb::with_schema("sc_bad", &broken);
    let problems = bad.run(async |db| schema::check(&db).await.unwrap());
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(matches!(
        &problems[0],
        SchemaProblem::MissingColumn {
            column: "error_message",
            ..
        }
    ));
    assert!(matches!(
        &problems[1],
        SchemaProblem::WrongType { column: "last_heartbeat", found, .. } if found == "text"
    ));
}

/// `diagnose` reads workers (alive or dead by the threshold), every status
/// with its count (zeros included), the stuck jobs and which of the asked
/// indexes exist, in one snapshot.
#[test]
fn diagnose_reads_a_snapshot_of_the_project() {
    let mut db = TestDb::new("sc_diag");
    db.workers(&[
        ("w-alive", "busy", "5 seconds"),
        ("w-dead", "busy", "10 minutes"),
    ]);
    let [stale, _, _] = db.jobs([
        (2, Some("w-dead"), Some("10 minutes")),
        (2, Some("w-alive"), Some("1 second")),
        (1, None, None),
    ]);
    db.exec(&format!(
        "UPDATE worker_status SET current_job_id = '{stale}', jobs_completed = 7 WHERE worker_id = 'w-dead';
         CREATE INDEX present_idx ON extraction_queue (status_id)"
    ));
    let minutes = |n: u64| Duration::from_secs(60 * n);
    let d = db.run(async |db| {
        sql::diagnose(&db, minutes(5), minutes(2), &["present_idx", "absent_idx"])
            .await
            .unwrap()
    });
    let workers: Vec<(&str, bool)> = d.workers.iter().map(|w| (w.id.as_str(), w.alive)).collect();
    assert_eq!(workers, [("w-alive", true), ("w-dead", false)]);
    assert_eq!(d.workers[1].current_job.as_deref(), Some(stale.as_str()));
    assert_eq!(d.workers[1].jobs_completed, Some(7));
    let counts: Vec<(Option<i32>, i64)> = d.jobs.iter().map(|s| (s.status_id, s.count)).collect();
    let expected = [(1, 1), (2, 2), (3, 0), (4, 0), (5, 0), (6, 0)].map(|(s, n)| (Some(s), n));
    assert_eq!(counts, expected);
    assert_eq!(d.jobs[1].name.as_deref(), Some("En traitement"));
    assert_eq!(d.stuck_jobs.len(), 1);
    assert_eq!(d.stuck_jobs[0].id, stale);
    assert_eq!(d.present_indexes, ["present_idx"]);
    // Read-only: the stuck job is still there.
    assert_eq!(db.job_status(&stale), 2);
}

/// An invalid attempts column cannot even be built.
#[test]
fn only_plain_names_make_an_identifier() {
    assert!(Identifier::new("attemtps; DROP TABLE x").is_err());
    assert_eq!(Identifier::new("order").unwrap().to_string(), "\"order\"");
}
