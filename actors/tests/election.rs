//! The leader election's `run_once` on a fresh database, and what its
//! outcome makes of the role: the lease (with the opt-in table of
//! `sql/leader.sql`), the advisory lock without it, an orphaned lock, and a
//! failed run.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::TestDb;
use registre_actors::check::{Check, Reporting, RunContext};
use registre_actors::database::{Database, DbError, HomeSession};
use registre_actors::features::Features;
use registre_actors::leader::{self, Found, LeaderElection};
use registre_actors::sql;
use registre_actors::{MonitorState, Role, Settings};

/// The lease table, as operators create it.
const LEADER_SQL: &str = include_str!("../../sql/leader.sql");

/// One instance of the monitor, as far as one project's election goes.
struct Instance {
    election: LeaderElection,
    /// The election's session, which the project's checks send on too.
    home: HomeSession,
    cx: RunContext,
    state: MonitorState,
}

/// Where an election's outcome goes.
fn reporting<'a>(cx: &'a RunContext, state: &'a MonitorState) -> Reporting<'a> {
    Reporting {
        project: "dev",
        settings: &cx.settings,
        state,
        role: state.role("dev"),
    }
}

impl Instance {
    fn new(id: &str, check_interval: Duration) -> Instance {
        let settings = Arc::new(Settings {
            instance_id: id.into(),
            check_interval,
            ..Settings::default()
        });
        let state = MonitorState::new();
        let session = leader::start(&state, "dev", id, false, false);
        assert_eq!(state.role("dev"), Role::Undecided);
        Instance {
            home: session.home(),
            election: LeaderElection::new(session),
            cx: RunContext {
                settings,
                features: Features::new("dev"),
                fleet: state.fleet(),
                stuck_verdict: Default::default(),
                held_verdict: Default::default(),
            },
            state,
        }
    }

    /// One run and its outcome applied; returns what was found.
    async fn elect(&mut self, db: &Database) -> Found {
        let found = self.election.run_once(db, &self.cx).await.unwrap();
        self.election
            .on_success(found.clone(), &reporting(&self.cx, &self.state));
        found
    }

    fn role(&self) -> Role {
        self.state.role("dev")
    }

    fn acting_instance(&self) -> Option<String> {
        self.state.project("dev").unwrap().acting_instance
    }
}

const INTERVAL: Duration = Duration::from_secs(30);

/// The lease statement on a fresh table: the first claim takes it for 1.5
/// intervals (by the database's clock), the same instance renews it,
/// another is refused and told who holds it, and takes it once expired.
#[test]
fn the_lease_is_taken_renewed_refused_and_taken_over_once_expired() {
    let mut db = TestDb::new("el_lease");
    db.exec(LEADER_SQL);
    let ttl = Duration::from_secs(45);
    let (first, second, third) = db.run(async |db| {
        let first = sql::claim_lease(&db, "a:1", ttl).await.unwrap();
        let again = sql::claim_lease(&db, "a:1", ttl).await.unwrap();
        assert!(again.ours);
        let second = sql::claim_lease(&db, "b:2", ttl).await.unwrap();
        (first, second, again)
    });
    assert!(first.ours && third.ours);
    assert_eq!(first.holder.as_deref(), Some("a:1"));
    let ms = first.expires_in_ms.unwrap();
    assert!((44_000..=45_000).contains(&ms), "{ms}");
    assert!(!second.ours);
    assert_eq!(second.holder.as_deref(), Some("a:1"));
    db.exec("UPDATE registre_monitor_leader SET expires_at = now() - interval '1 ms'");
    let taken = db.run(async |db| sql::claim_lease(&db, "b:2", ttl).await.unwrap());
    assert!(taken.ours);
    assert_eq!(
        db.text("SELECT instance FROM registre_monitor_leader")
            .as_deref(),
        Some("b:2")
    );
    assert_eq!(db.count("SELECT count(*) FROM registre_monitor_leader"), 1);
}

/// With the lease table, two instances' elections: the first acts, the
/// second stands by (neither heals nor speaks) and names the first, and
/// retries soon; once the first's lease has expired the second acts and
/// the first, back, stands by.
#[test]
fn with_the_lease_table_one_acts_and_the_other_stands_by_until_it_expires() {
    let mut db = TestDb::new("el_elect_lease");
    db.exec(LEADER_SQL);
    let mut a = Instance::new("host-a:1", INTERVAL);
    let mut b = Instance::new("host-b:2", INTERVAL);
    db.run(async |db| {
        assert!(matches!(a.elect(&db).await, Found::Lease(l) if l.ours));
        assert!(matches!(b.elect(&db).await, Found::Lease(l) if !l.ours));
    });
    assert_eq!(a.role(), Role::Acting);
    assert_eq!(b.role(), Role::StandingBy);
    assert!(!b.role().acts() && !b.role().speaks());
    assert_eq!(b.acting_instance().as_deref(), Some("host-a:1"));
    assert!(b.state.project("dev").unwrap().role_settled);
    assert_eq!(a.election.interval(&a.cx.settings), INTERVAL);
    assert_eq!(b.election.interval(&b.cx.settings), INTERVAL / 4);

    db.exec("UPDATE registre_monitor_leader SET expires_at = now() - interval '1 ms'");
    db.run(async |db| {
        b.elect(&db).await;
        a.elect(&db).await;
    });
    assert_eq!(b.role(), Role::Acting);
    assert_eq!(a.role(), Role::StandingBy);
    assert_eq!(a.acting_instance().as_deref(), Some("host-b:2"));
}

