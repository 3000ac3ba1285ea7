#!/usr/bin/env bash
# Benchmark: tuneton-ops backup / verify-backup / restore against the old shell
# pipeline (pg_dump | gzip | gpg) and against pg_dump alone, on a throwaway
# PostgreSQL 15 cluster filled with synthetic data of realistic entropy.
#
#   bench/backup.sh                    # full run: ~100 MB and ~400 MB databases
#   BENCH_SMALL=1 bench/backup.sh      # quick try: ~20 MB and ~60 MB
#   BENCH_SIZES="150 500" bench/backup.sh
#   BENCH_REPEAT=3 bench/backup.sh     # median of 3 runs per measurement (default 1)
#   BENCH_OUT=/tmp/r.md bench/backup.sh  # put the section in another file (default bench/RESULTS.md)
#
# Writes (or replaces) its own section of the results file, between
# <!-- bench:backup --> markers; the other benchmarks' sections are kept.
# Runs as root (PostgreSQL runs as postgres via runuser). Everything it creates
# lives in one temp directory that is removed on exit, with the cluster stopped.
# Runs sequentially: measurements never overlap.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BENCH_DIR="$ROOT/bench"
. "$BENCH_DIR/lib.sh"
REPEAT=${BENCH_REPEAT:-1}
OUT=${BENCH_OUT:-$BENCH_DIR/RESULTS.md}
if [ -n "${BENCH_SIZES:-}" ]; then
  read -r -a SIZES <<<"$BENCH_SIZES"
elif [ "${BENCH_SMALL:-0}" = 1 ]; then
  SIZES=(20 60)
else
  SIZES=(100 400)
fi
# gen.sql makes about this many MB of database per unit of :scale (calibrated here).
MB_PER_UNIT=${BENCH_MB_PER_UNIT:-0.91}

[ "$(id -u)" -eq 0 ] || { echo "bench: run as root" >&2; exit 3; }
for t in /usr/bin/time pg_dump psql pg_restore gpg gpgconf gzip zstd python3 "$PGBIN/initdb" "$PGBIN/pg_ctl"; do
  command -v "$t" >/dev/null || { echo "bench: missing $t" >&2; exit 3; }
done

bench_build
LOAD_START=$(load_now)

W=$(mktemp -d /tmp/tnb.XXXX)   # short: the socket dir lives inside it
chmod 755 "$W"
GH=$(mktemp -d /tmp/gh.XXXX)   # GNUPGHOME for the old pipeline (short path for the agent socket)
chmod 700 "$GH"
PORT=$(free_port)
H=127.0.0.1
as_pg() { runuser -u postgres -- "$@"; }
cleanup() {
  gpgconf --homedir "$GH" --kill gpg-agent >/dev/null 2>&1 || true
  as_pg "$PGBIN/pg_ctl" -D "$W/pg/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$W" "$GH"
}
trap cleanup EXIT

log() { echo "== $*" >&2; }
sql() { psql -X -q -v ON_ERROR_STOP=1 -h "$H" -p "$PORT" -U postgres "$@"; }

log "cluster in $W on $H:$PORT"
mkdir -p "$W/pg" && chown postgres "$W/pg" && chmod 700 "$W/pg"
as_pg "$PGBIN/initdb" -D "$W/pg/data" -U postgres --auth-local=trust --auth-host=trust \
  -E UTF8 --locale=C.UTF-8 -N >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$W/pg/data" -l "$W/pg/log" -w \
  -o "-p $PORT -k $W/pg -c listen_addresses=$H -c fsync=off -c shared_buffers=256MB -c max_wal_size=4GB" \
  start >/dev/null

head -c 32 /dev/urandom | base64 > "$W/passphrase"
chmod 600 "$W/passphrase"
PASS="$W/passphrase"
mkdir -p "$W/app" "$W/etc" "$W/old"
cat > "$W/ops.toml" <<TOML
[paths]
log_dir = "$W/log"
run_dir = "$W/run"
app_dir = "$W/app"
config_dir = "$W/etc"
scratch_dir = "$W"

[database]
host = "$H"
port = $PORT
user = "postgres"
name = "tuneton"

[repository]
path = "$W/repo"

[encryption]
mode = "symmetric"
passphrase_file = "$PASS"
TOML
export TUNETON_OPS_CONFIG="$W/ops.toml"

bench_rss_sampler "$W"

