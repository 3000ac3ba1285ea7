#!/usr/bin/env bash
# Installs what tuneton-ops needs to build and test on a Debian 12 machine, idempotently.
# With --tests, also what the test suite needs (the s3s-fs S3 server).
# Root runs apt-get directly; anyone else needs sudo.
set -euo pipefail

need=()
for pkg in libgpgme-dev gnupg zstd pkg-config postgresql-15 postgresql-client-15 gzip tar time python3 logrotate; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${need[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust (rustup) first" >&2; exit 3; }
# The S3-compatible server the tests start (newer versions need a newer rustc);
# only the test suite needs it (scripts/test.sh passes --tests).
[ "${1:-}" = "--tests" ] || exit 0
if ! command -v s3s-fs >/dev/null && [ ! -x "$HOME/.cargo/bin/s3s-fs" ]; then
  echo "setup: cargo install s3s-fs (about 5 minutes, once)" >&2
  cargo install s3s-fs@0.14.1 --features binary --locked --quiet
fi
