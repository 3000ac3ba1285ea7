#!/usr/bin/env python3
"""A stand-in for the TuneTON application, run by the tests as a real service.

Everything comes from the environment, so a decoy can run with exactly the same
command line: APP_STUB_DIR (control directory), APP_STUB_PORT.

At start it writes its PID to $APP_STUB_DIR/app.pid once it listens. Each
GET /health reads the control files at request time:
  status  (default 200)        body  (default {"status":"ok","version":"1.4.2"})
  delay   seconds before answering (default 0)
If $APP_STUB_DIR/ignore_term exists at start, SIGTERM is ignored.
"""
import http.server
import os
import signal
import sys
import time

ctl = os.environ["APP_STUB_DIR"]
port = int(os.environ["APP_STUB_PORT"])


def read(name, default):
    try:
        with open(os.path.join(ctl, name)) as f:
            return f.read().strip()
    except FileNotFoundError:
        return default


if os.path.exists(os.path.join(ctl, "ignore_term")):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/health":
            self.send_error(404)
            return
        time.sleep(float(read("delay", "0")))
        body = read("body", '{"status":"ok","version":"1.4.2"}').encode()
        self.send_response(int(read("status", "200")))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
server.daemon_threads = True
with open(os.path.join(ctl, "app.pid.tmp"), "w") as f:
    f.write(f"{os.getpid()}\n")
os.rename(os.path.join(ctl, "app.pid.tmp"), os.path.join(ctl, "app.pid"))
server.serve_forever()
