#!/usr/bin/env bash
# Benchmark: S3 upload and download through tuneton-ops against a plain HTTP
# PUT/GET of the same bytes with curl (SigV4), both to a local s3s-fs, in one run.
#
#   bench/s3.sh                      # 100 MB and 400 MB application backups
#   BENCH_SIZES="50" bench/s3.sh     # quicker
#   BENCH_OUT=/tmp/r.md bench/s3.sh  # default: appends a section to bench/RESULTS.md
#
# The payload is incompressible (random bytes), so compression saves nothing and
# the stored object is as large as the input. Upload time for tuneton-ops is
# `backup --kind app` straight into S3 (tar + zstd + gpg + multipart upload,
# checked) minus nothing: it is compared with (a) the same backup to local disk
# and (b) curl PUT of the finished object. Download: `verify-backup --from s3`
# (GET + decrypt + decompress + SHA-256 + tar read) against curl GET of the object.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN="$ROOT/target/release/tuneton-ops"
OUT=${BENCH_OUT:-$ROOT/bench/RESULTS.md}
read -r -a SIZES <<<"${BENCH_SIZES:-100 400}"
S3FS=$(command -v s3s-fs || echo "$HOME/.cargo/bin/s3s-fs")
[ -x "$S3FS" ] || { echo "bench: s3s-fs missing (scripts/setup.sh installs it)" >&2; exit 3; }
if [ ! -x "$BIN" ] || [ -n "$(find src Cargo.toml Cargo.lock -newer "$BIN" -print -quit 2>/dev/null)" ]; then
  cargo build --release --quiet
fi

W=$(mktemp -d /tmp/tns3b.XXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
AK=bench-access; SK=bench-secret-0123456789
mkdir -p "$W/s3/bench" "$W/app" "$W/etc" "$W/repo"
"$S3FS" --host 127.0.0.1 --port "$PORT" --access-key "$AK" --secret-key "$SK" "$W/s3" >/dev/null 2>&1 &
S3PID=$!
cleanup() { kill "$S3PID" 2>/dev/null || true; wait "$S3PID" 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
head -c 32 /dev/urandom | base64 > "$W/pass"; chmod 600 "$W/pass"
printf '%s\n' "$SK" > "$W/s3secret"; chmod 600 "$W/s3secret"
config() { # $1 = local true|false, $2 = s3 true|false
  cat > "$W/ops-$1-$2.toml" <<TOML
[paths]
log_dir = "$W/log"
run_dir = "$W/run"
app_dir = "$W/app"
config_dir = "$W/etc"
scratch_dir = "$W"
[repository]
local = $1
path = "$W/repo"
[retention]
enabled = false
[encryption]
passphrase_file = "$W/pass"
[s3]
enabled = $2
endpoint = "http://127.0.0.1:$PORT"
bucket = "bench"
access_key_id = "$AK"
secret_access_key_file = "$W/s3secret"
TOML
}
config true false; config false true
timed() { # prints "wall_s peak_rss_kib"
  /usr/bin/time -f '%e %M' -o "$W/t" "$@" >/dev/null 2>"$W/err" || { cat "$W/err" >&2; exit 2; }
  cat "$W/t"
}
rows=()
for mb in "${SIZES[@]}"; do
  rm -f "$W/app/blob"; head -c "${mb}M" /dev/urandom > "$W/app/blob"
  read -r t_local rss_local < <(TUNETON_OPS_CONFIG="$W/ops-true-false.toml" timed "$BIN" --no-progress backup --kind app)
  read -r t_up rss_up < <(TUNETON_OPS_CONFIG="$W/ops-false-true.toml" timed "$BIN" --no-progress backup --kind app)
  id=$(TUNETON_OPS_CONFIG="$W/ops-false-true.toml" "$BIN" --json backups list --kind app | python3 -c 'import json,sys; print(json.load(sys.stdin)["backups"][-1]["id"])')
  obj=$(ls "$W/repo/application/"*.tar.zst.gpg | head -1)
  size=$(stat -c %s "$obj")
  read -r t_curl_put _ < <(timed curl -sf --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AK:$SK" -T "$obj" "http://127.0.0.1:$PORT/bench/curl-put-$mb")
  read -r t_down rss_down < <(TUNETON_OPS_CONFIG="$W/ops-false-true.toml" timed "$BIN" --no-progress verify-backup "$id")
  read -r t_curl_get _ < <(timed curl -sf --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AK:$SK" -o /dev/null "http://127.0.0.1:$PORT/bench/curl-put-$mb")
  mbps() { python3 -c "print(f'{$size/1e6/max($1,0.001):.0f}')"; }
  rows+=("| $mb MB | backup --kind app to local disk | $t_local | $(mbps "$t_local") | $((rss_local/1024)) |")
  rows+=("| $mb MB | backup --kind app straight to S3 (multipart, checked) | $t_up | $(mbps "$t_up") | $((rss_up/1024)) |")
  rows+=("| $mb MB | curl PUT of the same object (one request) | $t_curl_put | $(mbps "$t_curl_put") | - |")
  rows+=("| $mb MB | verify-backup --from s3 (GET + decrypt + check) | $t_down | $(mbps "$t_down") | $((rss_down/1024)) |")
  rows+=("| $mb MB | curl GET of the same object | $t_curl_get | $(mbps "$t_curl_get") | - |")
  rm -rf "$W/repo"/application
done
{
  echo
  echo "## S3 upload and download (bench/s3.sh)"
  echo
  echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), s3s-fs on 127.0.0.1, incompressible payload. Command: \`bench/s3.sh\`."
  echo
  echo "| payload | what | wall s | MB/s | peak RSS MiB |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} >> "$OUT"
printf '%s\n' "${rows[@]}"
