#!/usr/bin/env bash
# The whole test suite: installs what it needs (idempotently), checks formatting
# and lints, then runs unit and integration tests (real PostgreSQL 15, gpg, zstd,
# gzip, tar; the harness starts and stops its own cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
log=$(mktemp /tmp/tuneton-ops-test.XXXX)
set +e
cargo test --all-targets >"$log" 2>&1
status=$?
set -e
grep -E '^(test |running |test result)|panicked|FAILED|^error' "$log" || true
[ "$status" -eq 0 ] || tail -n 200 "$log"
# The summary line CI reads, for all binaries together.
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
