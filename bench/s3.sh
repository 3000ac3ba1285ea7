#!/usr/bin/env bash
# Benchmark: S3 upload and download through tuneton-ops against plain HTTP
# PUT/GET of the same bytes with curl (SigV4), both to a local s3s-fs, in one run.
#
#   bench/s3.sh                        # 100 MB and 400 MB payloads (peak RSS must not grow with size)
#   BENCH_SIZES="50" bench/s3.sh       # quicker
#   BENCH_REPEAT=3 bench/s3.sh         # median of 3 runs per measurement (default 1)
#   BENCH_OUT=/tmp/r.md bench/s3.sh    # put the section in another file (default bench/RESULTS.md)
#
# The payload is one incompressible file (random bytes) in the application
# directory, so `backup --kind app` stores an object as large as the input.
# Upload: `backup --kind app` to the local repository only (the encoding cost:
# tar + zstd + gpg + SHA-256), to local + S3 (the same, then the finished object
# streamed into a multipart upload, completed and checked), and straight to S3
# (no local copy; encoding and upload overlap); against `curl -T` of the
# finished object (one PUT). Download: `verify-backup` from the local repository
# (decode cost alone) and `--from s3` (GET streamed into decrypt + decompress +
# SHA-256 + tar read); against `curl` GET of the same object to /dev/null.
# Writes (or replaces) its section of the results file between <!-- bench:s3 --> markers.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. "$ROOT/bench/lib.sh"
OUT=${BENCH_OUT:-$ROOT/bench/RESULTS.md}
REPEAT=${BENCH_REPEAT:-1}
read -r -a SIZES <<<"${BENCH_SIZES:-100 400}"
S3FS=$(command -v s3s-fs || echo "$HOME/.cargo/bin/s3s-fs")
[ -x "$S3FS" ] || { echo "bench: s3s-fs missing (scripts/setup.sh installs it)" >&2; exit 3; }
for t in /usr/bin/time curl python3; do
  command -v "$t" >/dev/null || { echo "bench: missing $t" >&2; exit 3; }
done
bench_build
LOAD_START=$(load_now)

W=$(mktemp -d /tmp/tns3b.XXXX)
PORT=$(free_port)
AK=bench-access; SK=bench-secret-0123456789
URL="http://127.0.0.1:$PORT"
mkdir -p "$W/s3/bench" "$W/app" "$W/etc" "$W/repo"
"$S3FS" --host 127.0.0.1 --port "$PORT" --access-key "$AK" --secret-key "$SK" "$W/s3" >"$W/s3s-fs.log" 2>&1 &
S3PID=$!
cleanup() { kill "$S3PID" 2>/dev/null || true; wait "$S3PID" 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
: > "$W/failures.md"
bench_rss_sampler "$W"
head -c 32 /dev/urandom | base64 > "$W/pass"; chmod 600 "$W/pass"
printf '%s\n' "$SK" > "$W/s3secret"; chmod 600 "$W/s3secret"
config() { # name local s3
  cat > "$W/ops-$1.toml" <<TOML
[paths]
log_dir = "$W/log"
run_dir = "$W/run"
app_dir = "$W/app"
config_dir = "$W/etc"
scratch_dir = "$W"
[repository]
local = $2
path = "$W/repo"
[retention]
enabled = false
[encryption]
mode = "symmetric"
passphrase_file = "$W/pass"
[s3]
enabled = $3
endpoint = "$URL"
bucket = "bench"
access_key_id = "$AK"
secret_access_key_file = "$W/s3secret"
TOML
}
config local true false; config both true true; config s3 false true
# Plain argv (no shell functions): /usr/bin/time runs these.
tn_local=(env TUNETON_OPS_CONFIG="$W/ops-local.toml" "$BIN")
tn_both=(env TUNETON_OPS_CONFIG="$W/ops-both.toml" "$BIN")
tn_s3=(env TUNETON_OPS_CONFIG="$W/ops-s3.toml" "$BIN")
# curl 7.88 signs but sends no x-amz-content-sha256, which s3s-fs requires: an unsigned payload
# (pure transfer; our uploads also sign each part's SHA-256 and send Content-MD5).
curl_s3=(curl -sS --fail --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AK:$SK" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD")
written_id() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["written"][0]["id"])' "$1"; }

