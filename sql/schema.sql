-- The tables registre-monitor watches, as the extraction system has them in
-- production (column names included: `attemtps` is spelled that way there).
-- For local use, tests and the demo; the monitor itself never creates or
-- alters a table. Safe to apply twice.

CREATE TABLE IF NOT EXISTS extraction_status (
    id   integer PRIMARY KEY,
    name text    NOT NULL
);

INSERT INTO extraction_status (id, name) VALUES
    (1, 'En attente'),
    (2, 'En traitement'),
    (3, 'Complété'),
    (4, 'Erreur'),
    (5, 'Extraction Complété'),
    (6, 'OCR en traitement')
ON CONFLICT (id) DO NOTHING;

CREATE TABLE IF NOT EXISTS extraction_queue (
    id                    uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    status_id             integer     NOT NULL DEFAULT 1 REFERENCES extraction_status (id),
    worker_id             text,
    processing_started_at timestamptz,
    error_message         text,
    document_source       text        NOT NULL,  -- 'acte', 'index' or 'plan_cadastraux'
    document_number       text        NOT NULL,
    attemtps              integer     NOT NULL DEFAULT 0,
    max_attempts          integer              DEFAULT 3,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    -- OCR stage; older databases lack these columns.
    ocr_worker_id         text,
    ocr_started_at        timestamptz,
    ocr_attempts          integer              DEFAULT 0,
    ocr_max_attempts      integer              DEFAULT 3,
    ocr_error             text
);

CREATE TABLE IF NOT EXISTS worker_status (
    worker_id      text        NOT NULL UNIQUE,
    status         text        NOT NULL DEFAULT 'idle',  -- idle, busy, error, offline
    current_job_id uuid,
    last_heartbeat timestamptz NOT NULL DEFAULT now(),
    started_at     timestamptz NOT NULL DEFAULT now(),
    jobs_completed integer     NOT NULL DEFAULT 0,
    jobs_failed    integer     NOT NULL DEFAULT 0
);
