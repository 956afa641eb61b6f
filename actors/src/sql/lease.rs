//! The lease of the leader election, in the monitor's own opt-in table
//! ([`LEASE_TABLE`], created by `sql/leader.sql`), and the schema probe
//! that says whether it exists (and whether the stuck rules' indexes do).
//!
//! One atomic statement takes or renews the lease when it is this
//! instance's or has expired, and says who holds it: it needs no session,
//! so it works on the pool through any pooler. Times are the database's.

use std::time::Duration;

use serde::Deserialize;

use super::{Columns, interval, literal, probe_columns_sql};
use crate::database::{Database, DbError};
use crate::identifier::Identifier;

/// The lease table (`sql/leader.sql`), found through the search path like
/// the watched tables.
pub const LEASE_TABLE: &str = "registre_monitor_leader";

/// What [`claim_lease`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Lease {
    /// Whether this instance holds the lease now (taken or renewed).
    pub ours: bool,
    /// The instance holding it (`hostname:pid`), ours or another's; `None`
    /// only in the instant another instance creates the row.
    pub holder: Option<String>,
    /// Milliseconds until the holder's lease expires (database clock).
    pub expires_in_ms: Option<i64>,
}

/// The text of [`claim_lease`]: `ttl` is how long a lease taken now lasts.
pub fn claim_lease_sql(instance_id: &str, ttl: Duration) -> String {
    format!(
        "WITH claimed AS (
            INSERT INTO {LEASE_TABLE} AS l (id, instance, expires_at)
            VALUES (1, {me}, now() + {ttl})
            ON CONFLICT (id) DO UPDATE SET instance = excluded.instance, expires_at = excluded.expires_at
            WHERE l.instance = excluded.instance OR l.expires_at < now()
            RETURNING l.instance, l.expires_at),
        held AS (
            SELECT instance, expires_at FROM claimed
            UNION ALL
            SELECT instance, expires_at FROM {LEASE_TABLE}
            WHERE id = 1 AND NOT EXISTS (SELECT 1 FROM claimed))
        SELECT json_build_object(
            'ours', EXISTS (SELECT 1 FROM claimed),
            'holder', (SELECT instance FROM held LIMIT 1),
            'expires_in_ms', (SELECT (extract(epoch FROM expires_at - now()) * 1000)::bigint
                              FROM held LIMIT 1))",
        me = literal(instance_id),
        ttl = interval(ttl),
    )
}

/// Takes the lease if free or expired, renews it if ours; says who holds it.
/// A claim lost in a crash of the server is made again next interval.
pub async fn claim_lease(
    db: &Database,
    instance_id: &str,
    ttl: Duration,
) -> Result<Lease, DbError> {
    db.write_redoable(&claim_lease_sql(instance_id, ttl), &[])
        .await
}

/// The schema probe: the optional columns ([`Columns`]) and whether the
/// lease table exists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Probed {
    #[serde(flatten)]
    pub columns: Columns,
    pub lease: bool,
    /// Whether the stuck rules' indexes of `sql/indexes.sql` exist (the
    /// OCR one counts only where the rule is on).
    #[serde(default)]
    pub stuck_indexed: bool,
    #[serde(default)]
    pub ocr_stuck_indexed: bool,
    /// Whether the health counts' index of `sql/indexes.sql` exists.
    #[serde(default)]
    pub open_status_indexed: bool,
    /// Whether the dead workers' jobs' index of `sql/indexes.sql` exists.
    #[serde(default)]
    pub processing_indexed: bool,
}

/// The text of [`probe_schema`]: the columns' probe, with the lease table
/// and the stuck rules' indexes.
pub fn probe_schema_sql(attempts_column: &Identifier) -> String {
    format!(
        "SELECT (({}))::jsonb || jsonb_build_object('lease', to_regclass({}) IS NOT NULL,
            'stuck_indexed', to_regclass('extraction_queue_stuck_idx') IS NOT NULL,
            'ocr_stuck_indexed', to_regclass('extraction_queue_ocr_stuck_idx') IS NOT NULL,
            'open_status_indexed', to_regclass('extraction_queue_open_status_idx') IS NOT NULL,
            'processing_indexed', to_regclass('extraction_queue_processing_idx') IS NOT NULL)",
        probe_columns_sql(attempts_column),
        literal(LEASE_TABLE)
    )
}

/// Probes, in one catalog statement, the optional columns and the lease table.
pub async fn probe_schema(db: &Database, attempts_column: &Identifier) -> Result<Probed, DbError> {
    db.query_json(&probe_schema_sql(attempts_column)).await
}
