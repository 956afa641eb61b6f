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

/// How long a processing job has been at it, in whole seconds, judged as
/// [`stuck_condition`] judges it.
const STUCK_SECONDS: &str =
    "floor(extract(epoch FROM now() - coalesce(processing_started_at, updated_at)))::bigint";

/// The same for an OCR job, judged by `ocr_started_at`.
const OCR_STUCK_SECONDS: &str =
    "floor(extract(epoch FROM now() - coalesce(ocr_started_at, updated_at)))::bigint";

/// The one definition of a stuck job, shared by the resetter, its dry run and
/// `diagnose`: processing (status 2) since before `stuck_after` ago, judged by
/// `processing_started_at`, or by `updated_at` when that is missing.
fn stuck_condition(stuck_after: Duration) -> String {
    format!(
        "status_id = 2 AND coalesce(processing_started_at, updated_at) < now() - {}",
        interval(stuck_after)
    )
}

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

/// The `SET` clauses and extra `RETURNING` columns of a job put back to
/// status `back_to` with `message` in `message_col`: plain, or with the
/// attempt counted (and given up on at its limit) when `attempts` is given.
fn put_back(
    attempts: Option<&AttemptColumns>,
    back_to: u8,
    message_col: &str,
    message: &str,
) -> (String, String) {
    match attempts {
        None => (
            format!("status_id = {back_to}, {message_col} = {message}"),
            String::new(),
        ),
        Some(cols) => (
            counted_set(cols, back_to, message_col, message),
            format!(
                ", q.status_id = 4 AS failed, q.{} AS attempts",
                cols.attempts
            ),
        ),
    }
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
    let (set, returning) = put_back(rules.attempts.as_ref(), 1, "error_message", &message);
    // One scan finds both kinds of stuck job (two partial indexes, or one
    // pass over the table without them); the updates then split them.
    let mut columns = format!("id, status_id, worker_id, {STUCK_SECONDS} AS seconds");
    let mut filter = format!("({}{grace})", stuck_condition(rules.stuck_after));
    if let Some(ocr) = &rules.ocr {
        columns.push_str(&format!(
            ", ocr_worker_id, {OCR_STUCK_SECONDS} AS ocr_seconds"
        ));
        filter.push_str(&format!(
            "\n               OR (status_id = 6 AND coalesce(ocr_started_at, updated_at) < now() - {})",
            interval(ocr.stuck_after)
        ));
    }
    let mut sql = format!(
        "WITH candidates AS (
            SELECT {columns}
            FROM extraction_queue
            WHERE {filter}
            FOR UPDATE SKIP LOCKED
        ), stuck AS (
            SELECT id, worker_id, seconds FROM candidates WHERE status_id = 2
        ), reset AS (
            UPDATE extraction_queue q
            SET {set}, worker_id = NULL, processing_started_at = NULL, updated_at = now()
            FROM stuck
            WHERE q.id = stuck.id
            RETURNING q.id, stuck.worker_id AS worker, q.document_source, q.document_number, stuck.seconds{returning}
        )",
    );
    let jobs_json = released_json(rules.attempts.is_some());
    let ocr_part = match &rules.ocr {
        None => "'[]'::json".to_string(),
        Some(ocr) => {
            let message = literal(OCR_RESET_MESSAGE);
            let (set, returning) = put_back(ocr.attempts.as_ref(), 3, "ocr_error", &message);
            sql.push_str(&format!(
                ", ocr_stuck AS (
            SELECT id, ocr_worker_id, ocr_seconds AS seconds FROM candidates WHERE status_id = 6
        ), ocr_reset AS (
            UPDATE extraction_queue q
            SET {set}, ocr_worker_id = NULL, ocr_started_at = NULL, updated_at = now()
            FROM ocr_stuck
            WHERE q.id = ocr_stuck.id
            RETURNING q.id, ocr_stuck.ocr_worker_id AS worker, q.document_source, q.document_number, ocr_stuck.seconds{returning}
        )"
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
    let (set, returning) = put_back(attempts, 1, "error_message", message);
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
        ), suspects AS (
            SELECT array(SELECT worker_id FROM dead UNION SELECT worker_id FROM foreign_dead) AS ids
        ), held AS (
            SELECT q.id, q.worker_id,
                   floor(extract(epoch FROM now() - coalesce(q.processing_started_at, q.updated_at)))::bigint AS seconds
            FROM extraction_queue q
            WHERE q.status_id = 2
              -- Implied by the condition below; there so that no queue row
              -- is read when nobody died (a one-time filter), and only the
              -- suspects' jobs when someone did (an index condition).
              AND (SELECT cardinality(ids) FROM suspects) > 0
              AND q.worker_id = ANY ((SELECT ids FROM suspects)::text[])
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
    db.query_json(&health_counts_sql(dead_after)).await
}

/// The text [`health_counts`] sends (after its `SET LOCAL`).
pub fn health_counts_sql(dead_after: Duration) -> String {
    format!(
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
    )
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

/// The jobs [`reset_stuck_jobs`] would put back in the queue now, changing
/// nothing: the same condition, read without locks.
pub async fn find_stuck_jobs(
    db: &Database,
    stuck_after: Duration,
) -> Result<Vec<ReleasedJob>, DbError> {
    let sql = format!(
        "SELECT coalesce(json_agg({RELEASED_JOB_JSON} ORDER BY seconds DESC, id), '[]')
         FROM (SELECT id, worker_id AS worker, document_source, document_number, {STUCK_SECONDS} AS seconds
               FROM extraction_queue WHERE {condition}) stuck",
        condition = stuck_condition(stuck_after),
    );
    db.query_json(&sql).await
}

/// A worker as `diagnose` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerRow {
    pub id: String,
    pub status: Option<String>,
    /// Whole seconds since its last heartbeat (`None`: never).
    pub heartbeat_age_seconds: Option<i64>,
    pub current_job: Option<String>,
    pub jobs_completed: Option<i64>,
    pub jobs_failed: Option<i64>,
    /// Not offline and heartbeat within the dead threshold (as the reaper
    /// and the health counts judge it).
    pub alive: bool,
}

/// How many jobs have one status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusCount {
    pub status_id: i32,
    /// From `extraction_status`; `None` for an id the lookup lacks.
    pub name: Option<String>,
    pub count: i64,
}

/// Outcome of [`diagnose`]: one consistent snapshot of a project.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnosis {
    /// Every worker, by id.
    pub workers: Vec<WorkerRow>,
    /// Every status of `extraction_status` (zero counts included) and any
    /// other status a job has, by id.
    pub jobs: Vec<StatusCount>,
    /// Jobs stuck by the resetter's own condition, longest first.
    pub stuck_jobs: Vec<ReleasedJob>,
    /// Which of the asked index names exist in the current schema.
    pub present_indexes: Vec<String>,
}

