//! The stuck-job rule's statements: reset (the `StuckJobResetter` and
//! `reset-stuck-jobs`), and the read-only list of what it would reset
//! (`reset-stuck-jobs --dry-run`).

use std::time::Duration;

use serde::Deserialize;

use super::fleet_conditions::{grace_condition, reach, worker_conditions};
use super::params::Params;
use super::stage::{AttemptColumns, OCR, PROCESSING, ReleasedJob, Stage, released_json};
use super::{interval, literal};
use crate::database::{Database, DbError};
use crate::fleet::WorkerView;

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
#[derive(Debug, Clone, PartialEq)]
pub struct StuckRules {
    pub stuck_after: Duration,
    /// `None`: no grace, the plain condition.
    pub live_grace: Option<LiveGrace>,
    /// `None`: resets are not counted as attempts.
    pub attempts: Option<AttemptColumns>,
    /// `None`: no OCR rule (columns missing).
    pub ocr: Option<OcrRule>,
    /// What the fleet knows of the workers: clock offsets to correct
    /// written start times by, workers whose jobs wait for a verdict, and
    /// who is alive (for the grace). Empty: written times as they are.
    pub workers: WorkerView,
}

impl StuckRules {
    /// The plain rule alone: no grace, no attempts, no OCR.
    pub fn plain(stuck_after: Duration) -> Self {
        StuckRules {
            stuck_after,
            live_grace: None,
            attempts: None,
            ocr: None,
            workers: WorkerView::default(),
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

/// One stage's part of the statement: how its stuck jobs are found among
/// the candidates, and how they are put back.
struct Part<'a> {
    stage: Stage,
    /// Extra condition (the live-worker grace), after `AND`.
    extra: String,
    after: Duration,
    /// How far past the threshold the range reaches (clocks ahead).
    reach: Duration,
    attempts: Option<&'a AttemptColumns>,
}

impl Part<'_> {
    /// The candidate columns this part reads.
    fn columns(&self) -> String {
        let (s, key) = (&self.stage, self.stage.key);
        format!("{}, {} AS {key}_seconds", s.worker, s.seconds(""))
    }

    fn condition(&self) -> String {
        let range = if self.reach.is_zero() {
            self.stage.stuck(self.after)
        } else {
            format!(
                "{} + {}",
                self.stage.stuck(self.after),
                interval(self.reach)
            )
        };
        format!("({range}{})", self.extra)
    }

    /// Its two intermediate results: `<key>_stuck` and `<key>_reset`.
    fn ctes(&self) -> String {
        let s = &self.stage;
        let key = s.key;
        let (set, returning) = s.put_back(self.attempts, &literal(s.message));
        format!(
            "{key}_stuck AS (
            SELECT id, {worker} AS worker, {key}_seconds AS seconds FROM candidates WHERE status_id = {status}
        ), {key}_reset AS (
            UPDATE extraction_queue q
            SET {set}, {worker} = NULL, {started} = NULL, updated_at = now()
            FROM {key}_stuck s
            WHERE q.id = s.id
            RETURNING q.id, s.worker, q.document_source, q.document_number, s.seconds{returning}
        )",
            worker = s.worker,
            status = s.status,
            started = s.started_at,
        )
    }

    /// Its reset jobs as a JSON array, longest stuck first.
    fn json(&self) -> String {
        format!(
            "(SELECT coalesce(json_agg({} ORDER BY seconds DESC, id), '[]') FROM {}_reset)",
            released_json(self.attempts.is_some()),
            self.stage.key
        )
    }
}

