//! Every statement the monitor sends, one function each.
//!
//! Each is a single statement (data-modifying CTEs where it both reads and
//! writes), so it is atomic; each compares against the database's `now()`,
//! so the monitor host's clock never matters; each returns one JSON value so
//! a simple-protocol request can carry it. Values are written into the text:
//! durations as whole milliseconds, strings through [`literal`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::database::{Database, DbError};

/// The `error_message` of a job the stuck-job rule put back in the queue.
pub const STUCK_RESET_MESSAGE: &str =
    "Auto-reset by health monitor - exceeded processing time limit";

/// A job put back in the queue, as logged (`id`, `worker`, `doc`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleasedJob {
    /// Full job id (logs show the first 8 characters).
    pub id: String,
    /// The worker that held it.
    pub worker: Option<String>,
    /// `document_source:document_number`.
    pub doc: String,
    /// How long it had been processing, in whole seconds.
    pub seconds: i64,
    /// Its attempts after this reset, when resets count as attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i64>,
    /// Whether it ran out of attempts and went to failed (status 4)
    /// instead of back to the queue.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failed: bool,
}

/// Outcome of [`reap_dead_workers`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Reaped {
    /// The database's `now()` when it ran (RFC 3339), passed to other
    /// projects so they free only jobs claimed before the death was seen.
    pub now: String,
    /// Workers newly marked offline, sorted.
    pub dead: Vec<String>,
    /// Jobs released: held by those workers or by the `foreign` ones.
    pub released: Vec<ReleasedJob>,
}

/// A worker found dead in another project, as passed to [`reap_dead_workers`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ForeignDeath {
    pub worker: String,
    /// That project's `now()` when it marked the worker offline.
    pub seen_at: String,
}

/// Outcome of [`health_counts`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCounts {
    pub active_workers: u64,
    pub pending_jobs: u64,
    pub processing_jobs: u64,
    pub error_jobs: u64,
}

/// A duration as an SQL interval literal, in whole milliseconds.
fn interval(d: Duration) -> String {
    format!("interval '{} milliseconds'", d.as_millis())
}

/// A string as an SQL literal that reads the same whatever
/// `standard_conforming_strings` says.
pub fn literal(s: &str) -> String {
    format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// The JSON of a released job, shared by the statements that release jobs.
const RELEASED_JOB_JSON: &str = "json_build_object('id', id, 'worker', worker, \
     'doc', concat(document_source, ':', document_number), 'seconds', seconds)";

/// Puts back in the queue (status 1) every job processing (status 2) for
/// longer than `stuck_after`, judged by `processing_started_at`, or by
/// `updated_at` when that is missing. Clears its worker and start time and
/// says why in `error_message`. Rows another transaction holds are left for
/// the next run rather than waited for.
pub async fn reset_stuck_jobs(
    db: &Database,
    stuck_after: Duration,
) -> Result<Vec<ReleasedJob>, DbError> {
    Ok(reset_stuck(db, &StuckRules::plain(stuck_after)).await?.jobs)
}

/// The `error_message` (and `ocr_error`) prefix of a job that ran out of
/// attempts; the statement appends `N times`.
pub const STUCK_FAILED_MESSAGE: &str = "Failed by health monitor - stuck in processing";

/// The `ocr_error` of an OCR job the OCR rule put back to status 3.
pub const OCR_RESET_MESSAGE: &str =
    "Auto-reset by health monitor - exceeded OCR processing time limit";

/// The attempts columns of a project's `extraction_queue`, as probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptColumns {
    /// The attempts column (a plain identifier, checked by the settings).
    pub attempts: String,
    /// The per-job limit column (`max_attempts`, `ocr_max_attempts`), when
    /// it exists; without one every job gets [`DEFAULT_MAX_ATTEMPTS`].
    pub max: Option<String>,
}

/// The limit of a job whose `max_attempts` is null (the schema's default).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// Extra time for a job whose worker is alive and working on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveGrace {
    pub grace: Duration,
    /// A worker is alive when its heartbeat is newer than this.
    pub dead_after: Duration,
}

