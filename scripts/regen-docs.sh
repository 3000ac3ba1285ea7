#!/usr/bin/env bash
# Regenerates completions/ and man/ from the clap definitions (a test fails when they are stale).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
BIN=target/debug/tuneton-ops
mkdir -p completions man
$BIN completions bash > completions/tuneton-ops.bash
$BIN completions zsh > completions/_tuneton-ops
$BIN completions fish > completions/tuneton-ops.fish
rm -f man/*.1
$BIN man --out-dir man
