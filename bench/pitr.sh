#!/usr/bin/env bash
# Benchmark: physical base backup and point-in-time recovery of a ~400 MB
# database, tuneton-ops (`backup --kind base`, `pitr --target-time`) against
# pgBackRest (`backup --type=full`, `restore --type=time`), in one run.
#
#   bench/pitr.sh                        # ~400 MB database, one run per measurement
#   BENCH_REPEAT=3 bench/pitr.sh         # median of 3 (each repeat takes a new base backup and recovers again)
#   BENCH_SIZE=100 bench/pitr.sh         # smaller database (MB, roughly)
#   BENCH_WAL_ROWS=400000 bench/pitr.sh  # rows inserted after the base backup (WAL to replay; default 300000)
#   BENCH_OUT=/tmp/r.md bench/pitr.sh    # put the section in another file (default bench/RESULTS.md)
#   BENCH_KEEP=1 bench/pitr.sh           # keep the work directory (logs, repositories) for debugging
#
# Two throwaway clusters with identical contents: one database is generated
# (bench/gen.sql), the cluster is stopped and its data directory copied. Cluster
# A archives WAL with `tuneton-ops wal-push %p`, cluster B with `pgbackrest
# archive-push %p`. Both repositories are on the same local disk, both use zstd
# level 3, and both encrypt: ours with gpg (AES256, always), pgBackRest with
# repo1-cipher-type=aes-256-cbc. After the base backups, both clusters get the
# same write load and then marker rows in separate transactions; the target time
# T lies between marker 3 and marker 4. Each recovery must give exactly the row
# counts read just before T (markers 1..3, none after).
#
# Runs as root; PostgreSQL and pgBackRest run as postgres via runuser. Installs
# pgbackrest with apt-get if it is missing. Everything lives in one temp
# directory, removed on exit with both clusters stopped. Measurements never overlap.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. "$ROOT/bench/lib.sh"
REPEAT=${BENCH_REPEAT:-1}
SIZE=${BENCH_SIZE:-400}
WAL_ROWS=${BENCH_WAL_ROWS:-300000}
OUT=${BENCH_OUT:-$ROOT/bench/RESULTS.md}
MB_PER_UNIT=${BENCH_MB_PER_UNIT:-0.91}
RECOVERY_TIMEOUT=${BENCH_RECOVERY_TIMEOUT:-1800}

[ "$(id -u)" -eq 0 ] || { echo "bench: run as root" >&2; exit 3; }
if ! command -v pgbackrest >/dev/null; then
  echo "== installing pgbackrest" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbackrest >/dev/null
fi
for t in /usr/bin/time psql python3 runuser setpriv "$PGBIN/initdb" "$PGBIN/pg_ctl" pgbackrest; do
  command -v "$t" >/dev/null || { echo "bench: missing $t" >&2; exit 3; }
done
bench_build
LOAD_START=$(load_now)

