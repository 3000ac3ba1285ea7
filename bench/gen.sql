-- Synthetic TuneTON-like data with realistic entropy, one INSERT ... SELECT per table.
-- psql variable :scale is the number of "units"; one unit is about 1 MB of database
-- (heap + indexes, measured with pg_database_size; bench/backup.sh reports the real size).
-- Text comes from md5(random()) (hex: ~4 bits of entropy per character), ids are random
-- uuids, jsonb mixes random numbers and strings, timestamps are spread over a year.
\set ON_ERROR_STOP on
SET synchronous_commit = off;


CREATE TABLE users (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email text NOT NULL,
  display_name text,
  created_at timestamptz NOT NULL,
  settings jsonb
);
CREATE TABLE tracks (
  id bigserial PRIMARY KEY,
  owner uuid NOT NULL REFERENCES users(id),
  title text,
  description text,
  wasm_params jsonb,
  duration_ms integer,
  created_at timestamptz NOT NULL
);
CREATE TABLE sessions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES users(id),
  started_at timestamptz NOT NULL,
  ended_at timestamptz,
  meta jsonb
);
CREATE TABLE events (
  id bigserial PRIMARY KEY,
  session_id uuid NOT NULL,
  kind text NOT NULL,
  at timestamptz NOT NULL,
  payload jsonb
);

-- ~1 MB per unit in total: users 40 rows, tracks 400, sessions 800, events 2400 per unit.
INSERT INTO users (email, display_name, created_at, settings)
SELECT 'user' || g || '.' || substr(md5(random()::text), 1, 8) || '@example.com',
       initcap(substr(md5(random()::text), 1, 6 + (random() * 10)::int)),
       now() - random() * interval '365 days',
       jsonb_build_object('theme', (ARRAY['dark','light','auto'])[1 + (random() * 2)::int],
                          'volume', round(random()::numeric, 3),
                          'token', md5(random()::text))
FROM generate_series(1, 40 * :scale) g;

INSERT INTO tracks (owner, title, description, wasm_params, duration_ms, created_at)
SELECT u.id,
       md5(random()::text),
       md5(random()::text) || ' ' || md5(random()::text) || ' ' || md5(random()::text),
       jsonb_build_object('bpm', 60 + (random() * 120)::int,
                          'key', md5(random()::text),
                          'gain', round((random() * 2 - 1)::numeric, 4),
                          'filters', jsonb_build_array(random(), random(), random())),
       (random() * 600000)::int,
       now() - random() * interval '365 days'
FROM users u, generate_series(1, 10);

INSERT INTO sessions (user_id, started_at, ended_at, meta)
SELECT u.id, t, t + random() * interval '3 hours',
       jsonb_build_object('ua', 'Mozilla/5.0 ' || md5(random()::text),
                          'ip', (random() * 255)::int || '.' || (random() * 255)::int || '.'
                                || (random() * 255)::int || '.' || (random() * 255)::int,
                          'client', md5(random()::text))
FROM users u, generate_series(1, 20), LATERAL (SELECT now() - random() * interval '365 days' AS t) s;

INSERT INTO events (session_id, kind, at, payload)
SELECT s.id,
       (ARRAY['play','pause','seek','like','share','param'])[1 + (random() * 5)::int],
       s.started_at + random() * interval '3 hours',
       jsonb_build_object('pos', (random() * 600000)::int,
                          'v', random(),
                          'note', md5(random()::text))
FROM sessions s, generate_series(1, 3);

CREATE INDEX ON tracks (owner);
CREATE INDEX ON sessions (user_id);
CREATE INDEX ON events (session_id);
VACUUM (FREEZE, ANALYZE);
