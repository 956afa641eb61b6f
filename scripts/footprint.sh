#!/usr/bin/env bash
# Footprint of `registre-monitor run`: resident memory, CPU and connections
# while it watches N projects for a while at the default 30 s interval.
#
#   scripts/footprint.sh 3 300      # 3 projects, 5 minutes
#   scripts/footprint.sh 100 300    # 100 projects, 5 minutes
#
# Creates databases rmbench_fp_001 ... (the watched tables and a small
# queue each) on the local PostgreSQL, runs the release binary under
# /usr/bin/time -v, samples /proc/<pid>/status (VmRSS, VmHWM) and
# /proc/<pid>/stat (CPU ticks) every 10 s, counts its connections, then
# stops it with SIGTERM and drops the databases (KEEP=1 keeps them).
#
# Up to 10 projects connect directly (connections counted in
# pg_stat_activity by application_name, the election's sessions included).
# More go through a PgBouncer in
# transaction mode that this script starts on 127.0.0.1:6433 (as Supabase's
# pooler would be), capped at 10 server connections: a local server with
# max_connections = 100 cannot give 100 projects one connection each.
# Connections per project are then the monitor's client sockets.
#
# Environment: PGURL (default postgres://postgres@127.0.0.1:5432), MODE
# (direct or pgbouncer), PREFIX (database names, default rmbench_fp), KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."

projects=${1:-3}
prefix=${PREFIX:-rmbench_fp}
seconds=${2:-300}
base=${PGURL:-postgres://postgres@127.0.0.1:5432}
mode=${MODE:-$([ "$projects" -le 10 ] && echo direct || echo pgbouncer)}
work=$(mktemp -d /tmp/rmfp.XXXXXX)
chmod 755 "$work"
tick=$(getconf CLK_TCK)
export PGOPTIONS='-c client_min_messages=warning' 

log() { printf '== %s\n' "$*" >&2; }
sql() { psql "$base/postgres" -Atqc "$1"; }

log "building the release binary"
cargo build --release --quiet
bin=target/release/registre-monitor
log "binary: $(stat -c %s "$bin") bytes"

log "creating $projects databases rmbench_fp_*"
sql "DROP DATABASE IF EXISTS ${prefix}_template"
sql "CREATE DATABASE ${prefix}_template"
psql "$base/${prefix}_template" -q -f sql/schema.sql
psql "$base/${prefix}_template" -q <<'EOF'
INSERT INTO extraction_queue (status_id, document_source, document_number)
SELECT CASE WHEN g % 100 < 4 THEN 1 WHEN g % 100 = 4 THEN 4 ELSE 3 END,
       'acte', g::text
FROM generate_series(1, 1000) g;
INSERT INTO worker_status (worker_id, status, last_heartbeat)
SELECT 'worker-' || i, 'idle', now() + interval '1 day' FROM generate_series(1, 3) i;
EOF
names=()
for i in $(seq -f '%03g' 1 "$projects"); do
    names+=("${prefix}_$i")
    sql "DROP DATABASE IF EXISTS ${prefix}_$i WITH (FORCE)"
    sql "CREATE DATABASE ${prefix}_$i TEMPLATE ${prefix}_template"
done

cleanup() {
    if [ -n "${timer:-}" ]; then
        for p in $(pgrep -P "$timer"); do kill -TERM "$p" 2>/dev/null || true; done
    fi
    if [ -f "$work/pgbouncer.pid" ]; then kill -TERM "$(cat "$work/pgbouncer.pid")" 2>/dev/null || true; fi
    if [ "${KEEP:-0}" != 1 ]; then
        for n in "${names[@]}" ${prefix}_template; do
            sql "DROP DATABASE IF EXISTS $n WITH (FORCE)" || true
        done
    fi
}
trap cleanup EXIT

url_base=$base
if [ "$mode" = pgbouncer ]; then
    cat >"$work/pgbouncer.ini" <<EOF
[databases]
* = host=127.0.0.1 port=5432
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = 6433
unix_socket_dir =
auth_type = trust
auth_file = $work/userlist.txt
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 1
max_user_connections = 10
logfile = $work/pgbouncer.log
pidfile = $work/pgbouncer.pid
EOF
    echo '"postgres" ""' >"$work/userlist.txt"
    chown -R postgres "$work"
    runuser -u postgres -- pgbouncer -d "$work/pgbouncer.ini"
    sleep 1
    url_base=postgres://postgres@127.0.0.1:6433
    log "PgBouncer on 127.0.0.1:6433, at most 10 server connections"
fi

envs=()
for n in "${names[@]}"; do
    envs+=("${n^^}_SUPABASE_DB_URL=$url_base/$n")
done

log "running the monitor on $projects projects ($mode) for $seconds s"
env -i PATH="$PATH" "${envs[@]}" LOG_LEVEL=info \
    /usr/bin/time -v -o "$work/time.txt" "$bin" run >"$work/monitor.log" 2>&1 &
timer=$!
sleep 1
pid=$(pgrep -P "$timer")

cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
status() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$pid/status"; }
connections() {
    if [ "$mode" = direct ]; then
        sql "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'registre-monitor%' AND datname LIKE '${prefix}_%'"
    else
        ss -Htnp state established '( dport = :6433 )' | grep -c "pid=$pid," || true
    fi
}

warm=60
start_ticks=$(cpu_ticks)
printf '%6s %10s %10s %8s %12s\n' seconds VmRSS_kB VmHWM_kB ticks connections >&2
max_conn=0
for ((t = 10; t <= seconds; t += 10)); do
    sleep 10
    c=$(connections)
    [ "$c" -gt "$max_conn" ] && max_conn=$c
    [ "$t" -eq "$warm" ] && warm_ticks=$(cpu_ticks)
    printf '%6s %10s %10s %8s %12s\n' "$t" "$(status VmRSS)" "$(status VmHWM)" "$(cpu_ticks)" "$c" >&2
done
end_ticks=$(cpu_ticks)
rss=$(status VmRSS)
hwm=$(status VmHWM)
kill -TERM "$pid"
wait "$timer" || true
timer=

cpu_all=$(awk -v a="$start_ticks" -v b="$end_ticks" -v t="$tick" -v s="$seconds" 'BEGIN {printf "%.3f", 100 * (b - a) / t / s}')
cpu_idle=n/a
if [ -n "${warm_ticks:-}" ] && [ "$seconds" -gt "$warm" ]; then
    cpu_idle=$(awk -v a="$warm_ticks" -v b="$end_ticks" -v t="$tick" -v s="$((seconds - warm))" 'BEGIN {printf "%.3f", 100 * (b - a) / t / s}')
fi
errors=$(grep -c ' ERROR ' "$work/monitor.log" || true)

echo "projects:                 $projects ($mode)"
echo "duration:                 $seconds s at the default 30 s interval"
echo "VmRSS at the end:         $rss kB"
echo "VmHWM (peak RSS):         $hwm kB"
echo "max RSS (time -v):        $(awk -F': ' '/Maximum resident/ {print $2}' "$work/time.txt") kB"
echo "CPU, whole run:           $cpu_all % of one core"
echo "CPU, after the first ${warm} s: $cpu_idle % of one core"
echo "connections, max seen:    $max_conn ($(awk -v c="$max_conn" -v p="$projects" 'BEGIN {printf "%.2f", c / p}') per project)"
echo "ERROR lines in the log:   $errors (log: $work/monitor.log)"
