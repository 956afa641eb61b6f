//! Two monitors at once on the same projects: two real processes, real
//! databases, one killed with SIGKILL.

mod common;

use std::time::Instant;

use common::Monitor;
use common::fleet::{INTERVAL, WAIT, cycles, reports, troubled, vars, wait_reported};

/// Two monitor processes started together on the same two projects, with
/// no lease table (the advisory lock decides): per project exactly one says
/// it acts and speaks, and the other that it heals as a backup (in logs,
/// `/status` and `/metrics`); each
/// stuck job's reset and each dead worker is reported exactly once across
/// both, cycle after cycle. Killing the acting one with SIGKILL, the other
/// acts within two check intervals and heals what gets stuck after.
#[test]
fn two_monitors_act_once_and_the_survivor_takes_over() {
    let a = troubled("twoa");
    let mut b = troubled("twob");
    let vars = vars(&[("a", &a), ("b", &b)], &[]);
    let first = Monitor::start(&vars);
    let second = Monitor::start(&vars);
    let both = [&first, &second];

    for env in ["a", "b"] {
        wait_reported(&both, env, 5, 2);
    }
    for env in ["a", "b"] {
        cycles(&both, env, 3);
    }
    let mut acting_for_a = None;
    for env in ["a", "b"] {
        let (jobs, workers) = reports(&both, env);
        assert_eq!(jobs.len(), 5, "{env}: {jobs:?}");
        assert!(jobs.values().all(|n| *n == 1), "{env}: {jobs:?}");
        assert_eq!(workers.len(), 2, "{env}: {workers:?}");
        assert!(workers.values().all(|n| *n == 1), "{env}: {workers:?}");
        let acting: Vec<usize> = both
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.find("👑 Acting for environment", Some(env)).is_empty())
            .map(|(i, _)| i)
            .collect();
        assert_eq!(acting.len(), 1, "{env}: one instance acts");
        let standby = 1 - acting[0];
        let lines = both[standby].find("🛟 Healing as backup", Some(env));
        assert_eq!(lines.len(), 1, "{env}: the other is a backup");
        assert!(both[standby].find("💤", Some(env)).is_empty());
        assert!(
            lines[0]["actingInstance"]
                .as_str()
                .unwrap()
                .ends_with(&format!(":{}", both[acting[0]].pid())),
            "the backup names the acting instance: {}",
            lines[0]
        );
        // Only the acting instance warns about the project's anomalies.
        assert!(!both[acting[0]].find("⚠️", Some(env)).is_empty());
        assert!(both[standby].find("⚠️", Some(env)).is_empty());
        // `/status` and `/metrics` say the same.
        for (i, role) in [(acting[0], "acting"), (standby, "backup")] {
            let addr = common::http::addr(both[i]);
            let (_, status) = common::http::get_json(addr, "/status");
            let p = &status["projects"][env];
            assert_eq!(p["role"], role, "{status}");
            let acting_pid = format!(":{}", both[acting[0]].pid());
            assert!(
                p["actingInstance"].as_str().unwrap().ends_with(&acting_pid),
                "{status}"
            );
            let m = common::http::metrics(addr);
            let gauge = m[&format!("registre_monitor_acting{{environment=\"{env}\"}}")];
            assert_eq!(gauge, f64::from(u8::from(role == "acting")));
            let healing = m[&format!("registre_monitor_healing{{environment=\"{env}\"}}")];
            assert_eq!(healing, 1.0, "a backup heals too");
        }
        if env == "a" {
            acting_for_a = Some(acting[0]);
        }
    }

    // Kill the instance acting for project a; the other takes over.
    let acting = acting_for_a.unwrap();
    let (dead, survivor) = (both[acting], both[1 - acting]);
    let survivor_acted_for_b = !survivor
        .find("👑 Acting for environment", Some("b"))
        .is_empty();
    dead.signal("KILL");
    let killed = Instant::now();
    survivor.wait_for(1, "👑 Acting for environment", Some("a"), WAIT);
    let took = killed.elapsed();
    eprintln!("took over after {took:?}");
    assert!(
        took <= 2 * INTERVAL,
        "took over after {took:?}, more than two intervals"
    );
    if !survivor_acted_for_b {
        survivor.wait_for(1, "👑 Acting for environment", Some("b"), WAIT);
    }
    let later = b.job(2, Some("worker-hung"), Some("10 minutes"), "acte:99");
    common::eventually("the survivor resets the new job", WAIT, || {
        reports(&[survivor], "b").0.contains_key(later.as_str())
    });
    assert_eq!(b.job_status(&later), 1);
}

/// Even with the election off (every instance acts, as through a
/// transaction pooler), each statement is exactly-once under concurrency:
/// two monitors report each reset and each dead worker once between them.
#[test]
fn without_election_resets_and_deaths_are_still_reported_once() {
    let a = troubled("offa");
    let vars = vars(&[("a", &a)], &[("MONITOR_LEADER_ELECTION", "off")]);
    let first = Monitor::start(&vars);
    let second = Monitor::start(&vars);
    let both = [&first, &second];
    wait_reported(&both, "a", 5, 2);
    cycles(&both, "a", 3);
    let (jobs, workers) = reports(&both, "a");
    assert_eq!(jobs.len(), 5, "{jobs:?}");
    assert!(jobs.values().all(|n| *n == 1), "{jobs:?}");
    assert_eq!(workers.len(), 2, "{workers:?}");
    assert!(workers.values().all(|n| *n == 1), "{workers:?}");
    assert!(first.find("👑", None).is_empty() && first.find("💤", None).is_empty());
}
