//! What a project's schema has: the optional columns the rules depend on
//! (probed once per project), and every column of the watched tables (for
//! `registre-monitor check`), and whether the monitor may write. Catalog
//! reads, and locks on no row.

use serde::{Deserialize, Serialize};

use super::literal;
use super::stage::{OCR, PROCESSING};
use crate::database::{Database, DbError};
use crate::identifier::Identifier;

/// The columns of `extraction_queue` that older databases may lack: the
/// processing stage's limit, and every column of the OCR stage (the
/// configured attempts column is probed beside them).
pub const OPTIONAL_COLUMNS: [&str; 6] = [
    PROCESSING.max_attempts,
    OCR.worker,
    OCR.started_at,
    OCR.attempts,
    OCR.max_attempts,
    OCR.message_column,
];

/// What a project's `extraction_queue` has of the optional columns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Columns {
    /// Whether `extraction_queue` was found at all.
    pub table: bool,
    /// Those of the asked columns that exist.
    pub columns: Vec<String>,
}

impl Columns {
    pub fn has(&self, column: &str) -> bool {
        self.columns.iter().any(|c| c == column)
    }
}

/// The text of [`probe_columns`].
pub fn probe_columns_sql(attempts_column: &Identifier) -> String {
    let names: Vec<String> = std::iter::once(attempts_column.as_str())
        .chain(OPTIONAL_COLUMNS)
        .map(literal)
        .collect();
    format!(
        "SELECT json_build_object(
            'table', to_regclass('extraction_queue') IS NOT NULL,
            'columns', (SELECT coalesce(json_agg(attname::text ORDER BY attnum), '[]')
                        FROM pg_attribute
                        WHERE attrelid = to_regclass('extraction_queue')
                          AND attnum > 0 AND NOT attisdropped
                          AND attname IN ({})))",
        names.join(", ")
    )
}

/// Which of the attempts column and [`OPTIONAL_COLUMNS`] the
/// `extraction_queue` found through the search path has.
pub async fn probe_columns(
    db: &Database,
    attempts_column: &Identifier,
) -> Result<Columns, DbError> {
    db.query_json(&probe_columns_sql(attempts_column)).await
}

/// A table's column as the database has it ([`schema_columns`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnType {
    pub table: String,
    pub column: String,
    /// `information_schema.columns.data_type`, such as `uuid`, `integer`,
    /// `timestamp with time zone`.
    #[serde(rename = "type")]
    pub data_type: String,
}

/// Every column of `tables` in the current schema (the one the monitor's
/// unqualified names resolve to), in table and column order.
pub async fn schema_columns(db: &Database, tables: &[&str]) -> Result<Vec<ColumnType>, DbError> {
    let names: Vec<String> = tables.iter().map(|t| literal(t)).collect();
    let sql = format!(
        "SELECT coalesce(json_agg(json_build_object('table', table_name, 'column', column_name, 'type', data_type)
                                  ORDER BY table_name, ordinal_position), '[]')
         FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name IN ({})",
        names.join(", ")
    );
    db.query_json(&sql).await
}

/// Whether the monitor may write what its rules write: a lock on no row of
/// each watched table it updates. Nothing is read or locked, but a
/// read-only database (25006) or a role without `UPDATE` (42501) fails it
/// as a write would, before a stuck job or a dead worker needs one.
pub async fn can_write(db: &Database) -> Result<(), DbError> {
    let _: i64 = db
        .query_json(
            "SELECT to_json((SELECT count(*) FROM (SELECT 1 FROM extraction_queue WHERE false FOR UPDATE) q)
                          + (SELECT count(*) FROM (SELECT 1 FROM worker_status WHERE false FOR UPDATE) w))",
        )
        .await?;
    Ok(())
}