# Results: R[size,op,field]
declare -A R
record() { # size op  -> appends this run's measurement
  local k="$1,$2"
  R[$k,wall]="${R[$k,wall]:-} $M_WALL"; R[$k,rss]="${R[$k,rss]:-} $M_RSS"
  R[$k,hwm]="${R[$k,hwm]:-} $M_HWM"; R[$k,tree]="${R[$k,tree]:-} $M_TREE"
  [ "$M_RC" -eq 0 ] || R[$k,failed]=1
}

OLD_BACKUP='pg_dump -h "$H" -p "$PORT" -U postgres -d "$DB" | gzip | gpg --batch --yes --pinentry-mode loopback --passphrase-file "$PASS" --symmetric --cipher-algo AES256 -o "$OLDF"'
OLD_VERIFY='gpg --batch --pinentry-mode loopback --passphrase-file "$PASS" --decrypt "$OLDF" | gunzip | tail -c 100 > /dev/null'
OLD_RESTORE='gpg --batch --pinentry-mode loopback --passphrase-file "$PASS" --decrypt "$OLDF" | gunzip | psql -X -q -v ON_ERROR_STOP=1 -h "$H" -p "$PORT" -U postgres -d r2'
# The same design as tuneton-ops (custom format, zstd -1 (our default level), gpg without its own compression) with the stock
# CLI tools: the floor of that design on this machine, so the figures show what our implementation adds.
# (--s2k-count as in our private GnuPG home, see src/crypto.rs.)
CLI_BACKUP='pg_dump -h "$H" -p "$PORT" -U postgres -d "$DB" -Fc -Z0 | zstd -1 -q | gpg --batch --yes --pinentry-mode loopback --passphrase-file "$PASS" -z 0 --s2k-count 65011712 --symmetric --cipher-algo AES256 -o "$CLIF"'
CLI_VERIFY='gpg --batch --pinentry-mode loopback --passphrase-file "$PASS" --decrypt "$CLIF" | zstd -d -q | tee -p >(pg_restore --list > /dev/null) | sha256sum > /dev/null'
CLI_RESTORE='gpg --batch --pinentry-mode loopback --passphrase-file "$PASS" --decrypt "$CLIF" | zstd -d -q | pg_restore --single-transaction -h "$H" -p "$PORT" -U postgres -d r4'
export H PORT PASS GNUPGHOME="$GH"

count_rows() { sql -d "$1" -At -c "SELECT (SELECT count(*) FROM users)||'/'||(SELECT count(*) FROM tracks)||'/'||(SELECT count(*) FROM sessions)||'/'||(SELECT count(*) FROM events)"; }

