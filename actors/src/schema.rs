//! The tables and columns the monitor's statements rely on, and a check of a
//! database against them.
//!
//! [`EXPECTED`] is the one list: `registre-monitor check` prints what
//! [`check`] finds, and the monitor itself could refuse a project with it.
//! Columns the monitor does not read (`attemtps`, the OCR columns, ...) are
//! not required: older databases may lack them.

use std::fmt;

use crate::database::{Database, DbError};
use crate::sql;

/// One column the monitor needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedColumn {
    pub table: &'static str,
    pub column: &'static str,
    /// As `information_schema.columns.data_type` spells it.
    pub data_type: &'static str,
}

const fn col(table: &'static str, column: &'static str, data_type: &'static str) -> ExpectedColumn {
    ExpectedColumn {
        table,
        column,
        data_type,
    }
}

const TIMESTAMPTZ: &str = "timestamp with time zone";

/// Every column the monitor's statements use, table by table.
pub const EXPECTED: &[ExpectedColumn] = &[
    col("extraction_queue", "id", "uuid"),
    col("extraction_queue", "status_id", "integer"),
    col("extraction_queue", "worker_id", "text"),
    col("extraction_queue", "processing_started_at", TIMESTAMPTZ),
    col("extraction_queue", "error_message", "text"),
    col("extraction_queue", "document_source", "text"),
    col("extraction_queue", "document_number", "text"),
    col("extraction_queue", "updated_at", TIMESTAMPTZ),
    col("worker_status", "worker_id", "text"),
    col("worker_status", "status", "text"),
    col("worker_status", "current_job_id", "uuid"),
    col("worker_status", "last_heartbeat", TIMESTAMPTZ),
    col("extraction_status", "id", "integer"),
    col("extraction_status", "name", "text"),
];

/// The tables of [`EXPECTED`], in order, each once.
pub fn tables() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for c in EXPECTED {
        if !out.contains(&c.table) {
            out.push(c.table);
        }
    }
    out
}

/// One way a database differs from [`EXPECTED`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaProblem {
    MissingTable(&'static str),
    MissingColumn {
        table: &'static str,
        column: &'static str,
        expected: &'static str,
    },
    WrongType {
        table: &'static str,
        column: &'static str,
        expected: &'static str,
        found: String,
    },
}

/// `timestamp with time zone` as people write it.
fn short(data_type: &str) -> &str {
    match data_type {
        TIMESTAMPTZ => "timestamptz",
        other => other,
    }
}

impl fmt::Display for SchemaProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemaProblem::MissingTable(t) => write!(f, "missing table {t}"),
            SchemaProblem::MissingColumn {
                table,
                column,
                expected,
            } => write!(f, "missing column {table}.{column} ({})", short(expected)),
            SchemaProblem::WrongType {
                table,
                column,
                expected,
                found,
            } => write!(
                f,
                "wrong type for {table}.{column}: expected {} found {}",
                short(expected),
                short(found)
            ),
        }
    }
}

/// Compares the columns a database has with [`EXPECTED`].
pub fn compare(found: &[sql::ColumnType]) -> Vec<SchemaProblem> {
    let mut problems = Vec::new();
    for table in tables() {
        if !found.iter().any(|c| c.table == table) {
            problems.push(SchemaProblem::MissingTable(table));
            continue;
        }
        for e in EXPECTED.iter().filter(|e| e.table == table) {
            match found
                .iter()
                .find(|c| c.table == e.table && c.column == e.column)
            {
                None => problems.push(SchemaProblem::MissingColumn {
                    table: e.table,
                    column: e.column,
                    expected: e.data_type,
                }),
                Some(c) if c.data_type != e.data_type => problems.push(SchemaProblem::WrongType {
                    table: e.table,
                    column: e.column,
                    expected: e.data_type,
                    found: c.data_type.clone(),
                }),
                Some(_) => {}
            }
        }
    }
    problems
}

/// Reads the database's columns (one statement) and compares them.
pub async fn check(db: &Database) -> Result<Vec<SchemaProblem>, DbError> {
    let found = sql::schema_columns(db, &tables()).await?;
    Ok(compare(&found))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(table: &str, column: &str, data_type: &str) -> sql::ColumnType {
        sql::ColumnType {
            table: table.into(),
            column: column.into(),
            data_type: data_type.into(),
        }
    }

    #[test]
    fn names_missing_tables_columns_and_wrong_types() {
        let mut have: Vec<sql::ColumnType> = EXPECTED
            .iter()
            .filter(|e| e.table != "extraction_status")
            .map(|e| found(e.table, e.column, e.data_type))
            .collect();
        have.retain(|c| c.column != "error_message");
        have.iter_mut()
            .find(|c| c.column == "last_heartbeat")
            .unwrap()
            .data_type = "timestamp without time zone".into();
        let text: Vec<String> = compare(&have).iter().map(|p| p.to_string()).collect();
        assert_eq!(
            text,
            [
                "missing column extraction_queue.error_message (text)",
                "wrong type for worker_status.last_heartbeat: expected timestamptz found timestamp without time zone",
                "missing table extraction_status",
            ]
        );
    }
}
