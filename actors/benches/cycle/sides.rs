//! The first system's statement list, as it ran every interval: a select
//! then an update per rule, thresholds from the client's clock, each
//! statement its own request and transaction.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postgres::{Client, SimpleQueryMessage};
use registre_actors::sql;

use super::simple;

/// One cycle of the first system: select stuck jobs; update the same
/// condition; select stale workers; one update per stale worker's current
/// job (not already offline); mark every stale worker offline (already-offline ones included);
/// count workers with a recent heartbeat; three exact counts of status 1,
/// 2 and 4.
pub fn baseline_cycle(c: &mut Client, stuck_after: Duration, dead_after: Duration) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let ts = |ago: Duration| format!("to_timestamp({:.3})", now - ago.as_secs_f64());
    let (stuck, dead, now) = (ts(stuck_after), ts(dead_after), ts(Duration::ZERO));
    simple(
        c,
        &format!(
            "SELECT * FROM extraction_queue WHERE status_id = 2 AND processing_started_at < {stuck}"
        ),
    );
    simple(
        c,
        &format!(
            "UPDATE extraction_queue SET status_id = 1, worker_id = NULL, processing_started_at = NULL, \
             error_message = {msg}, updated_at = {now} \
             WHERE status_id = 2 AND processing_started_at < {stuck}",
            msg = sql::literal(sql::STUCK_RESET_MESSAGE)
        ),
    );
    let stale = simple(
        c,
        &format!("SELECT * FROM worker_status WHERE last_heartbeat < {dead}"),
    );
    let jobs: Vec<String> = stale
        .iter()
        .filter_map(|m| match m {
            // Rows it already marked offline are left alone (the list
            // would otherwise grow with every death ever seen).
            SimpleQueryMessage::Row(r) if r.get("status") != Some("offline") => {
                r.get("current_job_id").map(str::to_string)
            }
            _ => None,
        })
        .collect();
    for job in jobs {
        simple(
            c,
            &format!(
                "UPDATE extraction_queue SET status_id = 1, worker_id = NULL, \
                 processing_started_at = NULL, updated_at = {now} WHERE id = '{job}'"
            ),
        );
    }
    simple(
        c,
        &format!("UPDATE worker_status SET status = 'offline' WHERE last_heartbeat < {dead}"),
    );
    simple(
        c,
        &format!("SELECT count(*) FROM worker_status WHERE last_heartbeat >= {dead}"),
    );
    for status in [1, 2, 4] {
        simple(
            c,
            &format!("SELECT count(*) FROM extraction_queue WHERE status_id = {status}"),
        );
    }
}