: > "$W/failures.md"
for S in "${SIZES[@]}"; do
  DB=tuneton_$S
  export DB OLDF="$W/old/$DB.sql.gz.gpg" CLIF="$W/old/$DB.dump.zst.gpg"
  scale=$(python3 -c "print(max(1, round($S / $MB_PER_UNIT)))")
  log "generating $DB (target ~$S MB, scale $scale)"
  sql -c "CREATE DATABASE $DB"
  t0=$(date +%s.%N)
  sql -d "$DB" -v scale="$scale" -f "$BENCH_DIR/gen.sql"
  R[$S,gen_s]=$(python3 -c "print(round($(date +%s.%N) - $t0, 1))")
  R[$S,dbsize]=$(sql -d "$DB" -At -c "SELECT pg_database_size(current_database())")
  R[$S,rows]=$(count_rows "$DB")
  # Warm the page cache and get the dump size used for every MB/s figure.
  R[$S,dumpsize]=$(pg_dump -h "$H" -p "$PORT" -U postgres -d "$DB" -Fc -Z0 | wc -c)
  log "$DB: pg_database_size $((R[$S,dbsize] / 1000000)) MB, pg_dump -Fc -Z0 $((R[$S,dumpsize] / 1000000)) MB, rows ${R[$S,rows]}"

  ID=""
  R[$S,load]=$(load_now)
  for ((i = 1; i <= REPEAT; i++)); do
    measure "[$S MB] pg_dump -Fc -Z0 > /dev/null ($i/$REPEAT)" /dev/null \
      pg_dump -h "$H" -p "$PORT" -U postgres -d "$DB" -Fc -Z0
    record "$S" dump

    measure "[$S MB] tuneton-ops backup ($i/$REPEAT)" "$W/backup.json" \
      "$BIN" --json --no-progress --db-name "$DB" backup --kind db --no-retention
    record "$S" backup
    if [ "$M_RC" -eq 0 ]; then
      ID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["written"][0]["id"])' "$W/backup.json")
      R[$S,stored]=$(stat -c %s "$W"/repo/database/"$ID".* 2>/dev/null | head -n 1 || echo 0)
    fi

    rm -f "$OLDF"
    measure "[$S MB] old pipeline pg_dump | gzip | gpg ($i/$REPEAT)" /dev/null bash -o pipefail -c "$OLD_BACKUP"
    record "$S" oldbackup
    R[$S,oldsize]=$(stat -c %s "$OLDF" 2>/dev/null || echo 0)

    rm -f "$CLIF"
    measure "[$S MB] CLI pg_dump -Fc -Z0 | zstd -1 | gpg -z 0 ($i/$REPEAT)" /dev/null bash -o pipefail -c "$CLI_BACKUP"
    record "$S" clibackup
  done

  for ((i = 1; i <= REPEAT; i++)); do
    if [ -n "$ID" ]; then
      measure "[$S MB] tuneton-ops verify-backup $ID ($i/$REPEAT)" "$W/verify.json" \
        "$BIN" --json --no-progress verify-backup "$ID"
      record "$S" verify
    fi
    measure "[$S MB] old verify gpg -d | gunzip | tail ($i/$REPEAT)" /dev/null bash -o pipefail -c "$OLD_VERIFY"
    record "$S" oldverify
    measure "[$S MB] CLI gpg -d | zstd -d | pg_restore --list ($i/$REPEAT)" /dev/null bash -o pipefail -c "$CLI_VERIFY"
    record "$S" cliverify
  done

  for ((i = 1; i <= REPEAT; i++)); do
    if [ -n "$ID" ]; then
      sql -c "DROP DATABASE IF EXISTS r1"
      measure "[$S MB] tuneton-ops restore $ID --target-db r1 ($i/$REPEAT)" "$W/restore.json" \
        "$BIN" --json --no-progress restore "$ID" --target-db r1
      record "$S" restore
      [ "$M_RC" -ne 0 ] || R[$S,r1rows]=$(count_rows r1)
      sql -c "DROP DATABASE IF EXISTS r1" -c "DROP DATABASE IF EXISTS r3"
      measure "[$S MB] tuneton-ops restore $ID --target-db r3 --jobs 2 ($i/$REPEAT)" "$W/restore.json" \
        "$BIN" --json --no-progress restore "$ID" --target-db r3 --jobs 2
      record "$S" restorej
      [ "$M_RC" -ne 0 ] || R[$S,r3rows]=$(count_rows r3)
      sql -c "DROP DATABASE IF EXISTS r3"
    fi
    sql -c "DROP DATABASE IF EXISTS r2" -c "CREATE DATABASE r2"
    measure "[$S MB] old restore gpg -d | gunzip | psql ($i/$REPEAT)" /dev/null bash -o pipefail -c "$OLD_RESTORE"
    record "$S" oldrestore
    [ "$M_RC" -ne 0 ] || R[$S,r2rows]=$(count_rows r2)
    sql -c "DROP DATABASE IF EXISTS r2" -c "DROP DATABASE IF EXISTS r4" -c "CREATE DATABASE r4"
    measure "[$S MB] CLI gpg -d | zstd -d | pg_restore ($i/$REPEAT)" /dev/null bash -o pipefail -c "$CLI_RESTORE"
    record "$S" clirestore
    [ "$M_RC" -ne 0 ] || R[$S,r4rows]=$(count_rows r4)
    sql -c "DROP DATABASE IF EXISTS r4"
  done
  sql -c "DROP DATABASE IF EXISTS r1" -c "DROP DATABASE IF EXISTS r2" -c "DROP DATABASE IF EXISTS r3" -c "DROP DATABASE IF EXISTS r4" -c "DROP DATABASE $DB"
  rm -rf "$W/repo" "$OLDF" "$CLIF"
  gpgconf --homedir "$GH" --kill gpg-agent >/dev/null 2>&1 || true
done

# ---------------------------------------------------------------- report
PGVER=$(sql -At -c "SHOW server_version")
TNVER=$("$BIN" --version)
CMD="bench/backup.sh"
[ "${BENCH_SMALL:-0}" = 1 ] && CMD="BENCH_SMALL=1 $CMD"
[ -n "${BENCH_SIZES:-}" ] && CMD="BENCH_SIZES=\"$BENCH_SIZES\" $CMD"
[ "$REPEAT" = 1 ] || CMD="BENCH_REPEAT=$REPEAT $CMD"

wall() { [ -z "${R[$1,$2,failed]:-}" ] && [ -n "${R[$1,$2,wall]:-}" ] && median ${R[$1,$2,wall]}; }
mib() { python3 -c "print(f'{$1/1024:.1f}')"; }
fmt() { python3 -c "print(f'{$1:.2f}')"; }

