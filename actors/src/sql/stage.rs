//! The stages a job can be stuck in, and how a job is put back from one.
//!
//! A job is processed (status 2, by a worker) and, where the schema has the
//! columns, OCR'd (status 6, by an OCR worker). Each [`Stage`] names the
//! columns its rule reads and writes; the stuck-job statements, the
//! dead-worker statement, `diagnose` and the schema probe are all built
//! from these two descriptions, so a column is spelled in one place.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{interval, literal};
use crate::identifier::Identifier;

/// The `error_message` of a job the stuck-job rule put back in the queue.
pub const STUCK_RESET_MESSAGE: &str =
    "Auto-reset by health monitor - exceeded processing time limit";

/// The `ocr_error` of an OCR job the OCR rule put back to status 3.
pub const OCR_RESET_MESSAGE: &str =
    "Auto-reset by health monitor - exceeded OCR processing time limit";

/// The `error_message` (and `ocr_error`) prefix of a job that ran out of
/// attempts; the statement appends `N times`.
pub const STUCK_FAILED_MESSAGE: &str = "Failed by health monitor - stuck in processing";

/// The limit of a job whose `max_attempts` is null (the schema's default).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// The largest value an attempts counter is given (an `integer`'s): a
/// counter already there stays there rather than overflow.
pub const MAX_COUNTER: i64 = i32::MAX as i64;

/// Ages are clamped to this many seconds either way (about 317,000 years,
/// beyond any finite timestamp's distance from now): an `'infinity'` or
/// `'-infinity'` timestamp gets an age instead of an error.
pub const MAX_AGE_SECONDS: i64 = 10_000_000_000_000;

/// Whole seconds from the SQL timestamp `ts` to the database's `now()`
/// (negative when `ts` is in the future), NULL when `ts` is. Never fails,
/// whatever `ts` holds: `now() - 'infinity'` and the `bigint` of an
/// infinite epoch both raise errors, so the two epochs are subtracted
/// (infinite values are numbers there) and the result clamped to
/// [`MAX_AGE_SECONDS`].
pub fn seconds_since(ts: &str) -> String {
    // `greatest` and `least` ignore a NULL: the CASE keeps it.
    format!(
        "CASE WHEN {ts} IS NOT NULL THEN least(greatest(\
         floor(extract(epoch FROM now()) - extract(epoch FROM {ts})), \
         -{MAX_AGE_SECONDS}), {MAX_AGE_SECONDS})::bigint END"
    )
}

/// One stage of a job, as the stuck rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage {
    /// Names the statement's intermediate results.
    pub key: &'static str,
    /// The status of a job in this stage.
    pub status: u8,
    /// The status a stuck job goes back to.
    pub back_to: u8,
    /// When the stage started (`updated_at` stands in when it is null).
    pub started_at: &'static str,
    /// Who holds the job.
    pub worker: &'static str,
    /// Where the reason of a reset is written, and what it says.
    pub message_column: &'static str,
    pub message: &'static str,
    /// Its attempts counter as `sql/schema.sql` names it (the processing
    /// stage's is named by `MONITOR_ATTEMPTS_COLUMN`).
    pub attempts: &'static str,
    /// The per-job limit of attempts.
    pub max_attempts: &'static str,
}

/// A job being worked on (`En traitement`); a stuck one goes back to waiting.
pub const PROCESSING: Stage = Stage {
    key: "processing",
    status: 2,
    back_to: 1,
    started_at: "processing_started_at",
    worker: "worker_id",
    message_column: "error_message",
    message: STUCK_RESET_MESSAGE,
    attempts: "attemtps",
    max_attempts: "max_attempts",
};

/// A job being OCR'd (`OCR en traitement`); a stuck one goes back to
/// `Complété` (3), ready for OCR again. Older databases lack its columns.
pub const OCR: Stage = Stage {
    key: "ocr",
    status: 6,
    back_to: 3,
    started_at: "ocr_started_at",
    worker: "ocr_worker_id",
    message_column: "ocr_error",
    message: OCR_RESET_MESSAGE,
    attempts: "ocr_attempts",
    max_attempts: "ocr_max_attempts",
};

/// The attempts columns a stage's resets are counted in, as probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptColumns {
    /// The attempts counter.
    pub attempts: Identifier,
    /// The per-job limit column, when it exists; without one every job
    /// gets [`DEFAULT_MAX_ATTEMPTS`].
    pub max: Option<&'static str>,
}

