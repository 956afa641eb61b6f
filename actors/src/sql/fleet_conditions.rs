//! What the fleet knows of the workers, as conditions the stuck rule puts
//! on a processing job: the live-worker grace, each worker's clock offset,
//! and the wait for a verdict on a worker whose heartbeat is stale. The
//! workers and offsets are parameters, so the rule's text is the same
//! whatever the fleet.

use std::time::Duration;

use super::interval;
use super::params::Params;
use super::stage::PROCESSING;
use super::stuck::LiveGrace;
use crate::fleet::WorkerView;

/// The live-worker grace: a job whose worker is alive (as the fleet saw
/// it) and reports it as its `current_job_id` is stuck only after the
/// threshold plus the grace.
pub(super) fn grace_condition(
    stuck_after: Duration,
    g: LiveGrace,
    alive: &[String],
    params: &mut Params,
) -> String {
    format!(
        "
              AND NOT ({since} >= now() - {total}
                       AND worker_id IN {alive}
                       AND EXISTS (SELECT 1 FROM worker_status w
                                   WHERE w.worker_id = extraction_queue.worker_id
                                     AND w.current_job_id = extraction_queue.id
                                     AND w.status IS DISTINCT FROM 'offline'))",
        since = PROCESSING.since(""),
        total = interval(stuck_after + g.grace),
        alive = params.text_set(alive),
    )
}

/// What the fleet knows, as conditions on a processing job: its written
/// start corrected by its worker's clock offset, and no job of a worker
/// whose clock is unknown and written heartbeat stale. The workers and
/// their offsets are parameters, so the text is the same whatever the
/// fleet (one form where the fleet is watched, as in the monitor).
pub(super) fn worker_conditions(
    stuck_after: Duration,
    view: &WorkerView,
    params: &mut Params,
) -> String {
    if view.offsets.is_empty() && view.stale_after.is_none() {
        return String::new();
    }
    let workers: Vec<&str> = view.offsets.iter().map(|(w, _)| w.as_str()).collect();
    let millis: Vec<String> = view
        .offsets
        .iter()
        .map(|(_, o)| ((o * 1000.0).round() as i64).to_string())
        .collect();
    let (workers, millis) = (params.strings(&workers), params.strings(&millis));
    let mut out = format!(
        "
              AND {since} - interval '1 millisecond' * coalesce((
                      SELECT o.ms FROM unnest({workers}::text[], {millis}::bigint[]) AS o (worker, ms)
                      WHERE o.worker = extraction_queue.worker_id LIMIT 1), 0) < now() - {after}",
        since = PROCESSING.since(""),
        after = interval(stuck_after),
    );
    if let Some(stale) = view.stale_after {
        // Its clock not measured and its written heartbeat stale: alive
        // with a slow clock, or dead and soon offline. Either way, wait.
        out.push_str(&format!(
            "
              AND NOT EXISTS (SELECT 1 FROM worker_status w
                              WHERE w.worker_id = extraction_queue.worker_id
                                AND w.status IS DISTINCT FROM 'offline'
                                AND w.last_heartbeat < now() - {stale}
                                AND w.worker_id <> ALL ({workers}::text[]))",
            stale = interval(stale),
        ));
    }
    out
}

/// How far the index range must reach for the jobs of workers whose
/// clocks are ahead: as far as the most advanced one, rounded up to a
/// minute (so that the texts take few forms).
pub(super) fn reach(view: &WorkerView) -> Duration {
    let ahead = view.offsets.iter().map(|(_, o)| *o).fold(0.0, f64::max);
    let minutes = (ahead.clamp(0.0, 86_400.0) / 60.0).ceil() as u64;
    Duration::from_secs(minutes * 60)
}
