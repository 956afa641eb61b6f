-- Indexes the monitor's statements want on a large extraction_queue.
-- Production tables hold millions of finished jobs; with these, each check
-- reads only the jobs that matter (waiting, processing, failed), whatever
-- the size of the table. Run them one by one (CONCURRENTLY cannot run in a
-- transaction block): psql "$URL" -f sql/indexes.sql
-- Then `ANALYZE extraction_queue` (or wait for autovacuum): the planner
-- needs the statistics of the expression index to pick it.
-- `registre-monitor diagnose` lists the ones a database lacks.
-- Measured by `cargo bench -p registre-actors --bench cycle` (docs/performance.md).



-- Used by WorkerReaper: the processing jobs of the workers just found dead
-- (an index condition on worker_id), nothing read when nobody died.
CREATE INDEX CONCURRENTLY IF NOT EXISTS extraction_queue_processing_idx
    ON extraction_queue (worker_id, processing_started_at)
    WHERE status_id = 2;

-- Used by HealthReporter: counting waiting, processing and failed jobs is
-- three ranges of this small index instead of a scan of the table, and
-- between exact counts its probes (does a job wait? more failed jobs than
-- the threshold? more processing than the workers can hold?) read only a
-- few entries. Without it the health check counts in one pass every run.
CREATE INDEX CONCURRENTLY IF NOT EXISTS extraction_queue_open_status_idx
    ON extraction_queue (status_id)
    WHERE status_id IN (1, 2, 4);

-- Used by StuckJobResetter: the stuck jobs are a range of this index (the
-- statement's own expression), so it reads only them, not every
-- processing job; its read-only look for stuck jobs, every run, is one
-- index scan that usually finds nothing.
CREATE INDEX CONCURRENTLY IF NOT EXISTS extraction_queue_stuck_idx
    ON extraction_queue ((coalesce(processing_started_at, updated_at)))
    WHERE status_id = 2;

-- Used by StuckJobResetter's OCR rule: stuck OCR jobs (status 6) are a
-- range of this index, read in the same scan as the stuck jobs above.
-- Only where the OCR columns exist (the rule is off elsewhere).
CREATE INDEX CONCURRENTLY IF NOT EXISTS extraction_queue_ocr_stuck_idx
    ON extraction_queue ((coalesce(ocr_started_at, updated_at)))
    WHERE status_id = 6;
