#!/usr/bin/env bash
# Live-stream benchmark: ssl-daemon consumes a 720p25 H.264 + AAC MPEG-TS stream over UDP for
# SECONDS with its default config (no --config), and we report what it did.
#
#   benchmarks/live_bench.sh [SECONDS=120]
#
# Environment:
#   SSL_DAEMON_BIN=/path/to/ssl-daemon  use this binary; otherwise `swift build -c release`.
#   LIVE_BENCH_SERVER=file|encode       how the stream is served (default: file, see below).
#   CLIP_SECONDS=N                      length of the pre-encoded clip that is looped (default 60).
#
# The server. Encoding 720p25 with libx264 in real time (`-preset veryfast -tune zerolatency`)
# costs a large share of one core and competes with the daemon for the 2 cores; when the box is
# loaded it can fall below 1x, and then the daemon is starved by the server, not by itself. So by
# default (LIVE_BENCH_SERVER=file) the script first encodes a CLIP_SECONDS clip once, with the
# same settings, into .build-bench/live_clip720p25.mp4 (reused by later runs), and then serves it
# with `ffmpeg -re -stream_loop -1 -i CLIP -c copy -f mpegts udp://...`: no encoding while the
# daemon runs, the server costs almost nothing. The pre-encode's own speed is reported, which says
# whether live encoding would have kept up on an idle machine. LIVE_BENCH_SERVER=encode runs the
# encoder live instead (lavfi testsrc2 + sine -> libx264/aac -> UDP) for comparison. Either way
# the server writes `-progress` and its speed (should be ~1.00x with -re) is in the report.
#
# Sequence: pick a free UDP port on 127.0.0.1; start `ssl-daemon run --stream udp://127.0.0.1:PORT
# --state-dir TMP/state --checkpoint-every 60` (stdout and stderr to files); 1 s later start the
# server (for SECONDS+5 s); SECONDS after the server started send SIGTERM to the daemon, wait for
# it to exit, stop the server, and read the daemon's JSON summary (last stdout line).
#
# Writes the markdown report to stdout and to .build-bench/live_bench.md; the daemon's and the
# server's logs stay in the temporary directory printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-120}
case $seconds in
  ''|*[!0-9]*|0) echo "usage: $0 [SECONDS=120] (a positive integer)" >&2; exit 2 ;;
esac
server_mode=${LIVE_BENCH_SERVER:-file}
case $server_mode in file|encode) ;; *) echo "live_bench: LIVE_BENCH_SERVER must be file or encode" >&2; exit 2 ;; esac
clip_seconds=${CLIP_SECONDS:-60}
batch=64        # config training.batch default
decode_fps=10   # config decode.fps default

for tool in ffmpeg python3; do
  command -v "$tool" >/dev/null || { echo "live_bench: $tool not found" >&2; exit 1; }
done

if [ -n "${SSL_DAEMON_BIN:-}" ]; then
  bin=$SSL_DAEMON_BIN
else
  swift build -c release --product ssl-daemon >&2
  bin="$(swift build -c release --show-bin-path)/ssl-daemon"
fi
[ -x "$bin" ] || { echo "live_bench: $bin is not executable" >&2; exit 1; }

mkdir -p .build-bench
now() { date +%s.%N; }
calc() { python3 -c "print($1)"; }
# CPU seconds (user + system) used so far by a live process.
cpu_seconds() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo ""; return; }
  # Fields after the ")" of the command name: state is $1, utime $12, stime $13.
  echo "${stat##*) }" | awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($12 + $13) / hz }'
}