/// The stuck OCR rule: status 6 back to 3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcrRule {
    pub stuck_after: Duration,
    /// `ocr_attempts` (and maybe `ocr_max_attempts`), when counted.
    pub attempts: Option<AttemptColumns>,
}

/// What [`reset_stuck`] does, as decided per project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StuckRules {
    pub stuck_after: Duration,
    /// `None`: no grace, the seed's condition.
    pub live_grace: Option<LiveGrace>,
    /// `None`: resets are not counted (the first system's behaviour).
    pub attempts: Option<AttemptColumns>,
    /// `None`: no OCR rule (columns missing).
    pub ocr: Option<OcrRule>,
}

impl StuckRules {
    /// The seed's rule alone: no grace, no attempts, no OCR.
    pub fn plain(stuck_after: Duration) -> Self {
        StuckRules {
            stuck_after,
            live_grace: None,
            attempts: None,
            ocr: None,
        }
    }
}

/// Outcome of [`reset_stuck`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct StuckResets {
    /// Processing jobs reset (or failed, see [`ReleasedJob::failed`]).
    pub jobs: Vec<ReleasedJob>,
    /// OCR jobs reset to status 3 (or failed).
    pub ocr: Vec<ReleasedJob>,
}

/// SQL for the new `status_id`, attempts and message of a job being given
/// up on or put back: `(set clauses, failed condition)` for the `q` alias,
/// where `n` is the attempt count after this one.
fn counted_set(cols: &AttemptColumns, back_to: u8, message_col: &str, message: &str) -> String {
    let a = &cols.attempts;
    let n = format!("(coalesce(q.{a}, 0) + 1)");
    let max = match &cols.max {
        Some(max_col) => format!("coalesce(q.{max_col}, {DEFAULT_MAX_ATTEMPTS})"),
        None => DEFAULT_MAX_ATTEMPTS.to_string(),
    };
    let give_up = format!("{n} >= {max}");
    let failed_text = format!(
        "{} || ' ' || {n} || ' times'",
        literal(STUCK_FAILED_MESSAGE)
    );
    let mut set = format!(
        "status_id = CASE WHEN {give_up} THEN 4 ELSE {back_to} END, {a} = {n}, \
         {message_col} = CASE WHEN {give_up} THEN {failed_text} ELSE {message} END"
    );
    if message_col != "error_message" {
        set.push_str(&format!(
            ", error_message = CASE WHEN {give_up} THEN {failed_text} ELSE q.error_message END"
        ));
    }
    set
}

/// The JSON of a job reset by a statement that counted attempts.
fn released_json(counted: bool) -> String {
    if counted {
        RELEASED_JOB_JSON.replace(
            "'seconds', seconds)",
            "'seconds', seconds, 'attempts', attempts, 'failed', failed)",
        )
    } else {
        RELEASED_JOB_JSON.to_string()
    }
}

