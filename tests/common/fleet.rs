//! Several monitors on the same troubled projects: the data, the settings,
//! and what their logs say was healed.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Monitor, TestDb, eventually, watching};

pub const WAIT: Duration = Duration::from_secs(30);
/// The check interval of these tests.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Each project: three stuck jobs and two dead workers holding a job each.
pub fn troubled(tag: &str) -> TestDb {
    let mut db = TestDb::new(tag);
    for n in 0..3 {
        db.job(
            2,
            Some("worker-hung"),
            Some("10 minutes"),
            &format!("acte:{n}"),
        );
    }
    for w in ["worker-dead-1", "worker-dead-2"] {
        db.worker(w, "busy", "10 minutes");
        db.job(2, Some(w), Some("1 second"), "index:9");
    }
    db
}

/// Settings for `dbs` (a check every second, jobs stuck after one, dead
/// workers believed after two), then `extra`.
pub fn vars(dbs: &[(&str, &TestDb)], extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let base = [
        ("MONITOR_CHECK_INTERVAL", "1s"),
        ("MONITOR_STUCK_JOB_AFTER", "1s"),
        ("MONITOR_HEALTH_LOG_EVERY", "1s"),
        ("MONITOR_DEAD_WORKER_AFTER", "2s"),
    ];
    let projects: Vec<(&str, &str)> = dbs.iter().map(|(n, db)| (*n, db.url.as_str())).collect();
    watching(&projects, &[&base[..], extra].concat())
}

/// How many times each job id (reset, or released with its dead worker)
/// and each dead worker was reported, across every monitor, for `env`.
pub fn reports(
    monitors: &[&Monitor],
    env: &str,
) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
    let (mut jobs, mut workers) = (BTreeMap::new(), BTreeMap::new());
    for m in monitors {
        for line in m.find("🔄 Auto-reset stuck jobs", Some(env)) {
            for j in line["jobs"].as_array().unwrap() {
                *jobs
                    .entry(j["id"].as_str().unwrap().to_string())
                    .or_default() += 1;
            }
        }
        for line in m.find("💀 Cleaned up dead workers", Some(env)) {
            for w in line["workers"].as_array().unwrap() {
                *workers.entry(w.as_str().unwrap().to_string()).or_default() += 1;
            }
            // A dead worker's jobs come back with it, not as stuck jobs.
            for j in line["releasedJobs"].as_array().unwrap() {
                *jobs
                    .entry(j["id"].as_str().unwrap().to_string())
                    .or_default() += 1;
            }
        }
        // Or, when another instance marked it offline, on their own.
        for line in m.find("💀 Released jobs of dead workers", Some(env)) {
            for j in line["jobs"].as_array().unwrap() {
                *jobs
                    .entry(j["id"].as_str().unwrap().to_string())
                    .or_default() += 1;
            }
        }
    }
    (jobs, workers)
}

pub fn wait_reported(monitors: &[&Monitor], env: &str, jobs: usize, workers: usize) {
    eventually(
        &format!("{jobs} resets and {workers} deaths reported in {env}"),
        WAIT,
        || {
            let (j, w) = reports(monitors, env);
            j.len() >= jobs && w.len() >= workers
        },
    );
}

/// Lets a few more cycles pass in every monitor.
pub fn cycles(monitors: &[&Monitor], env: &str, n: usize) {
    for m in monitors {
        let seen = m.find("📊 System health status", Some(env)).len();
        m.wait_for(seen + n, "📊 System health status", Some(env), WAIT);
    }
}