# --- The clip (file mode) -------------------------------------------------------------------
clip=.build-bench/live_clip720p25.mp4
clip_info=$clip.info
if [ "$server_mode" = file ] && [ ! -s "$clip" ]; then
  echo "live_bench: encoding ${clip_seconds}s 720p25 clip $clip (libx264 veryfast zerolatency 3M, aac)" >&2
  tmp=".build-bench/.tmp.$$.$(basename "$clip")"
  t_enc0=$(now)
  ffmpeg -nostdin -loglevel error -y \
    -f lavfi -i "testsrc2=size=1280x720:rate=25" -f lavfi -i "sine=f=440" -t "$clip_seconds" \
    -c:v libx264 -preset veryfast -tune zerolatency -g 50 -b:v 3M -pix_fmt yuv420p -c:a aac \
    -movflags +faststart -f mp4 "$tmp"
  t_enc1=$(now)
  mv -f "$tmp" "$clip"
  enc_wall=$(calc "round($t_enc1 - $t_enc0, 1)")
  echo "pre-encode of ${clip_seconds}s took ${enc_wall}s wall = $(calc "round($clip_seconds / ($t_enc1 - $t_enc0), 2)")x real time (load before: $(cut -d' ' -f1-3 /proc/loadavg))" > "$clip_info"
fi