/// The text of [`reset_stuck`].
pub fn reset_stuck_sql(rules: &StuckRules) -> String {
    let grace = match rules.live_grace {
        None => String::new(),
        Some(g) => format!(
            "
              AND NOT (coalesce(processing_started_at, updated_at) >= now() - {total}
                       AND EXISTS (SELECT 1 FROM worker_status w
                                   WHERE w.worker_id = extraction_queue.worker_id
                                     AND w.current_job_id = extraction_queue.id
                                     AND w.status IS DISTINCT FROM 'offline'
                                     AND w.last_heartbeat >= now() - {alive}))",
            total = interval(rules.stuck_after + g.grace),
            alive = interval(g.dead_after),
        ),
    };
    let message = literal(STUCK_RESET_MESSAGE);
    let (set, returning) = match &rules.attempts {
        None => (
            format!("status_id = 1, error_message = {message}"),
            String::new(),
        ),
        Some(cols) => (
            counted_set(cols, 1, "error_message", &message),
            format!(
                ", q.status_id = 4 AS failed, q.{} AS attempts",
                cols.attempts
            ),
        ),
    };
    let mut sql = format!(
        "WITH stuck AS (
            SELECT id, worker_id,
                   floor(extract(epoch FROM now() - coalesce(processing_started_at, updated_at)))::bigint AS seconds
            FROM extraction_queue
            WHERE status_id = 2
              AND coalesce(processing_started_at, updated_at) < now() - {threshold}{grace}
            FOR UPDATE SKIP LOCKED
        ), reset AS (
            UPDATE extraction_queue q
            SET {set}, worker_id = NULL, processing_started_at = NULL, updated_at = now()
            FROM stuck
            WHERE q.id = stuck.id
            RETURNING q.id, stuck.worker_id AS worker, q.document_source, q.document_number, stuck.seconds{returning}
        )",
        threshold = interval(rules.stuck_after),
    );
    let jobs_json = released_json(rules.attempts.is_some());
    let ocr_part = match &rules.ocr {
        None => "'[]'::json".to_string(),
        Some(ocr) => {
            let message = literal(OCR_RESET_MESSAGE);
            let (set, returning) = match &ocr.attempts {
                None => (
                    format!("status_id = 3, ocr_error = {message}"),
                    String::new(),
                ),
                Some(cols) => (
                    counted_set(cols, 3, "ocr_error", &message),
                    format!(
                        ", q.status_id = 4 AS failed, q.{} AS attempts",
                        cols.attempts
                    ),
                ),
            };
            sql.push_str(&format!(
                ", ocr_stuck AS (
            SELECT id, ocr_worker_id,
                   floor(extract(epoch FROM now() - coalesce(ocr_started_at, updated_at)))::bigint AS seconds
            FROM extraction_queue
            WHERE status_id = 6
              AND coalesce(ocr_started_at, updated_at) < now() - {threshold}
            FOR UPDATE SKIP LOCKED
        ), ocr_reset AS (
            UPDATE extraction_queue q
            SET {set}, ocr_worker_id = NULL, ocr_started_at = NULL, updated_at = now()
            FROM ocr_stuck
            WHERE q.id = ocr_stuck.id
            RETURNING q.id, ocr_stuck.ocr_worker_id AS worker, q.document_source, q.document_number, ocr_stuck.seconds{returning}
        )",
                threshold = interval(ocr.stuck_after),
            ));
            format!(
                "(SELECT coalesce(json_agg({} ORDER BY seconds DESC, id), '[]') FROM ocr_reset)",
                released_json(ocr.attempts.is_some())
            )
        }
    };
    sql.push_str(&format!(
        "
        SELECT json_build_object(
            'jobs', (SELECT coalesce(json_agg({jobs_json} ORDER BY seconds DESC, id), '[]') FROM reset),
            'ocr', {ocr_part})"
    ));
    sql
}

/// Puts back in the queue every job processing for longer than the stuck
/// threshold (see [`reset_stuck_jobs`]), except, with a grace, a job whose
/// worker is alive and reports it as its `current_job_id` (it gets the grace
/// on top). With attempts counted, each reset adds one to the job's attempts
/// and a job that reaches its `max_attempts` (3 when null) goes to failed
/// (status 4) instead, its `error_message` saying how many times it was
/// stuck. With the OCR rule, in the same statement, OCR jobs (status 6)
/// older than their threshold go back to status 3 the same way, judged by
/// `ocr_started_at` and counted in `ocr_attempts`.
pub async fn reset_stuck(db: &Database, rules: &StuckRules) -> Result<StuckResets, DbError> {
    db.query_json(&reset_stuck_sql(rules)).await
}

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

/// The optional columns of `extraction_queue` the rules depend on.
pub const OPTIONAL_COLUMNS: [&str; 6] = [
    "max_attempts",
    "ocr_worker_id",
    "ocr_started_at",
    "ocr_attempts",
    "ocr_max_attempts",
    "ocr_error",
];

