# Shared helpers for the bench/*.sh scripts (sourced, not run).
#
# bench_build              build target/release/tuneton-ops when missing or older than a source file
# free_port                a TCP port the OS reports free on 127.0.0.1
# bench_rss_sampler DIR    writes DIR/rss.py (process-tree RSS sampler used by measure)
# measure LABEL OUT CMD..  runs CMD (stdout to OUT) under /usr/bin/time with the sampler; sets
#                          M_WALL (s), M_RSS (GNU time %M, KiB), M_HWM (VmHWM of CMD's own process, KiB),
#                          M_TREE (peak sum of VmRSS over CMD's process tree, KiB), M_RC; needs $W
# median / maxof N..       statistics over whitespace-separated numbers
# machine_line             "2 CPUs, <model>, <RAM> RAM"
# load_now                 the load averages from uptime, e.g. "1.52, 1.31, 1.10"
# publish_section NAME FILE [OUT]
#                          puts FILE between <!-- bench:NAME --> markers in OUT (default bench/RESULTS.md),
#                          replacing the previous section of that name and keeping every other section

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN="$BENCH_ROOT/target/release/tuneton-ops"
PGBIN=/usr/lib/postgresql/15/bin

bench_build() {
  if [ ! -x "$BIN" ] || [ -n "$(cd "$BENCH_ROOT" && find src Cargo.toml Cargo.lock -newer "$BIN" -print -quit 2>/dev/null)" ]; then
    echo "== building $BIN" >&2
    (cd "$BENCH_ROOT" && cargo build --release --quiet)
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

bench_rss_sampler() {
  # Samples the process tree under PID every 50 ms until it exits; prints
  # "<VmHWM of PID's first child, KiB> <largest sum of VmRSS over the tree, KiB>".
  cat > "$1/rss.py" <<'PY'
import os, sys, time
root = int(sys.argv[1]); hwm = 0; peak = 0
def children():
    kids = {}
    for p in os.listdir('/proc'):
        if p.isdigit():
            try:
                with open(f'/proc/{p}/stat') as f:
                    ppid = int(f.read().rsplit(')', 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(p))
            except (OSError, ValueError, IndexError):
                pass
    return kids
def status(pid, key):
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0
while os.path.exists(f'/proc/{root}'):
    kids = children(); tree = []; todo = list(kids.get(root, []))
    first = todo[0] if todo else None
    while todo:
        p = todo.pop(); tree.append(p); todo.extend(kids.get(p, []))
    if first is not None:
        hwm = max(hwm, status(first, 'VmHWM:'))
    peak = max(peak, sum(status(p, 'VmRSS:') for p in tree))
    time.sleep(0.05)
print(hwm, peak)
PY
}

measure() {
  local label=$1 out=$2; shift 2
  echo "== $label" >&2
  /usr/bin/time -f '%e %M' -o "$W/time.out" "$@" >"$out" 2>"$W/stderr" &
  local tpid=$!
  python3 "$W/rss.py" "$tpid" >"$W/rss.out" &
  local spid=$!
  M_RC=0; wait "$tpid" || M_RC=$?
  wait "$spid" || true
  read -r M_WALL M_RSS < <(tail -n 1 "$W/time.out")
  read -r M_HWM M_TREE < "$W/rss.out"
  if [ "$M_RC" -ne 0 ]; then
    echo "== FAILED ($M_RC): $label" >&2; sed 's/^/   | /' "$W/stderr" >&2
    { echo "### FAILED: $label (exit $M_RC)"; echo; echo '```'; tail -n 40 "$W/stderr"; echo '```'; echo; } >> "$W/failures.md"
  fi
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
maxof() { printf '%s\n' "$@" | sort -g | tail -n 1; }

machine_line() {
  echo "$(nproc) CPUs, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM"
}

load_now() { awk '{print $1", "$2", "$3}' /proc/loadavg; }

publish_section() {
  local name=$1 file=$2 out=${3:-$BENCH_ROOT/bench/RESULTS.md}
  python3 - "$name" "$file" "$out" <<'PY'
import os, re, sys
name, file, out = sys.argv[1:4]
body = open(file).read().rstrip('\n') + '\n'
start, end = f'<!-- bench:{name} -->', f'<!-- /bench:{name} -->'
block = f'{start}\n{body}{end}\n'
text = open(out).read() if os.path.exists(out) else '# tuneton-ops benchmark results\n'
pat = re.compile(re.escape(start) + r'.*?' + re.escape(end) + r'\n?', re.S)
if pat.search(text):
    text = pat.sub(lambda _: block, text, count=1)
else:
    text = text.rstrip('\n') + '\n\n' + block
open(out + '.tmp', 'w').write(text)
os.replace(out + '.tmp', out)
PY
}
