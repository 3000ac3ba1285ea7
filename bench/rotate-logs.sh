#!/usr/bin/env bash
# Benchmark: `tuneton-ops rotate-logs` (release build) against logrotate with the
# equivalent config (size, compress, rotate N), in the same run, on the same
# freshly generated files: BENCH_FILES (10) logs of BENCH_MB (100) MiB of
# realistic lines (bench/gen-logs.py: access and application lines with ids,
# uuids, latencies; gzip -6 compresses them about 4x).
#
#   bench/rotate-logs.sh                       # 10 x 100 MiB, rename mode and copytruncate mode
#   BENCH_FILES=4 BENCH_MB=20 bench/rotate-logs.sh   # quick try
#   BENCH_OUT=/tmp/r.md bench/rotate-logs.sh   # write the results elsewhere (default bench/RESULTS.md)
#
# Pairs measured, each on a fresh copy of the same files (page-cached alike):
#   rename:       logrotate `create` (rename, new file, gzip -6)  vs  rotate-logs reopen = "none" (link + rename, gzip 6)
#   copytruncate: logrotate `copytruncate`                         vs  rotate-logs reopen = "copytruncate" (collapse)
# Wall time and peak RSS come from /usr/bin/time -v. Every archive is checked
# afterwards (gzip -t, and its content against the source's SHA-256), outside the timing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN="$ROOT/target/release/tuneton-ops"
FILES=${BENCH_FILES:-10}
MB=${BENCH_MB:-100}
OUT=${BENCH_OUT:-$ROOT/bench/RESULTS.md}
THRESHOLD=$(( MB / 2 ))M   # every file is over it

[ "$(id -u)" -eq 0 ] || { echo "bench: run as root (logrotate wants root-owned configs)" >&2; exit 3; }
for t in /usr/bin/time logrotate gzip python3 sha256sum; do
  command -v "$t" >/dev/null || { echo "bench: missing $t (scripts/setup.sh installs it)" >&2; exit 3; }
done
if [ ! -x "$BIN" ] || [ -n "$(find src Cargo.toml Cargo.lock -newer "$BIN" -print -quit 2>/dev/null)" ]; then
  echo "== building $BIN" >&2
  cargo build --release --quiet
fi

W=$(mktemp -d /var/tmp/tnrl.XXXX)
trap 'rm -rf "$W"' EXIT
log() { echo "== $*" >&2; }

log "generating $FILES files of $MB MiB in $W/src (two at a time)"
mkdir -p "$W/src"
for i in $(seq 1 "$FILES"); do
  python3 bench/gen-logs.py "$W/src/app$i.log" "$MB" "$i" &
  if (( i % 2 == 0 )); then wait; fi