OPS_backup="dump oldbackup clibackup backup"
OPS_verify="oldverify cliverify verify"
OPS_restore="oldrestore clirestore restore restorej"
declare -A NAME=(
  [dump]='`pg_dump -Fc -Z0 > /dev/null` (reference)'
  [oldbackup]='old: `pg_dump | gzip | gpg --symmetric AES256`'
  [backup]='`tuneton-ops backup --kind db --no-retention`'
  [clibackup]='same design with CLI tools: `pg_dump -Fc -Z0 | zstd -1 | gpg -z 0 --symmetric` (reference)'
  [cliverify]='CLI: `gpg --decrypt | zstd -d | tee >(pg_restore --list) | sha256sum` (reference)'
  [clirestore]='CLI: `gpg --decrypt | zstd -d | pg_restore --single-transaction` (reference)'
  [oldverify]='old: `gpg --decrypt | gunzip | tail -c 100`'
  [verify]='`tuneton-ops verify-backup ID`'
  [oldrestore]='old: `gpg --decrypt | gunzip | psql` into an empty db'
  [restore]='`tuneton-ops restore ID --target-db r1`'
  [restorej]='`tuneton-ops restore ID --target-db r3 --jobs 2` (spools the decrypted dump to a 0600 file)'
)

ratio() { # a b -> a/b with 2 decimals, or n/a
  local a=$1 b=$2
  [ -n "$a" ] && [ -n "$b" ] || { echo n/a; return; }
  python3 -c "print(f'{$a/$b:.2f}')"
}
yesno() { python3 -c "print('met' if $1 else 'NOT met')"; }