/// Each rule's part: the processing stage, and OCR when on.
fn parts<'a>(rules: &'a StuckRules, params: &mut Params) -> Vec<Part<'a>> {
    let view = &rules.workers;
    let mut extra = rules
        .live_grace
        .map(|g| grace_condition(rules.stuck_after, g, &view.alive, params))
        .unwrap_or_default();
    extra.push_str(&worker_conditions(rules.stuck_after, view, params));
    let mut parts = vec![Part {
        stage: PROCESSING,
        extra,
        // Ahead clocks write later start times: the range reaches them,
        // and the corrected condition decides.
        after: rules.stuck_after,
        reach: reach(view),
        attempts: rules.attempts.as_ref(),
    }];
    if let Some(ocr) = &rules.ocr {
        parts.push(Part {
            stage: OCR,
            extra: String::new(),
            after: ocr.stuck_after,
            reach: Duration::ZERO,
            attempts: ocr.attempts.as_ref(),
        });
    }
    parts
}

/// The text and parameters of [`reset_stuck`] (every job) or
/// [`reset_stuck_ids`] (those of `ids`).
pub fn reset_stuck_sql(rules: &StuckRules, ids: Option<&[String]>) -> (String, Params) {
    let mut params = Params::default();
    let parts = parts(rules, &mut params);
    let columns: Vec<String> = parts.iter().map(Part::columns).collect();
    let conditions: Vec<String> = parts.iter().map(Part::condition).collect();
    let filter = match ids {
        // One scan finds both kinds of stuck job (two partial indexes, or
        // one pass over the table without them).
        None => format!("({})", conditions.join("\n               OR ")),
        // By primary key alone: each row judged in a `CASE`, which no
        // index answers. (ANDed with the ids, the stuck ranges would make
        // a bitmap scan, which reads every dead entry earlier resets left
        // in the stuck indexes.)
        Some(ids) => {
            let whens: Vec<String> = conditions
                .iter()
                .map(|c| format!("WHEN {c} THEN true"))
                .collect();
            format!(
                "id = ANY ({})\n              AND CASE {} ELSE false END",
                params.strings(ids),
                whens.join("\n               ")
            )
        }
    };
    let ctes: Vec<String> = parts.iter().map(Part::ctes).collect();
    let ocr_json = parts
        .get(1)
        .map_or_else(|| "'[]'::json".to_string(), Part::json);
    // The updates then split the candidates by stage.
    let sql = format!(
        "WITH candidates AS (
            SELECT id, status_id, {columns}
            FROM extraction_queue
            WHERE {filter}
            FOR UPDATE SKIP LOCKED
        ), {ctes}
        SELECT json_build_object('jobs', {jobs_json}, 'ocr', {ocr_json})",
        columns = columns.join(", "),
        ctes = ctes.join(", "),
        jobs_json = parts[0].json(),
    );
    (sql, params)
}

/// Puts back in the queue (status 1) every job processing (status 2) for
/// longer than the stuck threshold, judged by `processing_started_at`, or by
/// `updated_at` when that is missing; clears its worker and start time and
/// says why in `error_message`. Rows another transaction holds are left for
/// the next run rather than waited for.
///
/// With a grace, a job whose worker is alive and reports it as its
/// `current_job_id` gets the grace on top. With attempts counted, each
/// reset adds one to the job's attempts and a job that reaches its
/// `max_attempts` (3 when null) goes to failed (status 4) instead, its
/// `error_message` saying how many times it was stuck. With the OCR rule,
/// in the same statement, OCR jobs (status 6) older than their threshold
/// go back to status 3 the same way, judged by `ocr_started_at` and counted
/// in `ocr_attempts`.
pub async fn reset_stuck(db: &Database, rules: &StuckRules) -> Result<StuckResets, DbError> {
    let (sql, params) = reset_stuck_sql(rules, None);
    db.write_redoable(&sql, params.values()).await
}

/// [`reset_stuck`] among the jobs of `ids` alone (the candidates of
/// [`stuck_candidates`](super::stuck_candidates)), each reached by its
/// primary key and judged by the full rule.
pub async fn reset_stuck_ids(
    db: &Database,
    rules: &StuckRules,
    ids: &[String],
) -> Result<StuckResets, DbError> {
    let (sql, params) = reset_stuck_sql(rules, Some(ids));
    db.write_redoable(&sql, params.values()).await
}

