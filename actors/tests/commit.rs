//! The healing writes the next run would make again commit without
//! waiting for the disk; what an operator runs by hand, and every read,
//! keeps the server's setting. Seen from inside the database: a trigger
//! notes `synchronous_commit` as each write runs.

mod common;

use std::time::Duration;

use common::TestDb;
use registre_actors::sql::{self, PROCESSING};

/// The lease table, as operators create it.
const LEADER_SQL: &str = include_str!("../../sql/leader.sql");

/// Notes, for every statement that updates or inserts into a watched
/// table, the table and the `synchronous_commit` it runs under; the
/// database's own default is made `on` whatever the server's.
fn noting_commits(db: &mut TestDb) {
    db.exec(LEADER_SQL);
    let name = db.name.clone();
    db.exec(&format!(
        "ALTER DATABASE {name} SET synchronous_commit = on"
    ));
    db.exec(
        "CREATE TABLE commits_seen (n serial, tbl text, mode text);
         CREATE FUNCTION note_commit() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             INSERT INTO commits_seen (tbl, mode)
             VALUES (TG_TABLE_NAME, current_setting('synchronous_commit'));
             RETURN NULL;
         END $$;",
    );
    for table in [
        "extraction_queue",
        "worker_status",
        "registre_monitor_leader",
    ] {
        db.exec(&format!(
            "CREATE TRIGGER note_commit AFTER INSERT OR UPDATE ON {table}
             FOR EACH STATEMENT EXECUTE FUNCTION note_commit()"
        ));
    }
}

/// The commits noted since the last call, as `table mode`, in order.
fn commits_seen(db: &mut TestDb) -> Vec<String> {
    let seen = db
        .text(
            "WITH taken AS (DELETE FROM commits_seen RETURNING n, tbl || ' ' || mode AS seen)
             SELECT coalesce(string_agg(seen, ',' ORDER BY n), '') FROM taken",
        )
        .unwrap_or_default();
    seen.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn healing_writes_do_not_wait_for_the_disk_and_an_operators_reset_does() {
    let mut db = TestDb::new("commit_modes");
    noting_commits(&mut db);
    let minute = Duration::from_secs(60);
    let rules = sql::StuckRules::plain(minute);
    let processing = i32::from(PROCESSING.status);

    // A stuck job, listed then reset by id, as the resetter does.
    let stuck = db.job(processing, Some("w"), Some("2 hours"), "acte:1");
    commits_seen(&mut db);
    let reset = db.run(async |db| {
        let ids = sql::stuck_candidates(&db, &rules, true).await.unwrap();
        sql::reset_stuck_ids(&db, &rules, &ids).await.unwrap()
    });
    assert_eq!(reset.jobs.len(), 1, "{reset:?}");
    assert_eq!(db.job_status(&stuck), 1);
    assert_eq!(commits_seen(&mut db), ["extraction_queue off"]);

    // A dead worker's row marked offline and its job released, with the
    // index on the workers' jobs and without it.
    for indexed in [true, false] {
        db.worker("dead", "busy", "10 minutes");
        let held = db.job(processing, Some("dead"), Some("1 second"), "acte:2");
        commits_seen(&mut db);
        let released = db.run(async |db| {
            let read = sql::read_workers(&db).await.unwrap();
            let judged: Vec<_> = read
                .rows
                .iter()
                .map(|r| (r.id.clone(), r.hb.clone()))
                .collect();
            let marked = sql::mark_offline(&db, &judged).await.unwrap();
            assert_eq!(marked, ["dead"]);
            sql::release_jobs_of(&db, &marked, None, indexed)
                .await
                .unwrap()
        });
        assert_eq!(
            released.released.len(),
            1,
            "indexed {indexed}: {released:?}"
        );
        assert_eq!(db.job_status(&held), 1);
        assert_eq!(
            commits_seen(&mut db),
            ["worker_status off", "extraction_queue off"],
            "indexed {indexed}"
        );
        db.exec("DELETE FROM worker_status");
    }

    // The lease, claimed every interval by its holder.
    let lease = db.run(async |db| sql::claim_lease(&db, "a:1", minute).await.unwrap());
    assert!(lease.ours, "{lease:?}");
    // (`INSERT ... ON CONFLICT DO UPDATE` fires both statement triggers.)
    let off = "registre_monitor_leader off";
    assert_eq!(commits_seen(&mut db), [off, off]);

    // `reset-stuck-jobs`, run by an operator: durable.
    let by_hand = db.job(processing, Some("w"), Some("2 hours"), "acte:3");
    commits_seen(&mut db);
    let jobs = db.run(async |db| sql::reset_stuck_jobs(&db, minute).await.unwrap());
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(db.job_status(&by_hand), 1);
    assert_eq!(commits_seen(&mut db), ["extraction_queue on"]);
}
