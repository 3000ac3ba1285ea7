#!/usr/bin/env python3
"""Writes SIZE_MB of realistic TuneTON log lines to PATH (seeded, so runs are repeatable).

Mixes access-log lines (IPs, paths with ids, user agents, status, latency) and
application lines (levels, modules, request ids, user uuids, durations): about
as compressible as real logs (gzip -6 gives roughly 5-8x), unlike repeated text.

usage: gen-logs.py PATH SIZE_MB SEED
"""
import random
import sys
import time
import uuid

path, size_mb, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
target = size_mb * 1024 * 1024

paths = ["/api/v1/tracks/{}", "/api/v1/users/{}/sessions", "/api/v1/tracks/{}/render",
         "/static/js/app.{}.js", "/api/v1/search?q={}", "/healthz", "/api/v1/wasm/engine/{}",
         "/api/v1/auth/refresh", "/api/v1/playlists/{}/items"]
agents = ["Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
          "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
          "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
          "curl/7.88.1", "TuneTON-Android/3.4.1 (Pixel 7; Android 14)", "kube-probe/1.28"]
statuses = [200] * 40 + [201, 204, 301, 304, 304, 400, 401, 403, 404, 404, 429, 500, 502]
modules = ["http", "db.pool", "render", "auth", "cache", "queue", "wasm", "billing"]
levels = ["INFO"] * 12 + ["DEBUG"] * 6 + ["WARN"] * 2 + ["ERROR"]
messages = ["request completed", "cache miss for key track:{}", "render job {} finished",
            "token refreshed for user {}", "slow query took {} ms", "retrying upstream call ({} of 3)",
            "connection returned to pool", "queued job {}", "payment webhook accepted id={}",
            "user {} uploaded a track", "wasm module instantiated in {} us"]
words = ["drum", "bass", "loop", "vocal", "synth", "lofi", "remix", "ambient", "jazz", "beat"]
users = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(5000)]

t = time.mktime((2026, 12, 3, 0, 0, 0, 0, 0, -1))
written = 0
with open(path, "w", buffering=1 << 20) as out:
    while written < target:
        chunk = []
        for _ in range(2000):
            t += rng.random() * 0.02
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)
            if rng.random() < 0.55:
                ip = "%d.%d.%d.%d" % (rng.choice([10, 172, 185, 93, 46]), rng.randrange(256), rng.randrange(256), rng.randrange(1, 255))
                p = rng.choice(paths).format(rng.choice([rng.randrange(1, 10**6), rng.choice(words) + "+" + rng.choice(words)]))
                line = '%s - - [%s] "%s %s HTTP/1.1" %d %d "-" "%s" rt=%.3f uid=%s\n' % (
                    ip, ts, rng.choice(["GET"] * 5 + ["POST", "PUT", "DELETE"]), p, rng.choice(statuses),
                    rng.randrange(80, 250000), rng.choice(agents), rng.random() * rng.choice([0.05, 0.3, 2.0]),
                    rng.choice(users))
            else:
                m = rng.choice(messages).format(rng.randrange(1, 100000))
                line = "%s %-5s [%s] req=%016x user=%s %s duration_ms=%d\n" % (
                    ts, rng.choice(levels), rng.choice(modules), rng.getrandbits(64), rng.choice(users), m,
                    int(rng.expovariate(0.02)))
            chunk.append(line)
        s = "".join(chunk)
        out.write(s)
        written += len(s)
