-- Indexes the monitor's statements want on a large extraction_queue.
-- Production tables hold millions of finished jobs; with these, each check
-- reads only the jobs that matter (waiting, processing, failed), whatever
-- the size of the table. Run them one by one (CONCURRENTLY cannot run in a
-- transaction block): psql "$URL" -f sql/indexes.sql
-- `registre-monitor diagnose` lists the ones a database lacks.

-- Used by StuckJobResetter (every processing job, by start time) and by
-- WorkerReaper (the processing jobs of given workers).
CREATE INDEX CONCURRENTLY IF NOT EXISTS extraction_queue_processing_idx
    ON extraction_queue (worker_id, processing_started_at)
    WHERE status_id = 2;

-- Used by HealthReporter: counting waiting, processing and failed jobs is
-- an index-only scan of this small index instead of a scan of the table.
CREATE INDEX CONCURRENTLY IF NOT EXISTS extraction_queue_open_status_idx
    ON extraction_queue (status_id)
    WHERE status_id IN (1, 2, 4);
