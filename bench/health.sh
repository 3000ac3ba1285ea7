#!/usr/bin/env bash
# Benchmark: `tuneton-ops health` wall time with every check on and green (service,
# HTTP endpoint, database connect + query, three disk paths, memory, load),
# against the old daily health shell script made runnable against the same app
# stub and PostgreSQL (its `systemctl is-active tuneton-app` becomes a PID check,
# since the stub is not a systemd unit; pg_isready, df and free as they were).
# Median of BENCH_RUNS (default 20) runs each, interleaved, in one run.
#
#   bench/health.sh                             # release build (built if stale)
#   BENCH_BIN=target/debug/tuneton-ops bench/health.sh
#   BENCH_OUT=/tmp/r.md bench/health.sh         # default: appends to bench/RESULTS.md
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${BENCH_BIN:-$ROOT/target/release/tuneton-ops}
OUT=${BENCH_OUT:-$ROOT/bench/RESULTS.md}
RUNS=${BENCH_RUNS:-20}
PGBIN=/usr/lib/postgresql/15/bin
if [ -z "${BENCH_BIN:-}" ] && { [ ! -x "$BIN" ] || [ -n "$(find src Cargo.toml Cargo.lock -newer "$BIN" -print -quit 2>/dev/null)" ]; }; then
  cargo build --release --quiet
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

W=$(mktemp -d /tmp/tnhb.XXXX)
STUB=""
cleanup() {
  [ -n "$STUB" ] && { kill "$STUB" 2>/dev/null || true; wait "$STUB" 2>/dev/null || true; }
  [ -d "$W/pg/data" ] && as_pg "$PGBIN/pg_ctl" -D "$W/pg/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT
chmod 755 "$W"
mkdir -p "$W/pg" "$W/app"
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown postgres "$W/pg"
PGPORT=$(free_port); APPPORT=$(free_port)
as_pg "$PGBIN/initdb" -D "$W/pg/data" -U postgres --auth-local=trust --auth-host=trust -N >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$W/pg/data" -l "$W/pg/log" -w -o "-p $PGPORT -k $W/pg -c listen_addresses=127.0.0.1" start >/dev/null
APP_STUB_DIR=$W/app APP_STUB_PORT=$APPPORT python3 tests/support/app_stub.py >/dev/null 2>&1 &
STUB=$!
for _ in $(seq 100); do [ -s "$W/app/app.pid" ] && (exec 3<>/dev/tcp/127.0.0.1/$APPPORT) 2>/dev/null && break; sleep 0.05; done

cat > "$W/ops.toml" <<TOML
[paths]
log_dir = "$W/log"
run_dir = "$W/run"
[database]
host = "127.0.0.1"
port = $PGPORT
name = "postgres"
[app]
start_command = "true"
stop_command = "true"
pid_file = "$W/app/app.pid"
health_url = "http://127.0.0.1:$APPPORT/health"
health_json_field = "version"
[health.disk]
paths = ["/", "/tmp", "$W"]
warn = "100%"
crit = "100%"
[health.memory]
warn = "100%"
crit = "100%"
[health.load]
warn = 1000.0
crit = 1000.0
TOML
"$BIN" --config "$W/ops.toml" health >/dev/null || { echo "bench: health is not all green:" >&2; "$BIN" --config "$W/ops.toml" health >&2; exit 2; }

# The old script (maintenance procedures, daily health check), same checks, same targets.
cat > "$W/old-health.sh" <<SH
#!/bin/bash
LOG_FILE=$W/daily_health_check.log
DATE=\$(date '+%Y-%m-%d %H:%M:%S')
echo "[\$DATE] Starting daily health check" >> \$LOG_FILE
if kill -0 "\$(cat $W/app/app.pid)" 2>/dev/null; then
    echo "[\$DATE] Application is running" >> \$LOG_FILE
else
    echo "[\$DATE] ERROR: Application is not running" >> \$LOG_FILE
fi
if pg_isready -h 127.0.0.1 -p $PGPORT -U postgres >/dev/null; then
    echo "[\$DATE] Database is accessible" >> \$LOG_FILE
else
    echo "[\$DATE] ERROR: Database is not accessible" >> \$LOG_FILE
fi
DISK_USAGE=\$(df / | tail -1 | awk '{print \$5}' | sed 's/%//')
if [ \$DISK_USAGE -gt 80 ]; then echo "[\$DATE] WARNING: Disk usage is \${DISK_USAGE}%" >> \$LOG_FILE; fi
MEMORY_USAGE=\$(free | grep Mem | awk '{printf("%.0f", \$3/\$2 * 100.0)}')
if [ \$MEMORY_USAGE -gt 80 ]; then echo "[\$DATE] WARNING: Memory usage is \${MEMORY_USAGE}%" >> \$LOG_FILE; fi
echo "[\$DATE] Daily health check completed" >> \$LOG_FILE
SH
chmod +x "$W/old-health.sh"

ms() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1 || true; e=$(date +%s%N); echo $(( (e - s) / 1000 )); }
new=(); old=()
for _ in $(seq "$RUNS"); do
  new+=("$(ms "$BIN" --config "$W/ops.toml" health)")
  old+=("$(ms "$W/old-health.sh")")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.1f", m / 1000}'; }
NEW=$(median "${new[@]}"); OLD=$(median "${old[@]}")
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
REPORT=$(cat <<MD

## health ($(date -u +%Y-%m-%d), $(nproc) cores, load $LOAD)

Command: \`${BENCH_BIN:+BENCH_BIN=$BENCH_BIN }BENCH_RUNS=$RUNS bench/health.sh\` ($(basename "$(dirname "$BIN")") build)

| what | median of $RUNS runs |
|---|---|
| \`tuneton-ops health\` (8 checks: service, HTTP + JSON field, database connect + query, 3 disk paths, memory, load; parallel) | $NEW ms |
| old daily health script (PID check, pg_isready, df, free) | $OLD ms |
MD
)
echo "$REPORT"
echo "$REPORT" >> "$OUT"