W=$(mktemp -d /tmp/tnp.XXXX)   # short: socket dirs live inside it
chmod 755 "$W"
H=127.0.0.1
PA=$(free_port); PB=$(free_port)
while [ "$PB" = "$PA" ]; do PB=$(free_port); done
as_pg() { runuser -u postgres -- "$@"; }
# For measured pgBackRest commands: setpriv execs in place (runuser forks), so the measured
# process is pgbackrest itself and its own peak RSS is reported, not runuser's.
AS_PG_EXEC=(setpriv --reuid=postgres --regid=postgres --init-groups --reset-env)
log() { echo "== $*" >&2; }
cleanup() {
  for c in a b; do as_pg "$PGBIN/pg_ctl" -D "$W/$c/data" -m immediate stop >/dev/null 2>&1 || true; done
  if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "== kept $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT
: > "$W/failures.md"
bench_rss_sampler "$W"

# The archiver runs as postgres: it needs the binary, config, passphrase and repository.
cp "$BIN" "$W/tuneton-ops"
TN="$W/tuneton-ops"
mkdir -p "$W/a" "$W/b" "$W/tn/log" "$W/tn/run" "$W/tn/repo/wal" "$W/tn/app" "$W/tn/etc" \
  "$W/pgbr/repo" "$W/pgbr/log" "$W/pgbr/lock" "$W/pgbr/spool"
head -c 32 /dev/urandom | base64 > "$W/tn/passphrase"
chmod 600 "$W/tn/passphrase"

OPTS_COMMON="-c listen_addresses=$H -c fsync=off -c shared_buffers=256MB -c max_wal_size=4GB -c wal_level=replica"
opts() { echo "-p $2 -k $W/$1 $OPTS_COMMON"; }
pg_start() { as_pg "$PGBIN/pg_ctl" -D "$W/$1/data" -l "$W/$1/log" -w -t 600 -o "$(opts "$1" "$2")" start >/dev/null; }
pg_stop() { as_pg "$PGBIN/pg_ctl" -D "$W/$1/data" -m fast -w -t 600 stop >/dev/null; }
sqlp() { local port=$1; shift; psql -X -q -v ON_ERROR_STOP=1 -h "$H" -p "$port" -U postgres "$@"; }

log "generating the database (~$SIZE MB) in cluster A"
chown postgres "$W/a" "$W/b"; chmod 700 "$W/a" "$W/b"
as_pg "$PGBIN/initdb" -D "$W/a/data" -U postgres --auth-local=trust --auth-host=trust \
  -E UTF8 --locale=C.UTF-8 -N >/dev/null
pg_start a "$PA"
sqlp "$PA" -c "CREATE DATABASE tuneton"
scale=$(python3 -c "print(max(1, round($SIZE / $MB_PER_UNIT)))")
t0=$(date +%s.%N)
sqlp "$PA" -d tuneton -v scale="$scale" -f "$ROOT/bench/gen.sql"
GEN_S=$(python3 -c "print(round($(date +%s.%N) - $t0, 1))")
sqlp "$PA" -d tuneton -c "CREATE TABLE marks (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())" -c CHECKPOINT
DBSIZE=$(sqlp "$PA" -At -c "SELECT pg_database_size('tuneton')")
# What a base backup has to copy: the data directory without pg_wal (max_wal_size keeps old segments).
CLUSTER_SIZE=$(( $(du -sb "$W/a/data" | cut -f1) - $(du -sb "$W/a/data/pg_wal" | cut -f1) ))
pg_stop a
cp -a "$W/a/data" "$W/b/data"

# Cluster A: tuneton-ops.
cat > "$W/tn/ops.toml" <<TOML
[paths]
log_dir = "$W/tn/log"
run_dir = "$W/tn/run"
app_dir = "$W/tn/app"
config_dir = "$W/tn/etc"
scratch_dir = "$W/tn"

[database]
host = "$H"
port = $PA
user = "postgres"
name = "tuneton"

[repository]
path = "$W/tn/repo"
compression_level = 3   # as pgBackRest below

[retention]
enabled = false

[encryption]
mode = "symmetric"
passphrase_file = "$W/tn/passphrase"

[postgres]
data_dir = "$W/a/data"
start_command = "runuser -u postgres -- $PGBIN/pg_ctl -D $W/a/data -l $W/a/log -w -t 600 -o '$(opts a "$PA")' start"
stop_command = "if runuser -u postgres -- $PGBIN/pg_ctl -D $W/a/data status >/dev/null; then runuser -u postgres -- $PGBIN/pg_ctl -D $W/a/data -m fast -w -t 600 stop; fi"
start_timeout_secs = 600
recovery_timeout_secs = $RECOVERY_TIMEOUT
TOML
cat >> "$W/a/data/postgresql.auto.conf" <<CONF
archive_mode = on
archive_command = '$TN --config $W/tn/ops.toml --quiet wal-push %p'
CONF

# Cluster B: pgBackRest (posix repository, zstd level 3, aes-256-cbc).
PGBR_CONF="$W/pgbr/pgbackrest.conf"
cat > "$PGBR_CONF" <<CONF
[global]
repo1-path=$W/pgbr/repo
repo1-retention-full=100
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass=$(head -c 32 /dev/urandom | base64)
compress-type=zst
compress-level=3
start-fast=y
log-path=$W/pgbr/log
lock-path=$W/pgbr/lock
spool-path=$W/pgbr/spool
log-level-console=warn
log-level-file=info

[bench]
pg1-path=$W/b/data
pg1-port=$PB
pg1-socket-path=$W/b
CONF
chmod 640 "$PGBR_CONF"
pgbr() { as_pg pgbackrest --config="$PGBR_CONF" --stanza=bench "$@"; }
cat >> "$W/b/data/postgresql.auto.conf" <<CONF
archive_mode = on
archive_command = 'pgbackrest --config=$PGBR_CONF --stanza=bench archive-push %p'
CONF
chown -R postgres:postgres "$W/tn" "$W/pgbr" "$W/a" "$W/b"

pg_start a "$PA"
pg_start b "$PB"
pgbr stanza-create >/dev/null
pgbr check >/dev/null

# Waits until cluster on PORT has archived the segment that holds the current LSN.
switch_and_wait() {
  local port=$1 seg last deadline=$((SECONDS + 600))
  seg=$(sqlp "$port" -At -c "SELECT pg_walfile_name(pg_switch_wal())")
  while :; do
    last=$(sqlp "$port" -At -c "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
    [[ "$last" < "$seg" ]] || return 0
    [ $SECONDS -lt $deadline ] || { echo "bench: $seg not archived on port $port (last: $last)" >&2; exit 2; }
    sleep 0.1
  done
}
count_rows() { sqlp "$1" -d tuneton -At -c "SELECT (SELECT count(*) FROM users)||'/'||(SELECT count(*) FROM tracks)||'/'||(SELECT count(*) FROM sessions)||'/'||(SELECT count(*) FROM events)||'/'||(SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM marks)"; }

declare -A R
record() { # op
  R[$1,wall]="${R[$1,wall]:-} $M_WALL"; R[$1,rss]="${R[$1,rss]:-} $M_RSS"
  R[$1,hwm]="${R[$1,hwm]:-} $M_HWM"; R[$1,tree]="${R[$1,tree]:-} $M_TREE"
  [ "$M_RC" -eq 0 ] || R[$1,failed]=1
}
add_wall() { R[$1,wall]="${R[$1,wall]:-} $2"; }

# Each repeat is a whole cycle on the current timeline: base backups, write load, markers,
# target T_i, both recoveries. (Recovering twice to the same target does not work: after the
# first promotion, recovery follows the new timeline, which has no commit after the target.)
wait_promoted() { # port
  local deadline=$((SECONDS + RECOVERY_TIMEOUT))
  until [ "$(sqlp "$1" -At -c "SELECT pg_is_in_recovery()" 2>/dev/null)" = f ]; do
    [ $SECONDS -lt $deadline ] || { echo "recovery did not finish within ${RECOVERY_TIMEOUT}s" >&2; return 2; }
    sleep 0.1
  done
}
export -f wait_promoted sqlp
export H RECOVERY_TIMEOUT
LOAD_SQL="INSERT INTO events (session_id, kind, at, payload)
  SELECT gen_random_uuid(), 'load', now() - random() * interval '30 days',
         jsonb_build_object('pos', (random() * 600000)::int, 'v', random(), 'note', md5(random()::text))
  FROM generate_series(1, $WAL_ROWS)"
TARGETS=()
for ((i = 1; i <= REPEAT; i++)); do
  R[load_backup]="${R[load_backup]:-}${R[load_backup]:+; }$(load_now)"
  measure "tuneton-ops backup --kind base ($i/$REPEAT)" "$W/base.json" \
    "$TN" --config "$W/tn/ops.toml" --json --no-progress backup --kind base
  record tnbase
  measure "pgbackrest backup --type=full ($i/$REPEAT)" /dev/null \
    "${AS_PG_EXEC[@]}" pgbackrest --config="$PGBR_CONF" --stanza=bench --type=full backup
  record brbase

  WAL0_A=$(sqlp "$PA" -At -c "SELECT pg_current_wal_lsn()")
  WAL0_B=$(sqlp "$PB" -At -c "SELECT pg_current_wal_lsn()")
  log "write load after the base backups: $WAL_ROWS rows in each cluster"
  for p in "$PA" "$PB"; do sqlp "$p" -d tuneton -c "$LOAD_SQL"; done
  for m in 1 2 3; do
    for p in "$PA" "$PB"; do sqlp "$p" -d tuneton -c "INSERT INTO marks (id) VALUES ($((i * 10 + m)))"; done
    sleep 0.3
  done
  EXPECT_A=$(count_rows "$PA"); EXPECT_B=$(count_rows "$PB")
  T=$(sqlp "$PA" -At -c "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
  TARGETS+=("$T")
  sleep 0.3
  for m in 4 5; do
    for p in "$PA" "$PB"; do sqlp "$p" -d tuneton -c "INSERT INTO marks (id) VALUES ($((i * 10 + m)))"; done
  done
  R[wal_a]="${R[wal_a]:-} $(sqlp "$PA" -At -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$WAL0_A')::bigint")"
  R[wal_b]="${R[wal_b]:-} $(sqlp "$PB" -At -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$WAL0_B')::bigint")"
  switch_and_wait "$PA"; switch_and_wait "$PB"
  log "target time $T; expected rows A $EXPECT_A, B $EXPECT_B"
  R[expect_a]="${R[expect_a]:-} $EXPECT_A"; R[expect_b]="${R[expect_b]:-} $EXPECT_B"

  R[load_pitr]="${R[load_pitr]:-}${R[load_pitr]:+; }$(load_now)"
  measure "tuneton-ops pitr --target-time $T ($i/$REPEAT)" "$W/pitr.json" \
    "$TN" --config "$W/tn/ops.toml" --json --no-progress --yes pitr --target-time "$T"
  record tnpitr
  if [ "$M_RC" -eq 0 ]; then
    got=$(count_rows "$PA"); R[tnrows]="${R[tnrows]:-} $got"
    [ "$got" = "$EXPECT_A" ] || R[tnrows_bad]=1
    rm -rf "$W"/a/data.pre-recovery-*
  else
    R[tnrows_bad]=1
    sed 's/^/   | /' "$W/a/log" | tail -n 20 >&2
    break
  fi

  # pgBackRest: stop, move the data directory aside (as pitr does), restore, start, wait for promotion.
  measure "pgBackRest: pg_ctl stop ($i/$REPEAT)" /dev/null \
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$W/b/data" -m fast -w -t 600 stop
  br_stop=$M_WALL
  rm -rf "$W/b/data.aside"; mv "$W/b/data" "$W/b/data.aside"
  install -d -o postgres -g postgres -m 700 "$W/b/data"
  measure "pgbackrest restore --type=time --target=$T ($i/$REPEAT)" /dev/null \
    "${AS_PG_EXEC[@]}" pgbackrest --config="$PGBR_CONF" --stanza=bench --type=time "--target=$T" \
    --target-action=promote restore
  record brrestore
  br_restore=$M_WALL
  measure "pgBackRest: start and replay to the target, promoted ($i/$REPEAT)" /dev/null \
    bash -c "runuser -u postgres -- $PGBIN/pg_ctl -D $W/b/data -l $W/b/log -w -t 600 -o '$(opts b "$PB")' start >/dev/null && wait_promoted $PB"
  record brstart
  add_wall brpitr "$(python3 -c "print(round($br_stop + $br_restore + $M_WALL, 2))")"
  if [ "$M_RC" -eq 0 ] && [ -z "${R[brrestore,failed]:-}" ]; then
    got=$(count_rows "$PB"); R[brrows]="${R[brrows]:-} $got"
    [ "$got" = "$EXPECT_B" ] || R[brrows_bad]=1
  else
    R[brrows_bad]=1; R[brpitr,failed]=1
    sed 's/^/   | /' "$W/b/log" | tail -n 20 >&2
    break
  fi
  rm -rf "$W/b/data.aside"
done
TN_STORED=$(( $(du -sb "$W/tn/repo/base" | cut -f1) / REPEAT ))
BR_STORED=$(find "$W/pgbr/repo/backup/bench" -mindepth 1 -maxdepth 1 -type d -name '*F' -print0 | du -sb --files0-from=- | awk '{s+=$1} END {print int(s/NR)}')
WAL_A=$(median ${R[wal_a]}); WAL_B=$(median ${R[wal_b]})

# ------------------------------------------------------------- report
CMD="bench/pitr.sh"
[ "$SIZE" = 400 ] || CMD="BENCH_SIZE=$SIZE $CMD"
[ "$WAL_ROWS" = 300000 ] || CMD="BENCH_WAL_ROWS=$WAL_ROWS $CMD"
[ "$REPEAT" = 1 ] || CMD="BENCH_REPEAT=$REPEAT $CMD"
wall() { [ -z "${R[$1,failed]:-}" ] && [ -n "${R[$1,wall]:-}" ] && median ${R[$1,wall]}; }
mib() { python3 -c "print(f'{$1/1024:.1f}')"; }
mb() { python3 -c "print(f'{$1/1e6:.0f}')"; }
row() { # op label
  local w; w=$(wall "$1" || true)
  if [ -z "$w" ]; then echo "| $2 | FAILED | | |"; return; fi
  local rss="n/a"
  [ -z "${R[$1,hwm]:-}" ] || rss="$(mib "$(maxof ${R[$1,rss]})") / $(mib "$(maxof ${R[$1,hwm]})") / $(mib "$(maxof ${R[$1,tree]})")"
  echo "| $2 | $w | $(python3 -c "print(f'{$CLUSTER_SIZE/1e6/$w:.1f}')") | $rss |"
}
ok() { [ -z "${R[$1,failed]:-}" ] && [ -z "${R[${2}_bad]:-}" ] && echo "exactly the expected rows" || echo "**WRONG or failed**"; }
{
  echo "## Base backup and point-in-time recovery (bench/pitr.sh)"
  echo
  echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- Command: \`$CMD\` (run as root from the repository root)"
  echo "- Machine: $(machine_line); shared with other engineers' builds. Load average (1, 5, 15 min) at the start: $LOAD_START; before each repeat's base backups: ${R[load_backup]}; before its recoveries: ${R[load_pitr]}"
  echo "- PostgreSQL $(sqlp "$PA" -At -c 'SHOW server_version'), two throwaway clusters with identical data (fsync=off, shared_buffers=256MB, wal_level=replica, archive_mode=on)"
  echo "- $("$BIN" --version) (target/release): \`archive_command = 'tuneton-ops wal-push %p'\`, zstd level 3 (compression_threads = 1, the default: one worker, 1 MiB jobs), gpg AES256 (symmetric) through gpgme"
  echo "- $(pgbackrest version): \`archive_command = 'pgbackrest archive-push %p'\` (synchronous), posix repo on the same disk, compress-type=zst, compress-level=3, **repo1-cipher-type=aes-256-cbc (encryption on, to match ours)**, process-max=1 (default), start-fast=y"
  echo "- Runs per measurement: $REPEAT (wall time is the median; RSS the maximum)"
  echo
  echo "Database: pg_database_size $(mb "$DBSIZE") MB, data directory without pg_wal $(mb "$CLUSTER_SIZE") MB (generated by \`bench/gen.sql\` in $GEN_S s, then copied to the second cluster)."
  echo "Stored base backup: tuneton-ops $(mb "$TN_STORED") MB (one .tar.zst.gpg), pgBackRest $(mb "$BR_STORED") MB (backup set directory)."
  echo "Each repeat: base backups of both clusters, then $WAL_ROWS inserted rows in each (WAL to replay, median: A $(mb "$WAL_A") MB, B $(mb "$WAL_B") MB), then marker rows i1..i5 in separate transactions; the target time T_i lies between markers i3 and i4 (targets: ${TARGETS[*]}). Each repeat recovers both clusters to its own target, so repeat i+1 runs on the timeline repeat i's promotion started."
  echo
  echo "MB/s = data directory size (without pg_wal) / wall time. Peak RSS MiB: *time %M* = GNU time's maximum (largest single process"
  echo "among the command and the children it waited for), *own* = VmHWM of the command's own process, *tree* = largest"
  echo "sum of VmRSS over its process tree, sampled every 50 ms (for recoveries the tree can include the starting postgres)."
  echo
  echo "| step | wall s | MB/s | peak RSS MiB: time %M / own / tree |"
  echo "|---|---|---|---|"
  row tnbase '`tuneton-ops backup --kind base` (pg_basebackup -Ft -X fetch → zstd → gpg)'
  row brbase '`pgbackrest backup --type=full` (incl. its wait for the end-of-backup WAL to be archived)'
  row tnpitr '`tuneton-ops pitr --target-time T --yes`: check the stored backup, stop, move aside, restore, start, replay, promoted'
  row brpitr 'pgBackRest, same steps: `pg_ctl stop` + move aside + `pgbackrest restore --type=time --target=T --target-action=promote` + start, replay, promoted'
  row brrestore '… of which `pgbackrest restore` alone'
  row brstart '… of which start + replay (archive-get) + promotion'
  echo
  echo "Row checks (users/tracks/sessions/events/markers) per repeat: expected at T_i A \`$(echo ${R[expect_a]})\`, B \`$(echo ${R[expect_b]})\`."
  echo "- tuneton-ops: got \`$(echo ${R[tnrows]:-none})\`: $(ok tnpitr tnrows)"
  echo "- pgBackRest: got \`$(echo ${R[brrows]:-none})\`: $(ok brpitr brrows)"
  if [ -s "$W/failures.md" ]; then
    echo
    echo "### Failures (stderr)"
    echo
    cat "$W/failures.md"
  fi
} > "$W/section.md"
publish_section pitr "$W/section.md" "$OUT"
log "wrote the pitr section of $OUT"
cat "$W/section.md"
