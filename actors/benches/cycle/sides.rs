//! The two sides measured: the monitor's statements, exactly as it sends
//! them, and the baseline's.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postgres::{Client, SimpleQueryMessage};
use registre_actors::settings::Settings;
use registre_actors::{features, sql};

use super::simple;

/// A side's cycle: the requests it sends, in order.
pub struct Side {
    pub name: &'static str,
    /// `(label, prefix sent in the same request, statement)`.
    pub statements: Vec<(String, String, String)>,
}

/// The monitor's cycle: its three statements, each one request after its
/// `SET LOCAL statement_timeout`, as `Database::query_json` sends them.
pub fn monitor_side() -> Side {
    // What the monitor sends by default on the real schema: resets counted
    // as attempts, the OCR rule on.
    let settings = Settings::default();
    let allowed = features::decide(
        &sql::Columns {
            table: true,
            columns: sql::OPTIONAL_COLUMNS
                .iter()
                .map(|c| c.to_string())
                .chain([settings.attempts_column.as_str().to_string()])
                .collect(),
        },
        &settings,
    );
    let set = format!(
        "SET LOCAL statement_timeout = {}; ",
        Settings::STATEMENT_TIMEOUT_DEFAULT.as_millis()
    );
    Side {
        name: "monitor",
        statements: vec![
            (
                "reset_stuck_jobs".into(),
                set.clone(),
                sql::reset_stuck_sql(&allowed.stuck_rules(&settings)),
            ),
            // A steady run of the reaper reads the live worker rows; it
            // writes only when the fleet finds someone dead.
            (
                "read_workers".into(),
                set.clone(),
                sql::workers::read_workers_sql(),
            ),
            (
                "health_counts".into(),
                set,
                sql::health_counts_sql(Settings::DEAD_WORKER_AFTER_DEFAULT),
            ),
        ],
    }
}

/// The baseline's cycle, statement by statement, thresholds from the
/// client's clock as it computed them. `dead_jobs` are the `current_job_id`s
/// of the workers its stale-worker select returns (one update each).
pub fn baseline_side(dead_jobs: &[String]) -> Side {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let ts = |ago: Duration| format!("to_timestamp({:.3})", now - ago.as_secs_f64());
    let stuck = ts(Settings::STUCK_JOB_AFTER_DEFAULT);
    let dead = ts(Settings::DEAD_WORKER_AFTER_DEFAULT);
    let now = ts(Duration::ZERO);
    let mut s: Vec<(String, String, String)> = vec![
        (
            "select stuck jobs".into(),
            String::new(),
            format!(
                "SELECT * FROM extraction_queue WHERE status_id = 2 AND processing_started_at < {stuck}"
            ),
        ),
        (
            "update stuck jobs".into(),
            String::new(),
            format!(
                "UPDATE extraction_queue SET status_id = 1, worker_id = NULL, processing_started_at = NULL, \
                  error_message = {msg}, updated_at = {now} \
                  WHERE status_id = 2 AND processing_started_at < {stuck}",
                msg = sql::literal(sql::STUCK_RESET_MESSAGE)
            ),
        ),
        (
            "select stale workers".into(),
            String::new(),
            format!("SELECT * FROM worker_status WHERE last_heartbeat < {dead}"),
        ),
    ];
    for job in dead_jobs {
        s.push((
            "release a dead worker's job".into(),
            String::new(),
            format!(
                "UPDATE extraction_queue SET status_id = 1, worker_id = NULL, \
                         processing_started_at = NULL, updated_at = {now} WHERE id = '{job}'"
            ),
        ));
    }
    s.push((
        "mark stale workers offline".into(),
        String::new(),
        format!("UPDATE worker_status SET status = 'offline' WHERE last_heartbeat < {dead}"),
    ));
    s.push((
        "count active workers".into(),
        String::new(),
        format!("SELECT count(*) FROM worker_status WHERE last_heartbeat >= {dead}"),
    ));
    for status in [1, 2, 4] {
        s.push((
            format!("count status {status}"),
            String::new(),
            format!("SELECT count(*) FROM extraction_queue WHERE status_id = {status}"),
        ));
    }
    Side {
        name: "baseline",
        statements: s,
    }
}

/// What the baseline's stale-worker select would return: the jobs it then
/// updates one by one.
pub fn baseline_dead_jobs(c: &mut Client) -> Vec<String> {
    simple(
        c,
        &format!(
            "SELECT current_job_id FROM worker_status
             WHERE last_heartbeat < now() - interval '{} seconds' AND current_job_id IS NOT NULL",
            Settings::DEAD_WORKER_AFTER_DEFAULT.as_secs()
        ),
    )
    .into_iter()
    .filter_map(|m| match m {
        SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    })
    .collect()
}
