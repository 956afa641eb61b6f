//! The actor tree survives its own failures: run in-process against a real
//! database, with faults injected into running actors.

mod common;

use std::time::{Duration, Instant};

use common::TestDb;
use registre_actors::state::ProjectState;
use registre_actors::{ChildKind, Fault, InjectFault, MonitorState, Project, Settings, Supervisor};

fn settings() -> Settings {
    Settings {
        check_interval: Duration::from_millis(100),
        stuck_job_after: Duration::from_secs(1),
        dead_worker_after: Duration::from_secs(60),
        ..Settings::default()
    }
}

async fn until(
    what: &str,
    state: &MonitorState,
    cond: impl Fn(&ProjectState) -> bool,
) -> ProjectState {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let p = state.project("dev").unwrap();
        if cond(&p) {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for: {what}; state {p:#?}"
        );
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

fn runs(p: &ProjectState, kind: ChildKind) -> u64 {
    p.check(kind).map_or(0, |c| c.runs)
}

/// Starts the tree on `db`'s project, waits until every check ran twice,
/// then injects `fault` into `child`. The tree lives while its address is
/// held.
async fn ticking_then(
    db: &TestDb,
    state: &MonitorState,
    child: ChildKind,
    fault: Fault,
) -> actix::Addr<Supervisor> {
    use actix::Actor;
    let project = Project::parse("dev", &db.url).unwrap();
    let supervisor = Supervisor::new(vec![project], settings(), state.clone()).start();
    until("every child ticks", state, |p| {
        ChildKind::ALL.iter().all(|k| runs(p, *k) >= 2)
    })
    .await;
    supervisor.do_send(InjectFault {
        project: "dev".into(),
        child,
        fault,
    });
    supervisor
}

fn restarts(p: &ProjectState, kind: ChildKind) -> u64 {
    p.check(kind).map_or(0, |c| c.restarts)
}

/// A panic in one child restarts that child only, after a backoff, while
/// its siblings keep ticking; the restarted child does its job again.
#[test]
fn a_panicking_child_is_restarted_alone() {
    let db = TestDb::new("panic");
    let state = MonitorState::new();
    actix_rt::System::new().block_on(async move {
        let _tree = ticking_then(&db, &state, ChildKind::StuckJobResetter, Fault::Panic).await;
        let at_restart = until("the resetter is restarted", &state, |p| {
            restarts(p, ChildKind::StuckJobResetter) == 1
        })
        .await;
        // Siblings tick through the restart backoff (1 s, ten intervals).
        let later = until("siblings keep ticking", &state, |p| {
            runs(p, ChildKind::WorkerReaper) >= runs(&at_restart, ChildKind::WorkerReaper) + 3
                && runs(p, ChildKind::HealthReporter)
                    >= runs(&at_restart, ChildKind::HealthReporter) + 3
        })
        .await;
        let back = until("the resetter ticks again", &state, |p| {
            runs(p, ChildKind::StuckJobResetter) > runs(&later, ChildKind::StuckJobResetter)
        })
        .await;
        assert_eq!(restarts(&back, ChildKind::WorkerReaper), 0);
        assert_eq!(restarts(&back, ChildKind::HealthReporter), 0);

        // The restarted resetter still heals the queue.
        let (mut db, stale) = tokio::task::spawn_blocking(move || {
            let mut db = db;
            let stale = db.job(2, Some("worker-ac"), Some("10 minutes"), "acte:1");
            (db, stale)
        })
        .await
        .unwrap();
        until("the stale job is reset", &state, |p| p.jobs_reset == 1).await;
        let status = tokio::task::spawn_blocking(move || db.job_status(&stale))
            .await
            .unwrap();
        assert_eq!(status, 1);
    });
}

/// A hung child stops completing runs while its siblings go on: what
/// `/healthz` and the systemd watchdog are built on.
#[test]
fn a_hung_child_stops_ticking_alone() {
    let db = TestDb::new("hang");
    let state = MonitorState::new();
    actix_rt::System::new().block_on(async {
        let _tree = ticking_then(&db, &state, ChildKind::HealthReporter, Fault::Hang).await;
        // Once the siblings have run a few more times, the hang has landed
        // and any run the reporter had in flight is over (or never will be).
        let sent = state.project("dev").unwrap();
        let hung = until("siblings tick past the hang", &state, |p| {
            runs(p, ChildKind::StuckJobResetter) >= runs(&sent, ChildKind::StuckJobResetter) + 3
        })
        .await;
        let p = until("siblings keep ticking", &state, |p| {
            runs(p, ChildKind::StuckJobResetter) >= runs(&hung, ChildKind::StuckJobResetter) + 5
        })
        .await;
        assert_eq!(
            runs(&p, ChildKind::HealthReporter),
            runs(&hung, ChildKind::HealthReporter)
        );
        assert_eq!(restarts(&p, ChildKind::HealthReporter), 0);
    });
}
