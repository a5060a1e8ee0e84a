#!/usr/bin/env bash
# What observing costs: the same fixed training job with the observability off and on.
#
#   benchmarks/observe_bench.sh [STEPS=200] [RUNS=3]
#
# The job: `ssl-daemon run --deterministic --max-steps STEPS` over the bundled clips (lockstep mode,
# so both arms do exactly the same work: same batches, same decode, same steps), default model and
# batch. Arms, alternated RUNS times each (off, on, off, on, ...):
#   off  http.listen = "" and, in [monitor], tensorboard = false, retrieval_every = 0
#   on   the defaults (endpoint, TensorBoard events, effective rank, retrieval panel), with one
#        client (a kept-alive connection) fetching /metrics, /api/status and / (the status page)
#        every second for the whole run
# Reported: wall seconds from start to exit (median per arm), pairs trained per second, and the
# difference. SSL_DAEMON_BIN picks the binary; otherwise `swift build -c release`.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-200}
runs=${2:-3}
bin=${SSL_DAEMON_BIN:-}
if [ -z "$bin" ]; then
  swift build -c release >&2
  bin=.build/release/ssl-daemon
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/off.toml" <<'TOML'
[http]
listen = ""
[monitor]
tensorboard = false
retrieval_every = 0.0
TOML
: > "$work/on.toml"

run_arm() { # ARM INDEX -> prints "seconds pairs_trained"
  local arm=$1 i=$2 state="$work/state-$1-$2" port="" scraper=""
  local args=(run --config "$work/$arm.toml" --watch samples/clips --state-dir "$state" --epochs 1000
              --deterministic --max-steps "$steps")
  if [ "$arm" = on ]; then
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    args+=(--http-listen "127.0.0.1:$port")
  fi
  local start end
  start=$(date +%s.%N)
  "$bin" "${args[@]}" > "$work/$arm-$i.out" 2> "$work/$arm-$i.err" &
  local pid=$!
  if [ "$arm" = on ]; then
    # One client process with a kept-alive connection (as Prometheus scrapes): spawning curl three
    # times a second would cost this 2-core machine more than the answers do.
    python3 - "$port" "$pid" <<'SCRAPE' &
import http.client, os, sys, time
port, pid = int(sys.argv[1]), int(sys.argv[2])
conn = None
while os.path.exists(f"/proc/{pid}"):
    for path in ("/metrics", "/api/status", "/"):
        try:
            conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", path)
            conn.getresponse().read()
        except Exception:  # the daemon starting or gone
            conn = None
    time.sleep(1)
SCRAPE
    scraper=$!
  fi
  wait "$pid"
  end=$(date +%s.%N)
  [ -n "$scraper" ] && wait "$scraper" 2>/dev/null || true
  local pairs
  pairs=$(tail -1 "$work/$arm-$i.out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pairs_trained"])')
  echo "$(python3 -c "print($end - $start)") $pairs"
}

declare -a off_s on_s off_p on_p
for ((i = 0; i < runs; i++)); do
  read -r s p < <(run_arm off "$i"); off_s+=("$s"); off_p+=("$p")
  read -r s p < <(run_arm on "$i"); on_s+=("$s"); on_p+=("$p")
  echo "run $((i + 1)): off ${off_s[-1]} s, on ${on_s[-1]} s" >&2
done
python3 - "${off_s[*]}" "${on_s[*]}" "${off_p[*]}" "${on_p[*]}" "$steps" "$runs" <<'PY'
import statistics, sys
off = [float(x) for x in sys.argv[1].split()]; on = [float(x) for x in sys.argv[2].split()]
off_p = [int(x) for x in sys.argv[3].split()]; on_p = [int(x) for x in sys.argv[4].split()]
steps, runs = sys.argv[5], sys.argv[6]
mo, mn = statistics.median(off), statistics.median(on)
po, pn = statistics.median(p / s for p, s in zip(off_p, off)), statistics.median(p / s for p, s in zip(on_p, on))
print(f"## Observing cost ({steps} steps, --deterministic, {runs} runs per arm, medians)\n")
print("| arm | wall seconds (each run) | median | pairs trained/s |")
print("| --- | --- | ---: | ---: |")
print(f"| off | {', '.join(f'{x:.1f}' for x in off)} | {mo:.1f} | {po:.1f} |")
print(f"| on, scraped every second | {', '.join(f'{x:.1f}' for x in on)} | {mn:.1f} | {pn:.1f} |")
print(f"\nthroughput lost with observing on: {(po - pn) / po * 100:+.2f} % (pairs trained identical: {off_p == on_p})")
PY
