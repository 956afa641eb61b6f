//! Statements sent every cycle are kept prepared in the project's
//! sessions: on one session, the first run prepares, the next ones only
//! execute; a session that has the statement already (another instance's,
//! through a pooler) executes it; past the cap, texts go as they are. And
//! a prepared read follows the table when it changes under it.

mod common;

use std::time::Duration;

use common::TestDb;
use registre_actors::database::{Database, MAX_PREPARED};
use registre_actors::sql;

/// The names of the statements prepared in the pool's one session.
async fn prepared_names(db: &Database) -> Vec<String> {
    db.query_json(
        "SELECT coalesce(json_agg(name::text ORDER BY name), '[]') FROM pg_prepared_statements",
    )
    .await
    .unwrap()
}

fn one_session(test: &TestDb) -> Database {
    let timeout = Duration::from_secs(5);
    Database::with_max_size(&test.project(), timeout, timeout, 1)
}

#[test]
fn a_cycle_read_is_prepared_once_per_session_and_follows_the_table() {
    let test = TestDb::new("prep_once");
    let db = one_session(&test);
    let plain = sql::StuckRules::plain(Duration::from_secs(60));
    let (names, first, again, after_change) = actix_rt::System::new().block_on(async {
        let first = sql::stuck_candidates(&db, &plain, true).await.unwrap();
        let names = prepared_names(&db).await;
        let again = sql::stuck_candidates(&db, &plain, true).await.unwrap();
        // A job stuck now is seen by the statement planned before it.
        let inserted: i64 = db
            .query_json(
                "WITH i AS (INSERT INTO extraction_queue (status_id, worker_id, processing_started_at, document_source, document_number)
                            VALUES (2, 'w1', now() - interval '1 hour', 'acte', '1') RETURNING 1)
                 SELECT to_json(count(*)) FROM i",
            )
            .await
            .unwrap();
        assert_eq!(inserted, 1);
        let after_change = sql::stuck_candidates(&db, &plain, true).await.unwrap();
        (names, first, again, after_change)
    });
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with("registre_monitor_"), "{names:?}");
    assert!(first.is_empty() && again.is_empty());
    assert_eq!(after_change.len(), 1, "{after_change:?}");
}

/// Two instances name a text alike, each session prepares it once, and a
/// session that has it executes it again without error.
#[test]
fn a_statement_already_there_is_reused_and_a_missing_one_prepared() {
    let test = TestDb::new("prep_reuse");
    let first = one_session(&test);
    let second = one_session(&test);
    let (a, b, names) = actix_rt::System::new().block_on(async {
        let a = sql::read_workers(&first).await.unwrap();
        let b = sql::read_workers(&second).await.unwrap();
        // Twice on a session that has it: no error, the same name.
        let b2 = sql::read_workers(&second).await.unwrap();
        assert_eq!(b.rows, b2.rows);
        (a, b, prepared_names(&second).await)
    });
    assert_eq!(a.rows, b.rows);
    assert_eq!(names.len(), 1, "{names:?}");
}

/// A project prepares at most `MAX_PREPARED` texts; the others are sent as
/// they are, and answer all the same.
#[test]
fn past_the_cap_texts_are_sent_as_they_are() {
    let test = TestDb::new("prep_cap");
    let db = one_session(&test);
    let names = actix_rt::System::new().block_on(async {
        for cap in 1..=(MAX_PREPARED as u64 + 5) {
            let (probe, _) = sql::health_probe(&db, Duration::from_secs(60), (cap, 3), None)
                .await
                .unwrap();
            assert_eq!(probe.processing, 0);
        }
        prepared_names(&db).await
    });
    assert_eq!(names.len(), MAX_PREPARED, "{names:?}");
}

/// A write's lists are values: one text, prepared once, serves any list.
/// A session that has the statement already (another instance's, through
/// a pooler) gets it with the values written in place; a session that
/// lost it prepares it again.
#[test]
fn a_write_keeps_one_text_for_any_list() {
    let mut test = TestDb::new("prep_values");
    let jobs: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|w| test.job(2, Some(w), Some("1 second"), "acte:1"))
        .collect();
    let (first, other) = (one_session(&test), one_session(&test));
    let release = async |db: &Database, worker: &str| {
        let r = sql::release_jobs_of(db, &[worker.to_string()], None, true).await;
        r.unwrap().released.len()
    };
    actix_rt::System::new().block_on(async {
        assert_eq!(release(&first, "a").await, 1);
        assert_eq!(release(&first, "b").await, 1);
        let names = prepared_names(&first).await;
        assert_eq!(names.len(), 1, "one text for both lists: {names:?}");
        // The other session gets the statement behind its back.
        let request: String = first
            .query_json("SELECT to_json(statement) FROM pg_prepared_statements")
            .await
            .unwrap();
        // The request that prepared it: `SET ...; PREPARE ...; EXECUTE ...`.
        let start = request.find("PREPARE ").unwrap();
        let end = request.rfind("; EXECUTE ").unwrap();
        let prepare = &request[start..end];
        let _: i32 = other
            .query_json(&format!("{prepare}; SELECT to_json(1)"))
            .await
            .unwrap();
        assert_eq!(release(&other, "c").await, 1, "already there: inlined");
        // And the first loses it.
        let _: i32 = first
            .query_json("DEALLOCATE ALL; SELECT to_json(1)")
            .await
            .unwrap();
        assert_eq!(release(&first, "c").await, 0, "prepared again");
        assert_eq!(prepared_names(&first).await, names);
    });
    assert_eq!(
        test.statuses(&jobs.iter().map(String::as_str).collect::<Vec<_>>()),
        [1, 1, 1]
    );
}
