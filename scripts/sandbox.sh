#!/usr/bin/env bash
# The main job on a throwaway sandbox: a PostgreSQL 15 cluster with TuneTON-like
# tables, a repository and a config, all under one temp directory that is
# removed at the end. Backs up (db + app + config), lists, verifies with a
# restore test, restores into a new database and prints the row comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== building tuneton-ops (release; a few minutes the first time)" >&2
cargo build --release --quiet
BIN="$PWD/target/release/tuneton-ops"
PGBIN=/usr/lib/postgresql/15/bin

SB=$(mktemp -d /tmp/tnsb.XXXX)
chmod 755 "$SB"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  as_pg "$PGBIN/pg_ctl" -D "$SB/pg/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$SB"
}
trap cleanup EXIT

echo "== sandbox in $SB: starting PostgreSQL 15 on 127.0.0.1:$PORT"
mkdir -p "$SB/pg"
[ "$(id -u)" -eq 0 ] && chown postgres "$SB/pg"
chmod 700 "$SB/pg"
as_pg "$PGBIN/initdb" -D "$SB/pg/data" -U postgres --auth-local=trust --auth-host=trust -E UTF8 --locale=C.UTF-8 -N >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$SB/pg/data" -l "$SB/pg/log" -w -o "-p $PORT -k $SB/pg -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null

psql -X -q -h 127.0.0.1 -p "$PORT" -U postgres -c "CREATE DATABASE tuneton"
psql -X -q -h 127.0.0.1 -p "$PORT" -U postgres -d tuneton <<'SQL'
CREATE TABLE users (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), email text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE tracks (id bigserial PRIMARY KEY, owner uuid REFERENCES users(id), title text, wasm_params jsonb, created_at timestamptz DEFAULT now());
CREATE TABLE sessions (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), user_id uuid REFERENCES users(id), started_at timestamptz, meta jsonb);
INSERT INTO users (email) SELECT 'user' || g || '@example.com' FROM generate_series(1, 2000) g;
INSERT INTO tracks (owner, title, wasm_params)
  SELECT u.id, md5(random()::text), jsonb_build_object('bpm', 60 + (random()*120)::int, 'key', md5(random()::text))
  FROM users u, generate_series(1, 5);
INSERT INTO sessions (user_id, started_at, meta)
  SELECT id, now() - random() * interval '30 days', jsonb_build_object('ua', md5(random()::text)) FROM users, generate_series(1, 3);
SQL

mkdir -p "$SB/app/dist" "$SB/etc"
echo 'console.log("tuneton")' > "$SB/app/dist/server.js"
head -c 200000 /dev/urandom > "$SB/app/dist/engine.wasm"
echo 'PORT=3000' > "$SB/etc/tuneton.env"
head -c 32 /dev/urandom | base64 > "$SB/passphrase"
chmod 600 "$SB/passphrase"
cat > "$SB/ops.toml" <<TOML
[paths]
log_dir = "$SB/log"
run_dir = "$SB/run"
app_dir = "$SB/app"
config_dir = "$SB/etc"
scratch_dir = "$SB"

[database]
host = "127.0.0.1"
port = $PORT
user = "postgres"
name = "tuneton"

[repository]
path = "$SB/backups"

[encryption]
mode = "symmetric"
passphrase_file = "$SB/passphrase"
TOML
export TUNETON_OPS_CONFIG="$SB/ops.toml"
run() { echo; echo "\$ tuneton-ops $*"; "$BIN" "$@"; }

run config check
run backup --kind full
run backups list
run verify-backup --restore-test --kind db
run restore latest --target-db tuneton_restored
echo
echo "== sandbox done: backup, verification with restore test, and restore all succeeded"