/// [`reset_stuck`] with the plain rule: what `reset-stuck-jobs` runs,
/// committed durably (an operator's command says what it did once).
pub async fn reset_stuck_jobs(
    db: &Database,
    stuck_after: Duration,
) -> Result<Vec<ReleasedJob>, DbError> {
    let (sql, params) = reset_stuck_sql(&StuckRules::plain(stuck_after), None);
    let resets: StuckResets = db.query_json_prepared_with(&sql, params.values()).await?;
    Ok(resets.jobs)
}

/// The jobs [`reset_stuck_jobs`] would put back in the queue now, changing
/// nothing: the same condition, read without locks.
pub async fn find_stuck_jobs(
    db: &Database,
    stuck_after: Duration,
) -> Result<Vec<ReleasedJob>, DbError> {
    db.query_json(&format!(
        "SELECT coalesce(json_agg({} ORDER BY seconds DESC, id), '[]') FROM {}",
        released_json(false),
        stuck_rows(stuck_after)
    ))
    .await
}

/// The processing jobs stuck now, as rows [`released_json`] reads (for the
/// dry run and `diagnose`).
pub(crate) fn stuck_rows(stuck_after: Duration) -> String {
    format!(
        "(SELECT id, {worker} AS worker, document_source, document_number, {seconds} AS seconds
          FROM extraction_queue WHERE {condition}) stuck",
        worker = PROCESSING.worker,
        seconds = PROCESSING.seconds(""),
        condition = PROCESSING.stuck(stuck_after),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identifier::Identifier;

    #[test]
    fn the_plain_rule_has_no_grace_attempts_or_ocr() {
        let (plain, params) = reset_stuck_sql(&StuckRules::plain(Duration::from_secs(180)), None);
        assert!(params.values().is_empty(), "{params:?}");
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
                attempts: Identifier::from_static("attemtps"),
                max: Some("max_attempts"),
            }),
            ocr: Some(OcrRule {
                stuck_after: Duration::from_secs(600),
                attempts: None,
            }),
            workers: WorkerView {
                offsets: vec![("ahead".into(), 300.0)],
                stale_after: Some(Duration::from_secs(120)),
                alive: vec!["w1".into()],
            },
            ..StuckRules::plain(Duration::from_secs(180))
        };
        let (sql, params) = reset_stuck_sql(&full, Some(&["j1".into()]));
        // The fleet and the ids are parameters: alive, offsets, then ids.
        assert_eq!(
            params.values(),
            [
                r#"E'{"w1"}'"#,
                r#"E'{"ahead"}'"#,
                r#"E'{"300000"}'"#,
                r#"E'{"j1"}'"#
            ]
        );
        assert!(
            sql.contains("worker_id IN (SELECT unnest($1::text[]))"),
            "{sql}"
        );
        assert!(sql.contains("unnest($2::text[], $3::bigint[])"), "{sql}");
        assert!(sql.contains("w.worker_id <> ALL ($2::text[])"), "{sql}");
        assert!(
            sql.contains("id = ANY ($4)\n              AND CASE WHEN ("),
            "{sql}"
        );
        // The range reaches the clock 300 s ahead: 180 s + 300 s, in
        // whole minutes; the text is the same for any other fleet.
        assert!(
            sql.contains("interval '180000 milliseconds' + interval '300000 milliseconds'"),
            "{sql}"
        );
        let mut other = full.clone();
        other.workers.alive = vec!["w2".into(), "w3".into()];
        other.workers.offsets = vec![("a".into(), 250.0), ("b".into(), -20.0)];
        assert_eq!(reset_stuck_sql(&other, Some(&["j2".into()])).0, sql);
        assert!(sql.contains("interval '240000 milliseconds'"), "{sql}");
        assert!(sql.contains("coalesce(q.max_attempts, 3)"), "{sql}");
        assert!(sql.contains("status_id = 3, ocr_error"), "{sql}");
    }
}
