#!/usr/bin/env bash
# Checks the systemd steps of docs/deployment.md without systemd as PID 1:
#
# 1. starts a scratch Postgres with TLS (a certificate signed by a scratch
#    CA) holding the watched tables and one stuck job;
# 2. runs the bash block of the "## systemd" section as root, in a private
#    mount namespace where /etc and /usr/local/bin are scratch copies (the
#    host's are untouched): `sudo ` dropped, `sudoedit FILE` replaced by
#    setting PROD_SUPABASE_DB_URL in FILE (sslmode=verify-full and
#    sslrootcert=/etc/registre-monitor/prod-ca-2021.crt), the CA file taken
#    from step 1, systemctl and journalctl skipped;
# 3. starts the unit's ExecStart as the unit would: the EnvironmentFile read
#    by root (this script), Environment=LOG_FORMAT=text, working directory /,
#    an unprivileged uid and gid (65534) with no supplementary groups and no
#    new privileges; first `check`, then `run` for a few seconds.
#
# It passes when `check` says ok, `run` resets the stuck job, and the process
# ran as uid 65534. Needs root, PostgreSQL's server binaries, openssl,
# unshare and setpriv. Usage: scripts/check-systemd-steps.sh [PORT]
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
port=${1:-5499}
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
work=$(mktemp -d /tmp/rm-systemd-check.XXXXXX)
chmod 0755 "$work"
cleanup() {
    su postgres -c "$pgbin/pg_ctl -D $work/data -m immediate stop" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "== scratch Postgres with TLS on 127.0.0.1:$port"
(
    cd "$work"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=scratch CA" \
        -keyout ca.key -out prod-ca-2021.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
        -keyout server.key -out server.csr 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >ext.cnf
    openssl x509 -req -in server.csr -CA prod-ca-2021.crt -CAkey ca.key -CAcreateserial \
        -days 2 -extfile ext.cnf -out server.crt 2>/dev/null
    mkdir data sock
    chown postgres server.key server.crt data sock
    chmod 0600 server.key
    su postgres -c "$pgbin/initdb -D $work/data -A trust -U postgres" >/dev/null
    cat >>data/postgresql.conf <<EOF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$work/sock'
ssl = on
ssl_cert_file = '$work/server.crt'
ssl_key_file = '$work/server.key'
EOF
    su postgres -c "$pgbin/pg_ctl -D $work/data -l $work/sock/log -w start" >/dev/null
)
admin="postgres://postgres@127.0.0.1:$port/postgres"
psql "$admin" -qc 'create database registre'
psql "postgres://postgres@127.0.0.1:$port/registre" -q -v ON_ERROR_STOP=1 -f sql/schema.sql
psql "postgres://postgres@127.0.0.1:$port/registre" -qc \
    "insert into extraction_queue (status_id, worker_id, processing_started_at, document_source, document_number)
     values (2, 'worker-hung', now() - interval '10 minutes', 'index', '2002')"

echo "== the steps, as docs/deployment.md gives them"
awk '
    $0 == "## systemd" { in_section = 1; next }
    in_section && /^## / { exit }
    in_section && /^```bash/ { in_code = 1; next }
    in_section && in_code && /^```/ { exit }
    in_code { print }' docs/deployment.md >"$work/block.sh"
cat "$work/block.sh"
url="postgresql://postgres@127.0.0.1:$port/registre?sslmode=verify-full&sslrootcert=/etc/registre-monitor/prod-ca-2021.crt"
{
    # sudoedit FILE: set the project's URL in FILE, in place (same inode, same mode).
    echo 'set_url() { awk -v url="$URL" '"'"'/^PROD_SUPABASE_DB_URL=/ { print "PROD_SUPABASE_DB_URL=" url; next } { print }'"'"' "$1" >"$1.new" && cat "$1.new" >"$1" && rm "$1.new"; }'
    sed -e 's/^sudo //' \
        -e 's/^sudoedit \([^ ]*\).*/set_url \1/' \
        -e "s|^install -m 0644 prod-ca-2021.crt |install -m 0644 $work/prod-ca-2021.crt |" \
        -e 's/^\(systemctl\|journalctl\)/: skipped: &/' \
        "$work/block.sh"
} >"$work/steps.sh"

# Started by the unit: runs inside the mount namespace.
cat >"$work/as-unit.sh" <<'EOF'
set -euo pipefail
command=$1 seconds=$2
unit=/etc/systemd/system/registre-monitor.service
envfile=$(sed -n 's/^EnvironmentFile=//p' "$unit")
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
mapfile -t vars < <(grep -v '^[[:space:]]*#' "$envfile" | grep -v '^[[:space:]]*$')
extra=()
if ss -Hltn 'sport = :9464' | grep -q .; then extra=(MONITOR_HTTP_ADDR=127.0.0.1:0); fi
cd /
env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    "${vars[@]}" LOG_FORMAT=text "${extra[@]}" \
    timeout -s TERM "$seconds" \
    setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \
    ${exec_start% run} "$command"
EOF

scratch="$work/root"
mkdir -p "$scratch/usr-local-bin"
cp -a /etc "$scratch/etc"
cp -a /usr/local/bin/. "$scratch/usr-local-bin/"
chmod 0755 "$scratch/usr-local-bin"
export URL=$url
unshare --mount --propagation private bash -euo pipefail -c "
    mount --bind '$scratch/etc' /etc
    mount --bind '$scratch/usr-local-bin' /usr/local/bin
    cd '$repo'
    bash -euxo pipefail '$work/steps.sh'
    stat -c '%A %U %n' /etc/registre-monitor /etc/registre-monitor/*
    echo '== check, as the unit would start it'
    bash '$work/as-unit.sh' check 10
    echo '== run for 6 s, as the unit would start it'
    ( sleep 3; ps -o user=,uid=,gid=,supgid=,args= -C registre-monitor ) >'$work/ps' &
    bash '$work/as-unit.sh' run 6 2>&1 | tee '$work/run.log' || true
    wait
"
echo "== the process, while it ran: $(cat "$work/ps")"
grep -q 'Auto-reset stuck jobs' "$work/run.log" || { echo "FAILED: no stuck job was reset"; exit 1; }
grep -q '^nobody *65534 *65534 *- ' "$work/ps" || { echo "FAILED: not uid 65534 without groups"; exit 1; }
echo "systemd steps: ok (check passed, the stuck job was reset, as uid 65534)"
