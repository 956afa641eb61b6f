-- One round of a simulated worker fleet, for the demo profile (run every
-- few seconds). Workers behave as the real ones do: heartbeat, claim a job
-- with a conditional update, finish it as done (3) or failed (4). Now and
-- then one crashes holding a job (the monitor's WorkerReaper frees it), or
-- a job hangs in processing (its StuckJobResetter puts it back).

-- New documents arrive: 0 to 2 a round.
INSERT INTO extraction_queue (document_source, document_number)
SELECT (ARRAY['acte', 'index', 'plan_cadastraux'])[1 + floor(random() * 3)::int],
       (100000 + floor(random() * 900000)::int)::text
FROM generate_series(1, floor(random() * 3)::int);

-- The live workers heartbeat (demo-slow too: alive, but its job hangs).
INSERT INTO worker_status (worker_id, status)
SELECT w, 'idle' FROM unnest(ARRAY['demo-worker-1', 'demo-worker-2', 'demo-worker-3', 'demo-slow']) AS w
ON CONFLICT (worker_id) DO UPDATE
    SET last_heartbeat = now(),
        status = CASE WHEN worker_status.status = 'offline' THEN 'idle' ELSE worker_status.status END;

-- Jobs held for more than 8 s are finished; one in five fails.
WITH done AS (
    UPDATE extraction_queue
    SET status_id = CASE WHEN random() < 0.2 THEN 4 ELSE 3 END, updated_at = now()
    WHERE status_id = 2 AND worker_id LIKE 'demo-worker-_'
      AND processing_started_at < now() - interval '8 seconds'
    RETURNING worker_id, status_id)
UPDATE worker_status w
SET status = 'idle', current_job_id = NULL,
    jobs_completed = jobs_completed + (SELECT count(*) FROM done d WHERE d.worker_id = w.worker_id AND d.status_id = 3),
    jobs_failed = jobs_failed + (SELECT count(*) FROM done d WHERE d.worker_id = w.worker_id AND d.status_id = 4)
WHERE w.worker_id IN (SELECT worker_id FROM done);

-- Each idle worker claims the oldest waiting job (if still waiting).
WITH idle AS (
    SELECT worker_id, row_number() OVER (ORDER BY worker_id) AS n
    FROM worker_status
    WHERE worker_id LIKE 'demo-worker-_'
      AND NOT EXISTS (SELECT 1 FROM extraction_queue q WHERE q.status_id = 2 AND q.worker_id = worker_status.worker_id)),
waiting AS (
    SELECT id, row_number() OVER (ORDER BY created_at) AS n
    FROM extraction_queue WHERE status_id = 1 ORDER BY created_at LIMIT 3),
claimed AS (
    UPDATE extraction_queue q
    SET status_id = 2, worker_id = idle.worker_id, processing_started_at = now(),
        updated_at = now(), attemtps = attemtps + 1
    FROM idle JOIN waiting USING (n)
    WHERE q.id = waiting.id AND q.status_id = 1
    RETURNING q.worker_id, q.id)
UPDATE worker_status w SET status = 'busy', current_job_id = claimed.id
FROM claimed WHERE w.worker_id = claimed.worker_id;

-- About one round in twelve a worker crashes holding a job: it never
-- heartbeats again. Its name carries the microsecond, so two crashes in
-- the same second (rounds run back to back) are two workers.
WITH crash AS (
    INSERT INTO worker_status (worker_id, status)
    SELECT 'demo-crashed-' || to_char(clock_timestamp(), 'HH24MISS-US'), 'busy'
    WHERE random() < 0.08
    ON CONFLICT (worker_id) DO NOTHING
    RETURNING worker_id)
INSERT INTO extraction_queue (status_id, worker_id, processing_started_at, document_source, document_number)
SELECT 2, worker_id, now(), 'acte', 'crashed-with-' || worker_id FROM crash;

-- About one round in twelve a job hangs: its (live) worker never finishes it.
INSERT INTO extraction_queue (status_id, worker_id, processing_started_at, document_source, document_number)
SELECT 2, 'demo-slow', now(), 'index', 'hung-' || to_char(clock_timestamp(), 'HH24MISS')
WHERE random() < 0.08;