SMALL=${SIZES[0]}; BIG=${SIZES[${#SIZES[@]}-1]}
{
  echo "## Backup, verify, restore (bench/backup.sh)"
  echo
  echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- Command: \`$CMD\` (run as root from the repository root)"
  echo "- Machine: $(machine_line); shared with other engineers' builds. Load average (1, 5, 15 min) at the start: $LOAD_START; before each size: $(for S in "${SIZES[@]}"; do printf '~%s MB: %s; ' "$S" "${R[$S,load]}"; done)"
  echo "- PostgreSQL: $PGVER (throwaway cluster, fsync=off, shared_buffers=256MB, TCP on 127.0.0.1)"
  echo "- Tool: $TNVER (target/release), gpg $(gpg --version | head -n 1 | awk '{print $3}'), gzip $(gzip --version | head -n 1 | awk '{print $2}')"
  echo "- Runs per measurement: $REPEAT (wall time is the median; RSS the maximum)"
  echo
  echo "### Data"
  echo
  echo "Generated by \`bench/gen.sql\` (users, tracks, sessions, events; uuids, jsonb, md5 text, timestamps)."
  echo
  echo "| target | pg_database_size | \`pg_dump -Fc -Z0\` size | rows users/tracks/sessions/events | generation s | tuneton-ops stored (zstd+gpg) | old .sql.gz.gpg |"
  echo "|---|---|---|---|---|---|---|"
  for S in "${SIZES[@]}"; do
    echo "| ~$S MB | $((R[$S,dbsize] / 1000000)) MB | $((R[$S,dumpsize] / 1000000)) MB | ${R[$S,rows]} | ${R[$S,gen_s]} | $((${R[$S,stored]:-0} / 1000000)) MB | $((${R[$S,oldsize]:-0} / 1000000)) MB |"
  done
  echo
  echo "MB = 10^6 bytes, MiB = 2^20 bytes. **MB/s** = size of the \`pg_dump -Fc -Z0\` output of that database / wall time,"
  echo "for every operation (so the figures are comparable across backup, verify and restore)."
  echo "**Peak RSS** is given for tuneton-ops only (pipelines: n/a). Three figures: *time %M* is GNU time's"
  echo "maximum resident set, which is that of the largest single process among tuneton-ops and the children"
  echo "it waited for (pg_dump, pg_restore, ...); *own* is the VmHWM of the tuneton-ops process itself;"
  echo "*tree* is the largest sum of VmRSS over its whole process tree, sampled every 50 ms."
  echo "Wall time of a pipeline is that of the whole \`bash -o pipefail -c '...'\`."
  for group in backup verify restore; do
    ops_var="OPS_$group"
    echo
    echo "### $group"
    echo
    echo "| database | operation | wall s | MB/s | peak RSS MiB: time %M / own / tree |"
    echo "|---|---|---|---|---|"
    for S in "${SIZES[@]}"; do
      for op in ${!ops_var}; do
        w=$(wall "$S" "$op" || true)
        if [ -z "$w" ]; then
          echo "| ~$S MB | ${NAME[$op]} | FAILED | | |"; continue
        fi
        mbs=$(python3 -c "print(f'{${R[$S,dumpsize]}/1e6/$w:.1f}')")
        if [ "$op" = backup ] || [ "$op" = verify ] || [ "$op" = restore ] || [ "$op" = restorej ]; then
          rss="$(mib "$(maxof ${R[$S,$op,rss]})") / $(mib "$(maxof ${R[$S,$op,hwm]})") / $(mib "$(maxof ${R[$S,$op,tree]})")"
        else
          rss="n/a"
        fi
        echo "| ~$S MB | ${NAME[$op]} | $w | $mbs | $rss |"
      done
    done
  done

  echo
  echo "### Targets"
  echo
  echo "Speed ratios use the largest database (~$BIG MB; the main figures need at least 300 MB). RSS targets use"
  echo "tuneton-ops' own peak (VmHWM); *flat* means the ~$BIG MB figure is within max(10 %, 4 MiB) of the ~$SMALL MB one."
  echo "The issue states the speed targets for backup; verify and restore are held to the same ≥4× here."
  echo
  echo "| operation | target | measured | result |"
  echo "|---|---|---|---|"
  big_ok=$(python3 -c "print(1 if ${R[$BIG,dbsize]} >= 300e6 else 0)")
  for pair in "backup oldbackup" "verify oldverify" "restore oldrestore"; do
    set -- $pair; op=$1; old=$2
    tw=$(wall "$BIG" "$op" || true); ow=$(wall "$BIG" "$old" || true)
    if [ -z "$tw" ] || [ -z "$ow" ]; then
      echo "| $op | ≥4× faster than old | could not measure (a run failed) | NOT met |"
    else
      r=$(ratio "$ow" "$tw")
      echo "| $op | ≥4× faster than old | ${r}× ($ow s old / $tw s) | $(yesno "$r >= 4") |"
    fi
    cw=$(wall "$BIG" "cli$op" || true)
    if [ -n "$tw" ] && [ -n "$cw" ]; then
      echo "| $op | (information) against the same design with CLI tools | $(ratio "$tw" "$cw")× the CLI time ($tw s / $cw s) | — |"
    fi
    if [ "$op" = backup ]; then
      dw=$(wall "$BIG" dump || true)
      if [ -n "$tw" ] && [ -n "$dw" ]; then
        r=$(ratio "$tw" "$dw")
        echo "| backup | ≤1.3× the time of \`pg_dump -Fc -Z0\` alone | ${r}× ($tw s / $dw s) | $(yesno "$r <= 1.3") |"
      else
        echo "| backup | ≤1.3× the time of \`pg_dump -Fc -Z0\` alone | could not measure | NOT met |"
      fi
    fi
    if [ -n "${R[$SMALL,$op,hwm]:-}" ] && [ -n "${R[$BIG,$op,hwm]:-}" ] && [ -z "${R[$BIG,$op,failed]:-}" ]; then
      a=$(maxof ${R[$SMALL,$op,hwm]}); b=$(maxof ${R[$BIG,$op,hwm]})
      echo "| $op | peak RSS ≤ 64 MiB | $(mib "$b") MiB own ($(mib "$(maxof ${R[$BIG,$op,rss]})") MiB time %M) | $(yesno "$b <= 65536") |"
      echo "| $op | peak RSS flat between sizes | $(mib "$a") → $(mib "$b") MiB | $(yesno "abs($b - $a) <= max(4096, 0.1 * $a)") |"
    else
      echo "| $op | peak RSS ≤ 64 MiB, flat | could not measure | NOT met |"
    fi
  done
  [ "$big_ok" = 1 ] || { echo; echo "**Note:** the largest database is under 300 MB, so these figures do not satisfy the issue's size requirement (quick run)."; }
  echo
  echo "### Row checks"
  echo
  for S in "${SIZES[@]}"; do
    echo "- ~$S MB: source ${R[$S,rows]}; tuneton-ops restore ${R[$S,r1rows]:-n/a}; with --jobs 2 ${R[$S,r3rows]:-n/a}; old restore ${R[$S,r2rows]:-n/a}; CLI reference ${R[$S,r4rows]:-n/a}"
  done
  if [ -s "$W/failures.md" ]; then
    echo
    echo "### Failures (stderr)"
    echo
    cat "$W/failures.md"
  fi
} > "$W/section.md"
publish_section backup "$W/section.md" "$OUT"
log "wrote the backup section of $OUT"
cat "$W/section.md"