/// The text of [`probe_columns`].
pub fn probe_columns_sql(attempts_column: &str) -> String {
    let names: Vec<String> = std::iter::once(attempts_column)
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
/// `extraction_queue` found through the search path has (catalog only).
pub async fn probe_columns(db: &Database, attempts_column: &str) -> Result<Columns, DbError> {
    db.query_json(&probe_columns_sql(attempts_column)).await
}

/// Marks `offline` every worker not already offline whose heartbeat is older
/// than `dead_after`, and releases every processing job those workers hold
/// (not only their `current_job_id`), plus the processing jobs of `foreign`
/// workers (found dead in another project) claimed before their death was
/// seen. A worker already offline is never returned again.
pub async fn reap_dead_workers(
    db: &Database,
    dead_after: Duration,
    foreign: &[ForeignDeath],
) -> Result<Reaped, DbError> {
    reap_dead_workers_counting(db, dead_after, foreign, None).await
}

/// [`reap_dead_workers`], each release counted as an attempt when
/// `attempts` is given: a job that reaches its `max_attempts` (3 when null)
/// goes to failed (status 4) instead of back to the queue.
pub async fn reap_dead_workers_counting(
    db: &Database,
    dead_after: Duration,
    foreign: &[ForeignDeath],
    attempts: Option<&AttemptColumns>,
) -> Result<Reaped, DbError> {
    db.query_json(&reap_dead_workers_sql(dead_after, foreign, attempts))
        .await
}

/// The text of [`reap_dead_workers_counting`].
pub fn reap_dead_workers_sql(
    dead_after: Duration,
    foreign: &[ForeignDeath],
    attempts: Option<&AttemptColumns>,
) -> String {
    let foreign_rows = if foreign.is_empty() {
        "SELECT NULL::text, NULL::timestamptz WHERE false".to_string()
    } else {
        let rows: Vec<String> = foreign
            .iter()
            .map(|f| {
                format!(
                    "({}, {}::timestamptz)",
                    literal(&f.worker),
                    literal(&f.seen_at)
                )
            })
            .collect();
        format!("VALUES {}", rows.join(", "))
    };
    let message = "'Released by health monitor - worker ' || held.worker_id || ' is dead'";
    let (set, returning) = match attempts {
        None => (
            format!("status_id = 1, error_message = {message}"),
            String::new(),
        ),
        Some(cols) => (
            counted_set(cols, 1, "error_message", message),
            format!(
                ", q.status_id = 4 AS failed, q.{} AS attempts",
                cols.attempts
            ),
        ),
    };
    let released_json = released_json(attempts.is_some());
    format!(
        "WITH dead AS (
            UPDATE worker_status
            SET status = 'offline', current_job_id = NULL
            WHERE status IS DISTINCT FROM 'offline'
              AND coalesce(last_heartbeat, '-infinity') < now() - {threshold}
            RETURNING worker_id
        ), foreign_dead (worker_id, seen_at) AS (
            {foreign_rows}
        ), held AS (
            SELECT q.id, q.worker_id,
                   floor(extract(epoch FROM now() - coalesce(q.processing_started_at, q.updated_at)))::bigint AS seconds
            FROM extraction_queue q
            WHERE q.status_id = 2
              AND (q.worker_id IN (SELECT worker_id FROM dead)
                   OR EXISTS (SELECT 1 FROM foreign_dead f
                              WHERE f.worker_id = q.worker_id
                                AND coalesce(q.processing_started_at, q.updated_at) <= f.seen_at))
            FOR UPDATE SKIP LOCKED
        ), released AS (
            UPDATE extraction_queue q
            SET {set}, worker_id = NULL, processing_started_at = NULL, updated_at = now()
            FROM held
            WHERE q.id = held.id
            RETURNING q.id, held.worker_id AS worker, q.document_source, q.document_number, held.seconds{returning}
        )
        SELECT json_build_object(
            'now', now(),
            'dead', (SELECT coalesce(json_agg(worker_id ORDER BY worker_id), '[]') FROM dead),
            'released', (SELECT coalesce(json_agg({released_json} ORDER BY worker, id), '[]') FROM released))",
        threshold = interval(dead_after),
    )
}

/// The advisory lock key of the acting instance: `pg_try_advisory_lock(a, b)`
/// with these two keys ("REGM", 1), the same in every database; a lock is
/// per database, so per project.
pub const LEADER_LOCK: (i32, i32) = (0x5245_474D, 1);

