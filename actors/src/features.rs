//! What a project's schema allows: probed once per project, then kept.
//!
//! The attempts column (`attemtps`, or `MONITOR_ATTEMPTS_COLUMN`) and the
//! OCR stage's columns ([`sql::OCR`]) are not in every database, nor the
//! leader election's opt-in lease table. One catalog statement
//! ([`sql::probe_schema`]) says which exist; a rule whose columns are
//! missing switches itself off for that project with one INFO line. Owned
//! by the project's `Environment`, so a check's restart does not probe
//! again; forgotten after a schema error, so a changed schema is seen.

use std::sync::{Arc, Mutex};

use crate::database::{Database, DbError};
use crate::identifier::Identifier;
use crate::settings::Settings;
use crate::sql::{self, AttemptColumns, Columns, OCR, OcrRule, PROCESSING, Stage, StuckRules};

/// The rules a project's schema allows, under the settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    /// Resets and releases counted in this column, or not counted.
    pub attempts: Option<AttemptColumns>,
    /// The OCR rule, or off.
    pub ocr: Option<OcrRule>,
    /// Whether the leader election's lease table (`sql/leader.sql`) exists.
    pub lease: bool,
    /// Whether every stuck rule on has its index (`sql/indexes.sql`): the
    /// resetter then looks for stuck jobs read-only in those ranges first,
    /// and writes only when it finds some.
    pub stuck_indexed: bool,
    /// Whether the open-status index (`sql/indexes.sql`) exists: the
    /// health check then probes between exact counts (each an index range);
    /// without it one pass over the table counts exactly every run, which
    /// costs less than probes that each may read the table.
    pub open_status_indexed: bool,
    /// Whether the dead workers' jobs' index (`sql/indexes.sql`) exists:
    /// without it the reaper finds their jobs by a read-only pass first.
    pub processing_indexed: bool,
}

impl Allowed {
    /// The stuck-job rules for this project.
    pub fn stuck_rules(&self, settings: &Settings) -> StuckRules {
        StuckRules {
            stuck_after: settings.stuck_job_after,
            live_grace: (!settings.live_worker_grace.is_zero()).then_some(sql::LiveGrace {
                grace: settings.live_worker_grace,
                dead_after: settings.dead_worker_after,
            }),
            attempts: self.attempts.clone(),
            ocr: self.ocr.clone(),
            workers: Default::default(),
        }
    }
}

/// A project's probed features; cheap to clone, shared by its checks.
#[derive(Debug, Clone)]
pub struct Features {
    project: String,
    known: Arc<Mutex<Option<Allowed>>>,
}

impl Features {
    pub fn new(project: &str) -> Self {
        Features {
            project: project.to_string(),
            known: Arc::new(Mutex::new(None)),
        }
    }

    /// The allowed rules, probing the schema the first time (one statement).
    pub async fn get(&self, db: &Database, settings: &Settings) -> Result<Allowed, DbError> {
        if let Some(known) = self.known.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Ok(known);
        }
        let probed = sql::probe_schema(db, &settings.attempts_column).await?;
        let columns = probed.columns;
        let decided = decide(&columns, settings);
        let allowed = Allowed {
            lease: probed.lease,
            stuck_indexed: probed.stuck_indexed
                && (decided.ocr.is_none() || probed.ocr_stuck_indexed),
            open_status_indexed: probed.open_status_indexed,
            processing_indexed: probed.processing_indexed,
            ..decided
        };
        if !columns.table {
            // The statements will say what is missing; probe again next time.
            return Ok(allowed);
        }
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if known.is_none() {
            *known = Some(allowed.clone());
            self.report(&columns, &allowed, settings);
        }
        Ok(allowed)
    }

    /// Forgets what was probed (after a schema error: the schema changed).
    pub fn forget(&self) {
        *self.known.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn report(&self, columns: &Columns, allowed: &Allowed, settings: &Settings) {
        let env = self.project.as_str();
        if settings.count_resets_as_attempts && allowed.attempts.is_none() {
            let column = settings.attempts_column.as_str();
            log::info!(environment = env, column = column;
                "ℹ️  Poison-job limit off: extraction_queue has no {column} column");
        }
        if allowed.ocr.is_none() {
            let missing: Vec<&str> = OCR_RULE_COLUMNS
                .into_iter()
                .filter(|c| !columns.has(c))
                .collect();
            log::info!(environment = env, missingColumns:serde = missing;
                "ℹ️  Stuck OCR rule off: extraction_queue has no OCR columns");
        }
    }
}

/// The columns the OCR rule needs (its attempts columns only count).
const OCR_RULE_COLUMNS: [&str; 3] = [OCR.worker, OCR.started_at, OCR.message_column];

/// Where a stage's resets are counted, if `columns` has its counter.
fn counted(stage: Stage, attempts: Identifier, columns: &Columns) -> Option<AttemptColumns> {
    columns.has(attempts.as_str()).then(|| AttemptColumns {
        attempts,
        max: columns
            .has(stage.max_attempts)
            .then_some(stage.max_attempts),
    })
}

/// The rules `columns` allow under `settings`.
pub fn decide(columns: &Columns, settings: &Settings) -> Allowed {
    let count = settings.count_resets_as_attempts;
    let attempts = count
        .then(|| counted(PROCESSING, settings.attempts_column.clone(), columns))
        .flatten();
    let ocr = OCR_RULE_COLUMNS
        .into_iter()
        .all(|c| columns.has(c))
        .then(|| OcrRule {
            stuck_after: settings.stuck_ocr_after,
            attempts: count
                .then(|| counted(OCR, Identifier::from_static(OCR.attempts), columns))
                .flatten(),
        });
    Allowed {
        attempts,
        ocr,
        lease: false,
        stuck_indexed: false,
        open_status_indexed: false,
        processing_indexed: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(names: &[&str]) -> Columns {
        Columns {
            table: true,
            columns: names.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn rules_follow_the_columns_and_the_setting() {
        let s = Settings::default();
        let all = columns(&[
            "attemtps",
            "max_attempts",
            "ocr_worker_id",
            "ocr_started_at",
            "ocr_attempts",
            "ocr_max_attempts",
            "ocr_error",
        ]);
        let a = decide(&all, &s);
        assert_eq!(a.attempts.as_ref().unwrap().attempts.as_str(), "attemtps");
        assert!(a.ocr.as_ref().unwrap().attempts.is_some());

        let old = decide(&columns(&["max_attempts"]), &s);
        assert_eq!(old.attempts, None);
        assert_eq!(old.ocr, None);

        let off = Settings {
            count_resets_as_attempts: false,
            ..Settings::default()
        };
        let a = decide(&all, &off);
        assert_eq!(a.attempts, None);
        assert!(a.ocr.is_some() && a.ocr.unwrap().attempts.is_none());
    }
}