/// Without the lease table, the advisory lock: the first instance acts,
/// the second is a backup (heals, does not speak) naming the first.
#[test]
fn without_the_lease_table_the_other_instance_is_a_backup_that_heals() {
    let db = TestDb::new("el_elect_lock");
    let mut a = Instance::new("host-a:1", INTERVAL);
    let mut b = Instance::new("host-b:2", INTERVAL);
    db.run(async |db| {
        assert!(matches!(
            a.elect(&db).await,
            Found::Lock { fresh: true, .. }
        ));
        assert!(matches!(
            b.elect(&db).await,
            Found::Lock { fresh: true, .. }
        ));
        // Held: the sessions must outlive the runs (a.election, b.election).
    });
    assert_eq!(a.role(), Role::Acting);
    assert_eq!(b.role(), Role::Backup);
    assert!(b.role().acts() && !b.role().speaks());
    assert_eq!(b.acting_instance().as_deref(), Some("host-a:1"));
    assert_eq!(b.election.interval(&b.cx.settings), INTERVAL);
}

/// A lock held by a session idle for more than three intervals (as a
/// pooler's server connection keeps it after its client was killed) is
/// taken for orphaned: this instance is undecided, so it speaks too.
#[test]
fn a_lock_held_by_a_session_idle_for_three_intervals_is_orphaned() {
    let db = TestDb::new("el_orphan");
    let mut ghost = db.connect();
    ghost
        .batch_execute(
            "SET application_name = 'registre-monitor ghost:1';
             SELECT pg_advisory_lock(1380271949, 1);",
        )
        .unwrap();
    let interval = Duration::from_millis(20);
    let mut me = Instance::new("host-a:1", interval);
    db.run(async |db| {
        // First seen busy or just idle: a backup. Then idle long enough.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            assert!(std::time::Instant::now() < deadline, "never seen idle");
            let Found::Lock { found, .. } = me.elect(&db).await else {
                panic!("no lease table: the lock decides");
            };
            assert!(!found.acting);
            assert_eq!(found.holder_instance().as_deref(), Some("ghost:1"));
            if found.holder_idle_ms.is_some_and(|ms| ms > 60) {
                break;
            }
            assert_eq!(me.role(), Role::Backup);
            tokio::time::sleep(interval).await;
        }
    });
    assert_eq!(me.role(), Role::Undecided);
    assert!(me.role().acts() && me.role().speaks());
    drop(ghost);
}

/// The project's checks send on the election's session while it is free,
/// so that a cycle wakes one backend: while it is busy, they take the pool
/// at once; a session killed under them is
/// replaced by the election's next run, and they follow it there.
#[test]
fn the_checks_send_on_the_election_session_while_it_is_free() {
    let db = TestDb::new("el_home");
    let mut me = Instance::new("host-a:1", INTERVAL);
    db.run(async |pool| {
        let checks = pool.clone().with_home(me.home.clone());
        let backend = async |db: &Database| {
            db.query_json::<i64>("SELECT to_json(pg_backend_pid())")
                .await
        };
        let Found::Lock { found, .. } = me.elect(&checks).await else {
            panic!("no lease table: the lock decides");
        };
        assert!(found.acting);
        assert_eq!(backend(&checks).await.unwrap(), found.pid);
        assert_eq!(backend(&checks).await.unwrap(), found.pid);
        let pooled = {
            let _busy = me.home.lock().await;
            backend(&checks).await.unwrap()
        };
        assert_ne!(pooled, found.pid, "busy: the pool");
        let kill = format!("SELECT to_json(pg_terminate_backend({}))", found.pid);
        assert!(pool.query_json::<bool>(&kill).await.unwrap());
        // The requests that find it gone fail (a connection error); once
        // it is seen closed, none is sent on it.
        let mut failed = 0;
        let answered = loop {
            match backend(&checks).await {
                Ok(pid) => break pid,
                Err(e) => assert!(e.is_connection() && failed < 10, "{e}"),
            }
            failed += 1;
        };
        assert_eq!(answered, pooled);
        let Found::Lock {
            found: again,
            fresh,
        } = me.elect(&checks).await
        else {
            panic!("no lease table: the lock decides");
        };
        assert!(fresh && again.acting && again.pid != found.pid);
        assert_eq!(backend(&checks).await.unwrap(), again.pid);
    });
    assert_eq!(me.role(), Role::Acting);
}

/// A failed run leaves the role undecided, whatever it was: acting and
/// speaking while the election cannot tell.
#[test]
fn a_failed_run_leaves_the_role_undecided() {
    let mut me = Instance::new("host-a:1", INTERVAL);
    for before in [Role::StandingBy, Role::Backup, Role::Acting] {
        me.state
            .set_role("dev", before, Some("host-b:2".into()), true);
        let error = DbError::Timeout("no answer".into());
        me.election
            .on_failure(&error, &reporting(&me.cx, &me.state));
        assert_eq!(me.role(), Role::Undecided);
        assert!(me.role().acts() && me.role().speaks());
    }
}