declare -A R
record() { # size op
  local k="$1,$2"
  R[$k,wall]="${R[$k,wall]:-} $M_WALL"; R[$k,rss]="${R[$k,rss]:-} $M_RSS"
  R[$k,hwm]="${R[$k,hwm]:-} $M_HWM"; R[$k,tree]="${R[$k,tree]:-} $M_TREE"
  [ "$M_RC" -eq 0 ] || R[$k,failed]=1
}

for S in "${SIZES[@]}"; do
  rm -f "$W/app/blob"; head -c "$((S * 1000000))" /dev/urandom > "$W/app/blob"
  R[$S,load]=$(load_now)
  for ((i = 1; i <= REPEAT; i++)); do
    rm -rf "$W/repo"/application
    measure "[$S MB] backup --kind app, local only ($i/$REPEAT)" "$W/b.json" "${tn_local[@]}" --json --no-progress backup --kind app
    record "$S" local
    lid=$(written_id "$W/b.json")
    obj=$(ls "$W/repo/application/$lid".*.gpg)
    R[$S,size]=$(stat -c %s "$obj")
    measure "[$S MB] verify-backup, local ($i/$REPEAT)" /dev/null "${tn_local[@]}" --no-progress verify-backup "$lid"
    record "$S" vlocal

    measure "[$S MB] backup --kind app, local + S3 ($i/$REPEAT)" /dev/null "${tn_both[@]}" --no-progress backup --kind app
    record "$S" both
    measure "[$S MB] backup --kind app, straight to S3 ($i/$REPEAT)" "$W/b.json" "${tn_s3[@]}" --json --no-progress backup --kind app
    record "$S" s3
    sid=$(written_id "$W/b.json")
    measure "[$S MB] curl PUT ($i/$REPEAT)" /dev/null "${curl_s3[@]}" -T "$obj" "$URL/bench/curl/$S-$i"
    record "$S" put

    measure "[$S MB] verify-backup --from s3 ($i/$REPEAT)" /dev/null "${tn_s3[@]}" --no-progress --from s3 verify-backup "$sid"
    record "$S" vs3
    measure "[$S MB] curl GET ($i/$REPEAT)" /dev/null "${curl_s3[@]}" -o /dev/null "$URL/bench/curl/$S-$i"
    record "$S" get
    got=$("${curl_s3[@]}" "$URL/bench/curl/$S-$i" | sha256sum | cut -d' ' -f1)
    [ "$got" = "$(sha256sum < "$obj" | cut -d' ' -f1)" ] || { echo "bench: curl round trip changed the bytes" >&2; R[$S,get,failed]=1; }
    # Keep the bucket from filling the disk: drop this repeat's objects.
    rm -rf "$W/s3/bench/tuneton" "$W/s3/bench/curl"
  done
done