/// Workers, job counts by status, stuck jobs and which of `index_names`
/// exist, in one read-only statement (one snapshot). Counting reads the
/// whole queue: meant for an operator's command, not for a periodic check.
pub async fn diagnose(
    db: &Database,
    stuck_after: Duration,
    dead_after: Duration,
    index_names: &[&str],
) -> Result<Diagnosis, DbError> {
    let names = if index_names.is_empty() {
        "NULL".to_string()
    } else {
        index_names
            .iter()
            .map(|n| literal(n))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let sql = format!(
        "SELECT json_build_object(
            'workers', (SELECT coalesce(json_agg(json_build_object(
                    'id', worker_id, 'status', status,
                    'heartbeatAgeSeconds', floor(extract(epoch FROM now() - last_heartbeat))::bigint,
                    'currentJob', current_job_id, 'jobsCompleted', jobs_completed, 'jobsFailed', jobs_failed,
                    'alive', status IS DISTINCT FROM 'offline' AND coalesce(last_heartbeat >= now() - {dead}, false))
                  ORDER BY worker_id), '[]') FROM worker_status),
            'jobs', (SELECT coalesce(json_agg(json_build_object('statusId', coalesce(s.id, c.status_id), 'name', s.name,
                                                               'count', coalesce(c.n, 0))
                                             ORDER BY coalesce(s.id, c.status_id)), '[]')
                     FROM extraction_status s
                     FULL JOIN (SELECT status_id, count(*) AS n FROM extraction_queue GROUP BY status_id) c
                       ON c.status_id = s.id),
            'stuckJobs', (SELECT coalesce(json_agg({RELEASED_JOB_JSON} ORDER BY seconds DESC, id), '[]')
                          FROM (SELECT id, worker_id AS worker, document_source, document_number, {STUCK_SECONDS} AS seconds
                                FROM extraction_queue WHERE {condition}) stuck),
            'presentIndexes', (SELECT coalesce(json_agg(indexname::text ORDER BY indexname), '[]') FROM pg_indexes
                               WHERE schemaname = current_schema() AND indexname IN ({names})))",
        dead = interval(dead_after),
        condition = stuck_condition(stuck_after),
    );
    db.query_json(&sql).await
}