# --- Run ------------------------------------------------------------------------------------
work=$(mktemp -d /tmp/live_bench.XXXXXX)
port=$(python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="udp://127.0.0.1:$port"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

dpid="" spid="" npid=""
cleanup() {
  # Only the processes this script started, by pid.
  [ -n "$spid" ] && kill "$spid" 2>/dev/null || true
  [ -n "$dpid" ] && kill -KILL "$dpid" 2>/dev/null || true
  [ -n "$npid" ] && kill "$npid" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# The summary has no count of pairs actually trained (a step takes up to `batch` pairs, fewer when
# a kind runs short), but the daemon's sd_notify STATUS lines carry its own pairs/s counter
# ("step N, R pairs/s, loss L", every >= 2 s). So the daemon gets a NOTIFY_SOCKET (a datagram
# socket in the temporary directory; no WATCHDOG_USEC, so no watchdog) and a small listener logs
# each message with its arrival time. It changes nothing in the config.
notify_sock="$work/notify.sock"
python3 -u - "$notify_sock" > "$work/notify.tsv" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
while True:
    for line in s.recv(4096).decode(errors="replace").splitlines():
        print(f"{time.time():.3f}\t{line}")
PY
npid=$!
for _ in $(seq 1 50); do [ -S "$notify_sock" ] && break; sleep 0.1; done

daemon_cmd=("$bin" run --stream "$url" --state-dir "$work/state" --checkpoint-every 60)
NOTIFY_SOCKET="$notify_sock" "${daemon_cmd[@]}" > "$work/daemon.out" 2> "$work/daemon.err" &
dpid=$!
sleep 1
if ! kill -0 "$dpid" 2>/dev/null; then
  echo "live_bench: the daemon exited during startup; its stderr:" >&2
  cat "$work/daemon.err" >&2
  exit 1
fi

if [ "$server_mode" = file ]; then
  server_cmd=(ffmpeg -nostdin -loglevel error -re -stream_loop -1 -i "$clip" -t $((seconds + 5))
    -c copy -f mpegts -progress "$work/server.progress" "$url?pkt_size=1316")
else
  server_cmd=(ffmpeg -nostdin -loglevel error -re -f lavfi -i "testsrc2=size=1280x720:rate=25"
    -f lavfi -i "sine=f=440" -t $((seconds + 5)) -c:v libx264 -preset veryfast -tune zerolatency
    -g 50 -b:v 3M -c:a aac -f mpegts -progress "$work/server.progress" "$url?pkt_size=1316")
fi
"${server_cmd[@]}" > "$work/server.out" 2> "$work/server.err" &
spid=$!
t0=$(now)
echo "live_bench: daemon pid $dpid, server pid $spid, $url, ${seconds}s; logs in $work" >&2

# Sample the logged step count every 5 s (the daemon logs every 20th step) for a steady-state
# rate that leaves out the start-up (connect, first batch) and the shutdown.
: > "$work/steps.tsv"
daemon_died=no
while :; do
  elapsed=$(calc "$(now) - $t0")
  if ! kill -0 "$dpid" 2>/dev/null; then daemon_died=yes; break; fi
  step=$(sed -n 's/^.*INFO ssl-daemon: step .*step=\([0-9]*\).*$/\1/p' "$work/daemon.err" | tail -n 1)
  [ -n "$step" ] && printf '%s\t%s\n' "$elapsed" "$step" >> "$work/steps.tsv"
  python3 -c "import sys; sys.exit(0 if $elapsed >= $seconds else 1)" && break
  left=$(calc "max(0.0, min(5.0, $seconds - $elapsed))")
  sleep "$left"
done
t1=$(now)
daemon_cpu=$(cpu_seconds "$dpid")
server_cpu=$(cpu_seconds "$spid")
load_during=$(cut -d' ' -f1-3 /proc/loadavg)

# --- Stop ------------------------------------------------------------------------------------
exit_code=""
shutdown_s=""
if [ "$daemon_died" = no ]; then
  kill -TERM "$dpid"
  t_term=$(now)
  for _ in $(seq 1 600); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$dpid" 2>/dev/null; then
    echo "live_bench: daemon still running 60 s after SIGTERM; killing it" >&2
    kill -KILL "$dpid" 2>/dev/null || true
  fi
  shutdown_s=$(calc "round($(now) - $t_term, 2)")
fi
set +e; wait "$dpid"; exit_code=$?; set -e
dpid=""
kill "$spid" 2>/dev/null || true
set +e; wait "$spid" 2>/dev/null; set -e
spid=""
kill "$npid" 2>/dev/null || true
set +e; wait "$npid" 2>/dev/null; set -e
npid=""

# --- Report ----------------------------------------------------------------------------------
export LB_T0=$t0 LB_WORK=$work LB_SECONDS=$seconds LB_ELAPSED=$(calc "$t1 - $t0") LB_BATCH=$batch LB_FPS=$decode_fps \
  LB_EXIT=$exit_code LB_DIED=$daemon_died LB_SHUTDOWN=$shutdown_s LB_DAEMON_CPU=$daemon_cpu \
  LB_SERVER_CPU=$server_cpu LB_MODE=$server_mode LB_CLIP=$clip LB_CLIP_INFO="$(cat "$clip_info" 2>/dev/null || true)" \
  LB_LOAD_BEFORE="$load_before" LB_LOAD_DURING="$load_during" \
  LB_MACHINE="$(lscpu | sed -n 's/^Model name: *//p' | head -n 1), $(nproc) cores (nproc)" \
  LB_FFMPEG="$(ffmpeg -version | head -n 1)" \
  LB_DAEMON_CMD="${daemon_cmd[*]}" LB_SERVER_CMD="${server_cmd[*]}"
python3 - <<'PY' | tee .build-bench/live_bench.md
import json, math, os, re
e = os.environ
work, seconds, elapsed = e["LB_WORK"], int(e["LB_SECONDS"]), float(e["LB_ELAPSED"])
batch, fps = int(e["LB_BATCH"]), float(e["LB_FPS"])
err = open(f"{work}/daemon.err", errors="replace").read().splitlines()
out = open(f"{work}/daemon.out", errors="replace").read().splitlines()
summary = None
if out:
    try: summary = json.loads(out[-1])
    except ValueError: pass

def count(pattern): return sum(1 for l in err if re.search(pattern, l))
step_lines = [l for l in err if re.match(r"^(<\d>)?INFO ssl-daemon: step ", l)]
logged_steps = [int(m.group(1)) for l in step_lines if (m := re.search(r"\bstep=(\d+)", l))]
start = next((l for l in err if " ssl-daemon: starting " in l and "compute_threads=" in l), "")
threads = re.search(r"compute_threads=(\d+)", start)

# Server speed from -progress (speed=1.00x lines; the first seconds are skipped as warm-up).
speeds = []
try:
    for l in open(f"{work}/server.progress"):
        if l.startswith("speed="):
            v = l.strip()[6:].rstrip("x")
            try: speeds.append(float(v))
            except ValueError: pass
except FileNotFoundError: pass
steady = speeds[6:] or speeds  # about 0.5 s per progress block

# Steady-state training rate from the 5 s samples of the logged step count.
samples = [tuple(map(float, l.split("\t"))) for l in open(f"{work}/steps.tsv") if l.strip()]
steady_rate = None
if len(samples) >= 2 and samples[-1][0] > samples[0][0] and samples[-1][1] > samples[0][1]:
    (ta, sa), (tb, sb) = samples[0], samples[-1]
    steady_rate = (sb - sa) * batch / (tb - ta)

# Pairs actually trained, from the daemon's sd_notify STATUS lines: each "step N, R pairs/s, ..."
# covers the time since the previous status (the first one: since start-up, ~READY=1), so
# R x (gap between arrivals) is the pairs trained in that window.
ready_t, statuses = None, []
for l in open(f"{work}/notify.tsv", errors="replace"):
    t, _, msg = l.rstrip("\n").partition("\t")
    if msg == "READY=1" and ready_t is None: ready_t = float(t)
    m = re.match(r"STATUS=step (\d+), (\d+) pairs/s", msg)
    if m: statuses.append((float(t), int(m.group(1)), int(m.group(2))))
measured = None
if ready_t is not None and statuses and statuses[-1][1] > 0:
    prev, total = ready_t, 0.0
    for t, step, rate in statuses:
        total += rate * (t - prev)
        prev = t
    # "step N" is the learner's count after the step, i.e. N steps done.
    measured = (total, statuses[-1][1], total / statuses[-1][1])

p = lambda *a: print(*a)
p(f"## ssl-daemon live benchmark ({seconds} s, 720p25 H.264 + AAC over UDP)")
p()
p(f"- Machine: {e['LB_MACHINE']}; load avg before {e['LB_LOAD_BEFORE']}, at the end of the run {e['LB_LOAD_DURING']}")
p(f"- {e['LB_FFMPEG']}")
p(f"- Daemon: `{e['LB_DAEMON_CMD']}` (default config: decode.fps = 10, training.batch = 64"
  + (f", compute_threads = {threads.group(1)}" if threads else "") + ")")
mode = e["LB_MODE"]
if mode == "file":
    p(f"- Server (pre-encoded clip, looped, no live encoding): `{e['LB_SERVER_CMD']}`")
    p(f"  - clip {e['LB_CLIP']}: testsrc2 1280x720@25 + sine 440 Hz, libx264 -preset veryfast -tune zerolatency -g 50 -b:v 3M, AAC"
      + (f"; {e['LB_CLIP_INFO']}" if e["LB_CLIP_INFO"] else ""))
else:
    p(f"- Server (live encoding): `{e['LB_SERVER_CMD']}`")
if speeds:
    p(f"- Server speed (ffmpeg -progress): last {speeds[-1]:.3f}x, min after warm-up {min(steady):.3f}x"
      + ("  **< 1x: the server fell behind real time**" if min(steady) < 0.98 else ""))
else:
    p("- Server speed: no -progress output")
p(f"- Streamed for {elapsed:.1f} s (SECONDS = {seconds}); CPU used meanwhile: daemon {e['LB_DAEMON_CPU'] or '?'} s"
  f" ({float(e['LB_DAEMON_CPU'] or 0) / elapsed:.2f} cores), server {e['LB_SERVER_CPU'] or '?'} s"
  f" ({float(e['LB_SERVER_CPU'] or 0) / elapsed:.2f} cores)")
p(f"- Daemon exit: code {e['LB_EXIT']}" + (f", {e['LB_SHUTDOWN']} s after SIGTERM" if e["LB_SHUTDOWN"] else "")
  + ("  **the daemon died before SIGTERM**" if e["LB_DIED"] == "yes" else ""))
p()
if summary is None:
    p("**No JSON summary on the daemon's stdout.** Last stderr lines:")
    p("```"); [p(l) for l in err[-30:]]; p("```")
    raise SystemExit(0)
steps = summary["steps"]
pairs = summary["pairs"]
dropped = summary["dropped_frames"]
expected = fps * seconds
fmt = lambda v: "n/a" if v is None else f"{v:.4f}"
p("| metric | value |")
p("|---|---:|")
p(f"| steps | {steps} |")
p(f"| pairs trained/s (steps x {batch} / {seconds} s) | {steps * batch / seconds:.1f} |")
if steady_rate is not None:
    p(f"| pairs trained/s, steady state, also x {batch} (logged steps {int(samples[0][1])}->{int(samples[-1][1])} over {samples[-1][0] - samples[0][0]:.0f} s) | {steady_rate:.1f} |")
if measured:
    total, nsteps, per_step = measured
    p(f"| pairs trained/s, measured (daemon's own counter via sd_notify STATUS: {total:.0f} pairs in its first {nsteps} steps = {per_step:.1f} pairs/step; steps x {per_step:.1f} / {seconds} s) | {steps * per_step / seconds:.1f} |")
reuse = 4  # training.replay_ratio default: draws per delivered example while the stream delivers
produced = pairs["temporal"] + pairs["tracked"] + pairs["audio_video"]
p(f"| pairs trained/s, upper bound (pairs produced {produced} x replay_ratio {reuse} / {seconds} s) | {produced * reuse / seconds:.1f} |")
p(f"| pairs produced: temporal | {pairs['temporal']} |")
p(f"| pairs produced: tracked | {pairs['tracked']} |")
p(f"| pairs produced: audio_video | {pairs['audio_video']} |")
# pairing.temporal_per_second = 4: temporal pairs / 4 ≈ seconds of video paired.
p(f"| seconds of video paired, estimated from temporal pairs at 4/s | ≈{pairs['temporal'] / 4:.0f} s |")
if "pairs_trained" in summary:
    p(f"| pairs trained (the daemon's own count) | {summary['pairs_trained']} ({summary['pairs_trained'] / seconds:.1f}/s) |")
p(f"| dropped_frames (live hand-off queue) | {dropped} |")
p(f"| dropped fraction ≈ dropped / ({fps:g} fps x {seconds} s = {expected:.0f}) | {dropped / expected:.2%} |")
p(f"| loss_first (mean of first 20 steps) | {fmt(summary.get('loss_first'))} |")
p(f"| loss_last (mean of last 20 steps) | {fmt(summary.get('loss_last'))} |")
p(f"| skipped_updates | {summary['skipped_updates']} |")
p(f"| checkpoint | {summary.get('checkpoint')} |")
p()
p(f"Notes: frames kept ≈ {fps:g} x seconds is an approximation (the daemon keeps frames on a 10 fps grid"
  " and does not report how many it decoded; it ignores the ~1 s before the stream started and UDP loss)."
  f" pairs trained/s assumes the default batch of {batch} pairs per step (steps x {batch} / SECONDS,"
  " start-up included); a step trains on up to 64 pairs: 32 temporal, 16 tracked, 16 audio-video"
  " (pairing.mix), paid for by the replay credit (training.replay_ratio 4 draws per delivered pair), so it takes fewer when a kind runs short,"
  " and the measured rate is the one to trust. The daemon truncates its pairs/s to an integer per >= 2 s window,"
  " so the measured figure may be low by < 1 pair/s. Step lines: "
  + (f"{len(step_lines)} `INFO ssl-daemon: step` lines, last logged step={logged_steps[-1]}." if logged_steps else "none."))
p()
live = {k: count(rf"ssl-daemon: {k}\b") for k in ("live source connected", "live source failed", "live source ended", "reconnecting")}
p("Live source events in stderr: " + ", ".join(f"{k}: {v}" for k, v in live.items())
  + (" — **reconnects/failures happened**" if live["live source failed"] or live["reconnecting"] or live["live source ended"] else " (no failures or reconnects)"))
for l in err:
    if re.search(r"live source (failed|ended)|reconnecting|WARNING|ERROR|CRITICAL", l):
        p(f"    {l}")
p()
p(f"Summary line: `{out[-1]}`")
p()
p(f"Logs: {work}/daemon.err, daemon.out, server.err, server.progress, steps.tsv, notify.tsv")
PY