done
wait
(cd "$W/src" && sha256sum ./*.log > ../src.sha256)
TOTAL=$(du -cb "$W"/src/*.log | tail -1 | cut -f1)

fresh() { # fresh DIR: a new copy of the source files
  rm -rf "$1"; mkdir -p "$1"; cp "$W"/src/*.log "$1"/; sync
}

# measure NAME COMMAND...: runs it under /usr/bin/time -v; sets WALL (s) and RSS (KiB)
measure() {
  local name=$1; shift
  /usr/bin/time -v -o "$W/$name.time" "$@" >"$W/$name.out" 2>"$W/$name.err" || {
    echo "bench: $name failed:" >&2; cat "$W/$name.err" "$W/$name.out" >&2; exit 2; }
  local e
  e=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$W/$name.time")
  WALL=$(echo "$e" | awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }')
  RSS=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$W/$name.time")
  log "$name: ${WALL}s, peak RSS ${RSS} KiB"
}

# check DIR: every source file is in exactly one .gz archive plus what stayed live
check() {
  local dir=$1 n=0 f base got want
  for f in "$W"/src/*.log; do
    base=$(basename "$f")
    gzip -t "$dir"/"$base"[.-]*gz
    got=$( { for a in $(ls "$dir"/"$base"[.-]*gz | sort); do gzip -dc "$a"; done; cat "$dir/$base" 2>/dev/null || true; } | sha256sum | cut -d' ' -f1)
    want=$(grep " ./$base\$" "$W/src.sha256" | cut -d' ' -f1)
    [ "$got" = "$want" ] || { echo "bench: $dir/$base: archives + live file differ from the source" >&2; exit 2; }
    n=$((n + $(ls "$dir"/"$base"[.-]*gz | wc -l)))
  done
  [ "$n" -eq "$FILES" ] || { echo "bench: $dir: $n archives for $FILES files" >&2; exit 2; }
}

lr_conf() { # lr_conf DIR MODE
  cat > "$W/logrotate-$2.conf" <<CONF
$1/*.log {
    size $THRESHOLD
    rotate 5
    compress
    missingok
    $( [ "$2" = copytruncate ] && echo copytruncate || echo create )
}
CONF
  chmod 644 "$W/logrotate-$2.conf"
}

ours_conf() { # ours_conf DIR REOPEN LABEL
  cat > "$W/ops-$3.toml" <<TOML
[paths]
log_dir = "$W/log"
run_dir = "$W/run"

[logs]
state_file = "$W/rotate-logs-$3.state.json"
compress_threads = 2

[[logs.sets]]
name = "bench"
paths = ["$1/*.log"]
max_size = "$THRESHOLD"
keep = 5
compress = "gzip"
reopen = "$2"
archive_dir = "."
TOML
}

LOAD_BEFORE=$(uptime)
declare -A R
for mode in rename copytruncate; do
  ours_mode=$([ "$mode" = rename ] && echo none || echo copytruncate)
  fresh "$W/lr-$mode"
  lr_conf "$W/lr-$mode" "$mode"
  measure "logrotate-$mode" logrotate -s "$W/logrotate-$mode.state" "$W/logrotate-$mode.conf"
  R[lr-$mode]="$WALL $RSS"
  rm -rf "$W/lr-$mode"

  fresh "$W/ours-$mode"
  ours_conf "$W/ours-$mode" "$ours_mode" "$mode"
  measure "ours-$mode" "$BIN" --config "$W/ops-$mode.toml" --quiet rotate-logs
  R[ours-$mode]="$WALL $RSS"
done
LOAD_AFTER=$(uptime)

# Correctness outside the timing: rerun each tool on a fresh copy and check every byte.
log "checking archives (gzip -t, content = source)"
for mode in rename copytruncate; do
  check "$W/ours-$mode"; rm -rf "$W/ours-$mode"
  fresh "$W/lr-$mode"; rm -f "$W/logrotate-$mode.state"
  logrotate -s "$W/logrotate-$mode.state" "$W/logrotate-$mode.conf"
  check "$W/lr-$mode"; rm -rf "$W/lr-$mode"
done

row() { # row LABEL KEY
  set -- "$1" ${R[$2]}
  printf '| %s | %.1f s | %.0f MiB/s | %.1f MiB |\n' "$1" "$2" "$(echo "$TOTAL $2" | awk '{ print $1 / 1048576 / $2 }')" "$(echo "$3" | awk '{ print $1 / 1024 }')"
}
speed() { echo "${R[$1]} ${R[$2]}" | awk '{ printf "%.1fx", $1 / $3 }'; }

[ -s "$OUT" ] || printf '# Benchmark results\n\nEach section is appended by the script it names, with the exact command.\n' > "$OUT"
{
  echo
  echo "## rotate-logs vs logrotate ($(date -u +%Y-%m-%d), bench/rotate-logs.sh)"
  echo
  echo "$FILES files x $MB MiB of generated log lines ($(awk -v t="$TOTAL" 'BEGIN { printf "%.0f", t / 1048576 }') MiB), one run of each tool on a fresh"
  echo "page-cached copy, threshold $THRESHOLD, rotate/keep 5, gzip level 6 in both; \`$(nproc)\` cores, $(uname -r), logrotate $(logrotate --version 2>&1 | head -1 | awk '{ print $2 }')."
  echo "Load before: \`$(echo "$LOAD_BEFORE" | sed 's/^ *//')\`; after: \`$(echo "$LOAD_AFTER" | sed 's/^ *//')\`."
  echo
  echo "Command: \`$( [ -n "${BENCH_FILES:-}${BENCH_MB:-}" ] && echo "BENCH_FILES=$FILES BENCH_MB=$MB " )bench/rotate-logs.sh\`"
  echo
  echo "| tool | wall | throughput | peak RSS |"
  echo "|---|---|---|---|"
  row "logrotate (create: rename + gzip -6)" lr-rename
  row "rotate-logs (reopen = \"none\": link + rename, 2 compression threads, verified)" ours-rename
  row "logrotate (copytruncate)" lr-copytruncate
  row "rotate-logs (reopen = \"copytruncate\": compress prefix, verify, collapse)" ours-copytruncate
  echo
  echo "Speed-up: rename $(speed lr-rename ours-rename), copytruncate $(speed lr-copytruncate ours-copytruncate)."
  echo "Every archive of both tools passed \`gzip -t\` and decompressed (with what stayed live) to the source's SHA-256."
} | tee -a "$OUT"