// --- The extraction workers' own statements -------------------------------
//
// The monitor never sends these: the demo's simulated workers (and the tests
// that drive them) do, so that what the monitor heals is the queue exactly as
// the real workers leave it.

/// A job a worker took ([`claim_job`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimedJob {
    pub id: String,
    /// When the monitor last put this job back in the queue (database clock,
    /// seconds since the epoch), if the job came back that way.
    pub released_at: Option<f64>,
}

/// Registers a worker: its `worker_status` row, idle, heartbeat now
/// (an upsert, so a restarted worker can reuse its id).
pub async fn register_worker(db: &Database, worker: &str) -> Result<(), DbError> {
    let sql = format!(
        "WITH up AS (
            INSERT INTO worker_status (worker_id, status, current_job_id, last_heartbeat, started_at)
            VALUES ({me}, 'idle', NULL, now(), now())
            ON CONFLICT (worker_id) DO UPDATE
            SET status = 'idle', current_job_id = NULL, last_heartbeat = now(), started_at = now()
            RETURNING 1)
         SELECT to_json(count(*)) FROM up",
        me = literal(worker),
    );
    db.query_json::<i64>(&sql).await.map(drop)
}

/// A worker's heartbeat: its `last_heartbeat` is now. Returns whether its
/// row exists.
pub async fn heartbeat(db: &Database, worker: &str) -> Result<bool, DbError> {
    let sql = format!(
        "WITH hb AS (UPDATE worker_status SET last_heartbeat = now() WHERE worker_id = {me} RETURNING 1)
         SELECT to_json(count(*) > 0) FROM hb",
        me = literal(worker),
    );
    db.query_json(&sql).await
}

/// Takes the oldest waiting job, as the real workers do: a conditional
/// update of the first unlocked waiting row (`FOR UPDATE SKIP LOCKED`, so
/// workers never wait on each other), and marks the worker busy with it.
/// `None` when nothing waits.
pub async fn claim_job(db: &Database, worker: &str) -> Result<Option<ClaimedJob>, DbError> {
    let sql = format!(
        "WITH claimed AS (
            UPDATE extraction_queue SET status_id = 2, worker_id = {me}, processing_started_at = now()
            WHERE id = (SELECT id FROM extraction_queue WHERE status_id = 1
                        ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
              AND status_id = 1
            RETURNING id, error_message, updated_at
        ), busy AS (
            UPDATE worker_status SET status = 'busy', current_job_id = (SELECT id FROM claimed)
            WHERE worker_id = {me} AND EXISTS (SELECT 1 FROM claimed)
        )
        SELECT coalesce((SELECT json_build_object('id', id,
                   'releasedAt', CASE WHEN error_message LIKE '%by health monitor%'
                                      THEN extract(epoch FROM updated_at)::float8 END)
                         FROM claimed), 'null')",
        me = literal(worker),
    );
    db.query_json(&sql).await
}

