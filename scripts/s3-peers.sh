#!/usr/bin/env bash
# Runs the integration S3 suite (tests/integration/s3.rs and the WAL tests that
# use S3: every test whose name contains "s3") against another S3-compatible
# server instead of the s3s-fs the harness starts, and records which passed.
#
#   scripts/s3-peers.sh moto      # pip install 'moto[server]' if missing; moto_server on a free port
#   scripts/s3-peers.sh garage    # needs `garage` (cargo install garage): single node, replication_factor 1
#
# Writes (or replaces) a "S3 peers: NAME" section of bench/RESULTS.md (BENCH_OUT=FILE for another file)
# with the command, the server version and each test's outcome. The server and its data live in one
# temp directory, removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. "$ROOT/bench/lib.sh"
PEER=${1:?usage: scripts/s3-peers.sh moto|garage}
OUT=${BENCH_OUT:-$ROOT/bench/RESULTS.md}
W=$(mktemp -d /tmp/tnpeer.XXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT
wait_port() { for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "server on port $1 did not start" >&2; exit 3; }

case $PEER in
  moto)
    command -v moto_server >/dev/null || pip install -q 'moto[server]'
    PORT=$(free_port)
    moto_server -H 127.0.0.1 -p "$PORT" >"$W/moto.log" 2>&1 &
    PIDS+=($!)
    wait_port "$PORT"
    VERSION="moto $(python3 -c 'import moto; print(moto.__version__)')"
    export TUNETON_TEST_S3_ENDPOINT="http://127.0.0.1:$PORT" TUNETON_TEST_S3_ACCESS_KEY=moto-access \
      TUNETON_TEST_S3_SECRET_KEY=moto-secret RUST_S3_SKIP_LOCATION_CONSTRAINT=true TUNETON_TEST_S3_CHECKS_SIGNATURES=0
    ENVLINE="TUNETON_TEST_S3_ENDPOINT=http://127.0.0.1:PORT TUNETON_TEST_S3_ACCESS_KEY=moto-access TUNETON_TEST_S3_SECRET_KEY=moto-secret RUST_S3_SKIP_LOCATION_CONSTRAINT=true TUNETON_TEST_S3_CHECKS_SIGNATURES=0"
    ;;
  garage)
    GARAGE=$(command -v garage || echo "$HOME/.cargo/bin/garage")
    [ -x "$GARAGE" ] || { echo "garage not installed (cargo install garage)" >&2; exit 3; }
    S3P=$(free_port); RPCP=$(free_port); ADMP=$(free_port)
    cat > "$W/garage.toml" <<TOML
metadata_dir = "$W/meta"
data_dir = "$W/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$RPCP"
rpc_public_addr = "127.0.0.1:$RPCP"
rpc_secret = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$S3P"
root_domain = ".s3.garage.localhost"
[admin]
api_bind_addr = "127.0.0.1:$ADMP"
TOML
    g() { "$GARAGE" -c "$W/garage.toml" "$@"; }
    g server >"$W/garage.log" 2>&1 &
    PIDS+=($!)
    wait_port "$S3P"
    for _ in $(seq 100); do g status >/dev/null 2>&1 && break; sleep 0.2; done
    NODE=$(g node id -q | cut -d@ -f1)
    g layout assign -z dc1 -c 1G "$NODE" >/dev/null
    g layout apply --version 1 >/dev/null
    g key create tuneton-test > "$W/key.txt"
    KEY_ID=$(awk '/Key ID/ {print $NF}' "$W/key.txt")
    SECRET=$(awk '/Secret key/ {print $NF}' "$W/key.txt")
    # The tests create one bucket each; Garage lets a key create buckets only with this permission.
    g key allow --create-bucket "$KEY_ID" >/dev/null
    VERSION="garage $("$GARAGE" --version | awk '{print $2}' | sed 's/^cargo://')"
    export TUNETON_TEST_S3_ENDPOINT="http://127.0.0.1:$S3P" TUNETON_TEST_S3_ACCESS_KEY="$KEY_ID" \
      TUNETON_TEST_S3_SECRET_KEY="$SECRET" TUNETON_TEST_S3_REGION=garage RUST_S3_SKIP_LOCATION_CONSTRAINT=true
    ENVLINE="TUNETON_TEST_S3_ENDPOINT=http://127.0.0.1:PORT TUNETON_TEST_S3_ACCESS_KEY=KEY TUNETON_TEST_S3_SECRET_KEY=SECRET TUNETON_TEST_S3_REGION=garage RUST_S3_SKIP_LOCATION_CONSTRAINT=true"
    ;;
  *) echo "unknown peer $PEER (moto, garage)" >&2; exit 3 ;;
esac

LOAD=$(load_now)
set +e
cargo test --test integration s3 -- --test-threads=1 --nocapture >"$W/test.log" 2>&1
RC=$?
set -e
# One line per test: name, outcome, and the reason it skipped its body (the tests print "skipped: ...").
python3 - "$W/test.log" >"$W/rows.md" <<'PY'
import re, sys
rows, cur, note = [], None, ''
for line in open(sys.argv[1], errors='replace'):
    m = re.match(r'^test (\S+) \.\.\. ?(.*)$', line.rstrip())
    if m:
        cur, rest = m.group(1), m.group(2)
        note = rest.strip() if rest.startswith('skipped:') else ''
        if rest in ('ok', 'FAILED', 'ignored'):
            rows.append((cur, rest, note)); cur = None
        continue
    if cur and line.startswith('skipped:'):
        note = line.strip()
    m = re.search(r'(?:^|\s)(ok|FAILED)$', line.rstrip())
    if cur and m:
        rows.append((cur, m.group(1), note)); cur = None
for name, result, note in rows:
    shown = 'passed' if result == 'ok' else result
    if note:
        shown += f' (body skipped: {note[len("skipped: "):]})'
    print(f'| `{name}` | {shown} |')
PY
{
  echo "## S3 peers: $PEER (scripts/s3-peers.sh)"
  echo
  echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(machine_line); load average before: $LOAD"
  echo "- Server: $VERSION on 127.0.0.1"
  echo "- Command: \`scripts/s3-peers.sh $PEER\`, which runs \`$ENVLINE cargo test --test integration s3 -- --test-threads=1 --nocapture\`"
  echo "- cargo test exit status: $RC"
  echo
  echo "| test | result |"
  echo "|---|---|"
  cat "$W/rows.md"
  if [ "$RC" -ne 0 ]; then
    echo
    echo "Failures (from the test output):"
    echo
    echo '```'
    sed -n '/^failures:/,/^test result/p' "$W/test.log" | grep -v '^\s*[0-9]*: \|^\s*at ' | head -n 60
    echo '```'
  fi
} > "$W/section.md"
publish_section "s3-peers-$PEER" "$W/section.md" "$OUT"
cat "$W/section.md"
exit "$RC"
