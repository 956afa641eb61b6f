//! The stuck rule's read-only look: which jobs may be stuck, by id, so that
//! the write (which checks each again under lock) is sent only when there
//! are some, and reaches them by primary key.
//!
//! Nearly every run finds nothing, so the look is what the rule costs. Its
//! text depends only on the thresholds (a statement the server keeps
//! planned): it leaves out what the fleet knows (the live-worker grace,
//! measured clock offsets, workers waiting for a verdict), which only ever
//! holds a job back. So it finds every job the write would reset, and may
//! find a few the write then keeps; the range reaches as far as the most
//! advanced worker clock, rounded up to a minute.
//!
//! With the rules' indexes of `sql/indexes.sql`, each stage's candidates
//! are an ordered range of its index (a plain index scan, which marks dead
//! entries killed; never a `BitmapOr`). Without them, one pass over the
//! table finds both stages' candidates, and a read-only pass may be shared
//! by parallel workers, where the write's could not.

use std::time::Duration;

use super::fleet_conditions::reach;
use super::interval;
use super::stage::{OCR, PROCESSING, Stage};
use super::stuck::StuckRules;
use crate::database::{Database, DbError};

/// The most candidates one look returns per stage, and so the most jobs a
/// write resets.
pub const CANDIDATES: usize = 1000;

/// The condition a job of `stage` meets when it may be stuck: in the stage
/// since before `after - reach` ago.
fn may_be_stuck(stage: &Stage, after: Duration, reach: Duration) -> String {
    format!(
        "status_id = {} AND {} < now() - {}",
        stage.status,
        stage.since(""),
        interval(after.saturating_sub(reach))
    )
}

/// Each stage's condition of a job that may be stuck; the processing
/// stage's range reaches as far as the most advanced worker clock, rounded
/// up to a minute (so that the text takes few forms).
fn stage_conditions(rules: &StuckRules) -> Vec<(Stage, String)> {
    let mut stages = vec![(
        PROCESSING,
        may_be_stuck(&PROCESSING, rules.stuck_after, reach(&rules.workers)),
    )];
    if let Some(ocr) = &rules.ocr {
        stages.push((OCR, may_be_stuck(&OCR, ocr.stuck_after, Duration::ZERO)));
    }
    stages
}

/// The condition of a job that may be stuck, in any stage: what the look
/// finds (the health check's pass over the table asks it of every row,
/// see [`StuckVerdict`](crate::stuck_verdict::StuckVerdict)).
pub fn may_be_stuck_condition(rules: &StuckRules) -> String {
    let conditions: Vec<String> = stage_conditions(rules)
        .into_iter()
        .map(|(_, c)| format!("({c})"))
        .collect();
    conditions.join(" OR ")
}

/// The text of [`stuck_candidates`].
pub fn stuck_candidates_sql(rules: &StuckRules, indexed: bool) -> String {
    let stages = stage_conditions(rules);
    let ids = if indexed {
        let ranges: Vec<String> = stages
            .iter()
            .map(|(stage, condition)| {
                format!(
                    "(SELECT id FROM extraction_queue WHERE {condition}
                      ORDER BY {} LIMIT {CANDIDATES})",
                    stage.since("")
                )
            })
            .collect();
        ranges.join("\n            UNION ALL ")
    } else {
        format!(
            "SELECT id FROM extraction_queue WHERE {} LIMIT {CANDIDATES}",
            may_be_stuck_condition(rules)
        )
    };
    format!("SELECT coalesce(json_agg(id::text), '[]') FROM ({ids}) candidates")
}

/// The ids of the jobs that may be stuck now, read-only (see the module's
/// description); `indexed`: the rules' indexes exist.
pub async fn stuck_candidates(
    db: &Database,
    rules: &StuckRules,
    indexed: bool,
) -> Result<Vec<String>, DbError> {
    db.query_json_prepared(&stuck_candidates_sql(rules, indexed))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::WorkerView;

    #[test]
    fn the_look_ignores_the_fleet_but_reaches_ahead_clocks() {
        let mut rules = StuckRules::plain(Duration::from_secs(180));
        let plain = stuck_candidates_sql(&rules, true);
        rules.workers = WorkerView {
            offsets: vec![("slow".into(), -300.0)],
            stale_after: Some(Duration::from_secs(120)),
            alive: vec!["w1".into()],
        };
        assert_eq!(stuck_candidates_sql(&rules, true), plain, "same text");
        rules.workers.offsets.push(("ahead".into(), 61.5));
        let ahead = stuck_candidates_sql(&rules, true);
        assert!(ahead.contains("interval '60000 milliseconds'"), "{ahead}");
        assert!(!plain.contains(" OR "), "{plain}");
        assert!(stuck_candidates_sql(&rules, false).contains("LIMIT 1000) candidates"));
    }
}
