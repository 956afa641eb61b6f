-- Opt-in: a lease for registre-monitor's leader election, one table of the
-- monitor's own (it never alters the watched tables). With it, the
-- monitors watching this database elect the instance that speaks (anomaly
-- warnings and alerts) by one atomic statement on any connection, so the
-- election works through every pooler (Supabase's 6543, PgBouncer in
-- transaction mode on any port) and a dead leader's lease simply expires:
-- another instance takes over within two check intervals. Without it, the
-- monitors fall back to a session advisory lock, which cannot stop healing
-- but may leave two instances speaking through a pooler.
-- Create it once per watched database, then restart the monitors:
--   psql "$URL" -f sql/leader.sql
-- The monitor's role needs SELECT, INSERT and UPDATE on it.
-- See docs/operations.md#two-monitors-at-once.
CREATE TABLE IF NOT EXISTS registre_monitor_leader (
    -- One row: the lease of the whole database.
    id int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    -- The holder, as the monitor names itself (hostname:pid).
    instance text NOT NULL,
    -- Set by the database's now() + 1.5 check intervals at each renewal.
    expires_at timestamptz NOT NULL
);

COMMENT ON TABLE registre_monitor_leader IS
    'registre-monitor leader lease: the instance that speaks for this database until expires_at (sql/leader.sql)';