/// A job put back in the queue, as logged (`id`, `worker`, `doc`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleasedJob {
    /// Full job id (logs show the first 8 characters).
    pub id: String,
    /// The worker that held it.
    pub worker: Option<String>,
    /// `document_source:document_number`.
    pub doc: String,
    /// How long it had been in its stage, in whole seconds.
    pub seconds: i64,
    /// Its attempts after this reset, when resets count as attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i64>,
    /// Whether it ran out of attempts and went to failed (status 4)
    /// instead of back to the queue.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failed: bool,
}

/// The JSON of a [`ReleasedJob`], from a row with `id`, `worker`,
/// `document_source`, `document_number`, `seconds` (and, when `counted`,
/// `attempts` and `failed`).
pub(crate) fn released_json(counted: bool) -> String {
    let counted = if counted {
        ", 'attempts', attempts, 'failed', failed"
    } else {
        ""
    };
    format!(
        "json_build_object('id', id, 'worker', worker, \
         'doc', concat(document_source, ':', document_number), 'seconds', seconds{counted})"
    )
}

impl Stage {
    /// When the job entered the stage, for the row `table` (`""` or `"q."`).
    pub(crate) fn since(&self, table: &str) -> String {
        format!("coalesce({table}{}, {table}updated_at)", self.started_at)
    }

    /// How long the job has been in the stage, in whole seconds (see
    /// [`seconds_since`]; 0 when it has no time at all).
    pub(crate) fn seconds(&self, table: &str) -> String {
        format!("coalesce({}, 0)", seconds_since(&self.since(table)))
    }

    /// The one definition of a job stuck in this stage: in it since before
    /// `after` ago, by the database's clock.
    pub(crate) fn stuck(&self, after: Duration) -> String {
        format!(
            "status_id = {} AND {} < now() - {}",
            self.status,
            self.since(""),
            interval(after)
        )
    }

    /// The `SET` clauses and extra `RETURNING` columns that put a job of
    /// the `q` alias back, with `message` (SQL) in the stage's message
    /// column: plain, or with the attempt counted (and given up on at its
    /// limit) when `attempts` is given. The caller clears the worker.
    ///
    /// No value of the row makes it fail: the count is computed as
    /// `numeric` (no overflow, whatever the counter holds), a null counter
    /// counts as 0 and a null limit as [`DEFAULT_MAX_ATTEMPTS`], and a
    /// counter already at [`MAX_COUNTER`] or beyond is left as it is (the
    /// job then ends failed, unless its limit is higher still).
    pub(crate) fn put_back(
        &self,
        attempts: Option<&AttemptColumns>,
        message: &str,
    ) -> (String, String) {
        let (back_to, column) = (self.back_to, self.message_column);
        let Some(cols) = attempts else {
            return (
                format!("status_id = {back_to}, {column} = {message}"),
                String::new(),
            );
        };
        let a = &cols.attempts;
        let n = format!("(coalesce(q.{a}, 0)::numeric + 1)");
        let stored = format!("CASE WHEN {n} > {MAX_COUNTER} THEN q.{a} ELSE {n} END");
        let max = match cols.max {
            Some(max) => format!("coalesce(q.{max}, {DEFAULT_MAX_ATTEMPTS})"),
            None => DEFAULT_MAX_ATTEMPTS.to_string(),
        };
        let give_up = format!("{n} >= {max}");
        let failed_text = format!(
            "{} || ' ' || {n} || ' times'",
            literal(STUCK_FAILED_MESSAGE)
        );
        let mut set = format!(
            "status_id = CASE WHEN {give_up} THEN 4 ELSE {back_to} END, {a} = {stored}, \
             {column} = CASE WHEN {give_up} THEN {failed_text} ELSE {message} END"
        );
        // A failed job says why in `error_message`, whatever the stage.
        if column != PROCESSING.message_column {
            set.push_str(&format!(
                ", error_message = CASE WHEN {give_up} THEN {failed_text} ELSE q.error_message END"
            ));
        }
        let returning = format!(", q.status_id = 4 AS failed, q.{a} AS attempts");
        (set, returning)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counted_put_back_gives_up_at_the_limit() {
        let cols = AttemptColumns {
            attempts: Identifier::from_static("attemtps"),
            max: None,
        };
        let (set, returning) = PROCESSING.put_back(Some(&cols), "'m'");
        assert!(
            set.contains("(coalesce(q.\"attemtps\", 0)::numeric + 1) >= 3"),
            "{set}"
        );
        assert_eq!(set.matches("error_message = CASE").count(), 1, "{set}");
        assert!(returning.contains("AS attempts"), "{returning}");
        // An OCR job given up on says why in both message columns.
        let (set, _) = OCR.put_back(Some(&cols), "'m'");
        assert!(set.contains("ocr_error = CASE"), "{set}");
        assert_eq!(set.matches("error_message = CASE").count(), 1, "{set}");
    }
}