/// Finishes a job the worker holds: `Complété` (3) on success; on failure
/// one more attempt counted, and back to waiting (1) or `Erreur` (4) once
/// `max_attempts` is reached. Guarded by `worker_id = me AND status_id = 2`:
/// a job the monitor took back meanwhile is left alone (`None`). Updates the
/// worker's row (idle, its counters).
pub async fn finish_job(
    db: &Database,
    worker: &str,
    job: &str,
    failure: Option<&str>,
) -> Result<Option<i32>, DbError> {
    let ok = if failure.is_none() { "true" } else { "false" };
    let error = failure.map_or("NULL".to_string(), literal);
    let sql = format!(
        "WITH target AS (
            SELECT id, CASE WHEN {ok} THEN 3 WHEN attemtps + 1 >= coalesce(max_attempts, 3) THEN 4 ELSE 1 END AS next
            FROM extraction_queue
            WHERE id = {job}::uuid AND worker_id = {me} AND status_id = 2
            FOR UPDATE
        ), done AS (
            UPDATE extraction_queue q
            SET status_id = t.next,
                attemtps = q.attemtps + CASE WHEN {ok} THEN 0 ELSE 1 END,
                worker_id = CASE WHEN t.next = 1 THEN NULL ELSE q.worker_id END,
                processing_started_at = CASE WHEN t.next = 1 THEN NULL ELSE q.processing_started_at END,
                error_message = {error}, updated_at = now()
            FROM target t WHERE q.id = t.id
            RETURNING q.status_id
        ), me AS (
            UPDATE worker_status
            SET status = 'idle', current_job_id = NULL, last_heartbeat = now(),
                jobs_completed = jobs_completed + (SELECT count(*) FROM done WHERE status_id = 3),
                jobs_failed = jobs_failed + (SELECT count(*) FROM done WHERE status_id <> 3)
            WHERE worker_id = {me}
        )
        SELECT coalesce((SELECT to_json(status_id) FROM done), 'null')",
        job = literal(job),
        me = literal(worker),
    );
    db.query_json(&sql).await
}

/// Adds `count` waiting jobs, documents cycling through the three sources,
/// one microsecond apart so they are taken in order. Returns how many.
pub async fn enqueue_jobs(db: &Database, count: u32) -> Result<i64, DbError> {
    let sql = format!(
        "WITH added AS (
            INSERT INTO extraction_queue (status_id, document_source, document_number, created_at)
            SELECT 1, (ARRAY['acte', 'index', 'plan_cadastraux'])[1 + i % 3], (100000 + i)::text,
                   now() + i * interval '1 microsecond'
            FROM generate_series(1, {count}) AS i
            RETURNING 1)
         SELECT to_json(count(*)) FROM added"
    );
    db.query_json(&sql).await
}

/// The queue by stage, for a progress line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct QueueProgress {
    pub waiting: i64,
    pub processing: i64,
    pub done: i64,
    pub failed: i64,
    pub total: i64,
}

/// Waiting (1), processing (2), done (3) and failed (4) jobs, and all jobs.
pub async fn queue_progress(db: &Database) -> Result<QueueProgress, DbError> {
    db.query_json(
        "SELECT json_build_object(
            'waiting', count(*) FILTER (WHERE status_id = 1),
            'processing', count(*) FILTER (WHERE status_id = 2),
            'done', count(*) FILTER (WHERE status_id = 3),
            'failed', count(*) FILTER (WHERE status_id = 4),
            'total', count(*))
         FROM extraction_queue",
    )
    .await
}

/// The database's clock, in seconds since the epoch.
pub async fn database_now(db: &Database) -> Result<f64, DbError> {
    db.query_json("SELECT to_json(extract(epoch FROM now())::float8)")
        .await
}

// --- Scratch databases (the demo) ------------------------------------------
//
// These run outside a transaction block (`CREATE DATABASE` must), so they go
// through `batch_execute` on a plain client rather than `Database`.

/// A name as an SQL identifier.
pub fn identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Creates the database `name`.
pub async fn create_database(client: &tokio_postgres::Client, name: &str) -> Result<(), DbError> {
    Ok(client
        .batch_execute(&format!("CREATE DATABASE {}", identifier(name)))
        .await?)
}

/// Drops the database `name`, ending any session still on it.
pub async fn drop_database(client: &tokio_postgres::Client, name: &str) -> Result<(), DbError> {
    Ok(client
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            identifier(name)
        ))
        .await?)
}

/// Applies a schema script (several statements, such as `sql/schema.sql`).
pub async fn apply_script(client: &tokio_postgres::Client, script: &str) -> Result<(), DbError> {
    Ok(client.batch_execute(script).await?)
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