/// What [`leadership`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Leadership {
    /// The backend that answered (a change means a new session).
    pub pid: i64,
    /// Whether this session holds the lock (now, or from before).
    pub acting: bool,
    /// The `application_name` of the session holding it, when visible.
    pub holder: Option<String>,
}

/// The text of [`leadership`].
pub fn leadership_sql(instance_id: &str) -> String {
    let (a, b) = LEADER_LOCK;
    let lock = format!(
        "locktype = 'advisory' AND classid = {a} AND objid = {b} AND objsubid = 2 AND granted"
    );
    format!(
        "SET application_name = {name};
        SELECT json_build_object(
            'pid', pg_backend_pid(),
            'acting', CASE WHEN EXISTS (SELECT 1 FROM pg_locks WHERE {lock} AND pid = pg_backend_pid())
                           THEN true ELSE pg_try_advisory_lock({a}, {b}) END,
            'holder', (SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                       WHERE l.{lock_l} AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                       LIMIT 1))",
        name = literal(&format!("registre-monitor {instance_id}")),
        lock_l = lock.replace(" AND ", " AND l."),
    )
}

/// On a dedicated session: keeps, or tries to take, the session-level
/// advisory lock of the acting instance, and says who holds it. Never
/// waits for the lock.
pub async fn leadership(
    db: &Database,
    session: &tokio_postgres::Client,
    instance_id: &str,
) -> Result<Leadership, DbError> {
    db.query_json_on(session, &leadership_sql(instance_id))
        .await
}

/// Active workers (not offline, heartbeat within `dead_after`) and the
/// pending, processing and failed job counts, in one statement that reads
/// only the rows of those three statuses.
pub async fn health_counts(db: &Database, dead_after: Duration) -> Result<HealthCounts, DbError> {
    let sql = format!(
        "SELECT json_build_object(
            'activeWorkers', (SELECT count(*) FROM worker_status
                              WHERE status IS DISTINCT FROM 'offline'
                                AND last_heartbeat >= now() - {threshold}),
            'pendingJobs', count(*) FILTER (WHERE status_id = 1),
            'processingJobs', count(*) FILTER (WHERE status_id = 2),
            'errorJobs', count(*) FILTER (WHERE status_id = 4))
        FROM extraction_queue
        WHERE status_id IN (1, 2, 4)",
        threshold = interval(dead_after),
    );
    db.query_json(&sql).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_escapes_quotes_and_backslashes() {
        assert_eq!(literal("worker-1"), "E'worker-1'");
        assert_eq!(literal(r"a'b\c"), r"E'a''b\\c'");
    }

    #[test]
    fn the_plain_rule_has_no_grace_attempts_or_ocr() {
        let plain = reset_stuck_sql(&StuckRules::plain(Duration::from_secs(180)));
        assert!(!plain.contains("worker_status"), "{plain}");
        assert!(
            !plain.contains("attemtps") && !plain.contains("ocr_"),
            "{plain}"
        );
        let full = StuckRules {
            live_grace: Some(LiveGrace {
                grace: Duration::from_secs(60),
                dead_after: Duration::from_secs(120),
            }),
            attempts: Some(AttemptColumns {
                attempts: "attemtps".into(),
                max: Some("max_attempts".into()),
            }),
            ocr: Some(OcrRule {
                stuck_after: Duration::from_secs(600),
                attempts: None,
            }),
            ..StuckRules::plain(Duration::from_secs(180))
        };
        let sql = reset_stuck_sql(&full);
        assert!(sql.contains("interval '240000 milliseconds'"), "{sql}");
        assert!(sql.contains("coalesce(q.max_attempts, 3)"), "{sql}");
        assert!(sql.contains("status_id = 3, ocr_error"), "{sql}");
    }

    #[test]
    fn interval_is_whole_milliseconds() {
        assert_eq!(
            interval(Duration::from_millis(1500)),
            "interval '1500 milliseconds'"
        );
    }
}