# ------------------------------------------------------------- report
CMD="bench/s3.sh"
[ "${BENCH_SIZES:-100 400}" = "100 400" ] || CMD="BENCH_SIZES=\"$BENCH_SIZES\" $CMD"
[ "$REPEAT" = 1 ] || CMD="BENCH_REPEAT=$REPEAT $CMD"
wall() { [ -z "${R[$1,$2,failed]:-}" ] && [ -n "${R[$1,$2,wall]:-}" ] && median ${R[$1,$2,wall]}; }
mib() { python3 -c "print(f'{$1/1024:.1f}')"; }
declare -A NAME=(
  [local]='`backup --kind app` to local disk only (encoding: tar + zstd + gpg + SHA-256)'
  [both]='`backup --kind app` to local + S3 (encode, then multipart upload of the object, checked)'
  [s3]='`backup --kind app` straight to S3 (`repository.local = false`)'
  [put]='curl PUT of the same object (`curl --aws-sigv4 -T`, one request, UNSIGNED-PAYLOAD)'
  [vlocal]='`verify-backup ID` from local disk (decoding alone)'
  [vs3]='`verify-backup --from s3 ID` (GET + decrypt + decompress + SHA-256 + tar read)'
  [get]='curl GET of the same object to /dev/null'
)
SMALL=${SIZES[0]}; BIG=${SIZES[${#SIZES[@]}-1]}
{
  echo "## S3 upload and download (bench/s3.sh)"
  echo
  echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- Command: \`$CMD\` (from the repository root)"
  echo "- Machine: $(machine_line); shared with other engineers' builds. Load average at the start: $LOAD_START; before each size: $(for S in "${SIZES[@]}"; do printf '~%s MB: %s; ' "$S" "${R[$S,load]}"; done)"
  echo "- Store: s3s-fs $("$S3FS" --version 2>/dev/null | awk '{print $NF}' || true) on 127.0.0.1 (checks SigV4), its files on the same disk; $("$BIN" --version), part size 8 MiB; $(curl --version | head -n 1 | awk '{print $1, $2}')"
  echo "- Payload: one file of random bytes (incompressible) in the application directory; runs per measurement: $REPEAT (median wall, max RSS)"
  echo
  echo "MB/s = stored object size / wall time. Peak RSS MiB: *time %M* (largest single process among the command and its"
  echo "waited-for children, e.g. gpg) / *own* (VmHWM of tuneton-ops itself) / *tree* (largest sum over its process tree)."
  echo
  echo "| payload (stored) | operation | wall s | MB/s | peak RSS MiB: time %M / own / tree |"
  echo "|---|---|---|---|---|"
  for S in "${SIZES[@]}"; do
    for op in local both s3 put vlocal vs3 get; do
      w=$(wall "$S" "$op" || true)
      if [ -z "$w" ]; then echo "| $S MB | ${NAME[$op]} | FAILED | | |"; continue; fi
      mbs=$(python3 -c "print(f'{${R[$S,size]}/1e6/max($w, 0.01):.0f}')")
      rss="$(mib "$(maxof ${R[$S,$op,rss]})") / $(mib "$(maxof ${R[$S,$op,hwm]})") / $(mib "$(maxof ${R[$S,$op,tree]})")"
      case $op in put|get) rss="$(mib "$(maxof ${R[$S,$op,rss]})") (curl)" ;; esac
      echo "| $S MB ($((R[$S,size] / 1000000)) MB) | ${NAME[$op]} | $w | $mbs | $rss |"
    done
  done
  echo
  echo "### Targets (largest payload ~$BIG MB)"
  echo
  echo "| what | measured | result |"
  echo "|---|---|---|"
  for op in both s3 vs3; do
    a=$(maxof ${R[$SMALL,$op,hwm]:-0}); b=$(maxof ${R[$BIG,$op,hwm]:-0})
    t=$(maxof ${R[$BIG,$op,rss]:-0})
    res=$(python3 -c "print('met' if $b <= 65536 and $t <= 65536 and abs($b - $a) <= max(4096, 0.1 * $a) else 'NOT met')")
    [ -z "${R[$BIG,$op,failed]:-}" ] || res="NOT met (failed)"
    echo "| $op: peak RSS ≤ 64 MiB and flat | own $(mib "$a") → $(mib "$b") MiB, time %M at ~$BIG MB $(mib "$t") MiB | $res |"
  done
  up=$(python3 -c "
b=$(wall "$BIG" both || echo 0); l=$(wall "$BIG" local || echo 0); p=$(wall "$BIG" put || echo 0)
print(f'{b-l:.2f} s (local + S3 minus local only) vs curl PUT {p} s: {(b-l)/p:.2f}×' if p else 'n/a')")
  down=$(python3 -c "
v=$(wall "$BIG" vs3 || echo 0); l=$(wall "$BIG" vlocal || echo 0); g=$(wall "$BIG" get || echo 0)
print(f'{v-l:.2f} s (verify from S3 minus from local disk) vs curl GET {g} s: {(v-l)/g:.2f}×' if g else 'n/a')")
  echo "| upload cost beyond encoding | $up | (information) |"
  echo "| download cost beyond decoding | $down | (information) |"
  if [ -s "$W/failures.md" ]; then
    echo
    echo "### Failures (stderr)"
    echo
    cat "$W/failures.md"
  fi
} > "$W/section.md"
publish_section s3 "$W/section.md" "$OUT"
echo "== wrote the s3 section of $OUT" >&2
cat "$W/section.md"
