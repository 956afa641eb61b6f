//! The generated queue a cycle is measured on, built once per size.

use std::time::Instant;

use postgres::Client;

use super::{SCHEMA_SQL, STALE_JOBS, WORKERS, connect, scalar, simple};

/// Creates `db` with the queue unless a finished one is there already.
pub fn prepare(admin: &mut Client, url: &str, db: &str, rows: u64, open: u64) {
    if scalar(
        admin,
        &format!("SELECT 1 FROM pg_database WHERE datname = '{db}'"),
    )
    .is_some()
    {
        let mut c = connect(url, db);
        let done = c.simple_query("SELECT done FROM rmbench_meta").is_ok();
        drop(c);
        if done {
            eprintln!("{db}: reusing the queue generated earlier");
            return;
        }
        simple(admin, &format!("DROP DATABASE {db} WITH (FORCE)"));
    }
    eprintln!("{db}: generating {rows} jobs, {open} of them open ...");
    let started = Instant::now();
    simple(admin, &format!("CREATE DATABASE {db}"));
    let mut c = connect(url, db);
    c.batch_execute(SCHEMA_SQL).expect("schema");
    let processing = (open / 10).max(STALE_JOBS + 6 + 1);
    let failed = open / 5;
    let step = (rows / open).max(1);
    // One INSERT ... SELECT. Open jobs are spread evenly through the table
    // (every `step`-th row), finished ones are 95% status 3 and 5% status 5.
    // Processing jobs that must stay fresh start a day in the future and live
    // workers' heartbeats likewise, so the data means the same however long
    // the benchmark runs; stale ones are ten minutes old.
    let insert = format!(
        "SET session_replication_role = replica;
        SET maintenance_work_mem = '256MB';
        ALTER TABLE extraction_queue DROP CONSTRAINT extraction_queue_pkey;
        INSERT INTO extraction_queue (id, status_id, worker_id, processing_started_at, error_message,
                                      document_source, document_number, attemtps, created_at, updated_at)
        SELECT gen_random_uuid(), st,
               CASE WHEN st = 2 THEN 'worker-' || w END,
               CASE WHEN st = 2 THEN CASE WHEN k < {STALE_JOBS} THEN now() - interval '10 minutes'
                                          ELSE now() + interval '1 day' END END,
               CASE WHEN st = 4 THEN 'Extraction failed: timeout' END,
               (ARRAY['acte', 'index', 'plan_cadastraux'])[1 + g % 3],
               lpad(g::text, 9, '0'),
               CASE WHEN st = 4 THEN 3 WHEN st IN (3, 5) THEN 1 ELSE 0 END,
               now() - ({rows} - g) * interval '1 second',
               now() - ({rows} - g) * interval '1 second' + interval '5 minutes'
        FROM (
            SELECT g, k,
                   CASE WHEN k IS NULL THEN CASE WHEN g % 19 = 0 THEN 5 ELSE 3 END
                        WHEN k < {processing} THEN 2
                        WHEN k < {processing} + {failed} THEN 4
                        ELSE 1 END AS st,
                   -- stale jobs: live workers 1-5; dead workers 17-19 hold
                   -- two jobs each; the rest: live workers 1-16.
                   CASE WHEN k < {STALE_JOBS} THEN 1 + k
                        WHEN k < {STALE_JOBS} + 6 THEN 17 + (k - {STALE_JOBS}) / 2
                        ELSE 1 + k % 16 END AS w
            FROM (SELECT g, CASE WHEN g % {step} = 0 AND g / {step} <= {open} THEN g / {step} - 1 END AS k
                  FROM generate_series(1, {rows}) g) a
        ) b;
        ALTER TABLE extraction_queue ADD PRIMARY KEY (id);
        INSERT INTO worker_status (worker_id, status, last_heartbeat, started_at)
        SELECT 'worker-' || i,
               CASE WHEN i = {WORKERS} THEN 'offline' ELSE 'busy' END,
               CASE WHEN i = {WORKERS} THEN now() - interval '1 day'
                    WHEN i >= 17 THEN now() - interval '10 minutes'
                    ELSE now() + interval '1 day' END,
               now() - interval '2 days'
        FROM generate_series(1, {WORKERS}) i;
        UPDATE worker_status w
        SET current_job_id = (SELECT id FROM extraction_queue q
                              WHERE q.status_id = 2 AND q.worker_id = w.worker_id LIMIT 1)
        WHERE status <> 'offline';
        RESET session_replication_role;"
    );
    c.batch_execute(&insert)
        .unwrap_or_else(|e| panic!("generating: {e:?}"));
    simple(&mut c, "VACUUM (ANALYZE) extraction_queue");
    simple(&mut c, "VACUUM (ANALYZE) worker_status");
    simple(&mut c, "CREATE TABLE rmbench_meta AS SELECT true AS done");
    let size = scalar(
        &mut c,
        "SELECT pg_size_pretty(pg_total_relation_size('extraction_queue'))",
    );
    eprintln!(
        "{db}: generated in {:.0} s, table and indexes {}",
        started.elapsed().as_secs_f64(),
        size.unwrap_or_default()
    );
}

/// Puts the queue back as generated, without its incident: jobs the
/// incident touched wait again, stale jobs and the workers who held them
/// are fresh, the incident's workers are gone; then vacuums, so every
/// window starts from the same visibility map. With `vm_unset`, 10% of the
/// open jobs are then updated (same values) and autovacuum is off for the
/// table: their pages are not all-visible, as between two vacuums of a
/// busy queue. Ends with a checkpoint.
pub fn settle(c: &mut Client, vm_unset: bool) {
    c.batch_execute(
        "DELETE FROM worker_status WHERE worker_id LIKE 'rmbench-%';
         UPDATE worker_status SET status = 'busy', last_heartbeat = now() WHERE worker_id <> 'worker-20';
         UPDATE extraction_queue SET status_id = 1, worker_id = NULL, processing_started_at = NULL,
                error_message = NULL, attemtps = 0, document_source = 'acte'
         WHERE document_source = 'rmbench';
         UPDATE extraction_queue SET processing_started_at = now() + interval '1 day'
         WHERE status_id = 2 AND processing_started_at < now() + interval '1 hour';",
    )
    .expect("settling the queue");
    simple(c, "VACUUM (ANALYZE) extraction_queue");
    simple(c, "VACUUM (ANALYZE) worker_status");
    simple(
        c,
        &format!(
            "ALTER TABLE extraction_queue SET (autovacuum_enabled = {})",
            !vm_unset
        ),
    );
    if vm_unset {
        simple(
            c,
            "UPDATE extraction_queue SET updated_at = updated_at
             WHERE status_id IN (1, 2, 4) AND random() < 0.1",
        );
    }
    // A checkpoint now, so that a timed one does not fall inside one
    // side's window and not another's: after a checkpoint, the first write
    // to each page logs the whole page.
    simple(c, "CHECKPOINT");
}
