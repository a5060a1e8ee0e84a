#!/usr/bin/env bash
# Soak benchmark: runs the release ssl-daemon for a long time on a watched directory of clips
# (read over and over) plus one live UDP stream, samples its memory, file descriptors, I/O and
# state directory from /proc, and reports leaks (RSS slope), the memory peak of checkpoint writes
# and the bytes that checkpoints write per hour.
#
#   bash benchmarks/soak.sh                          # one hour, default checkpoint settings
#   SOAK_SECONDS=240 SOAK_WARMUP_SECONDS=60 SOAK_CHECKPOINT_EVERY=30 SOAK_SAMPLE_SECONDS=15 \
#     bash benchmarks/soak.sh                        # a short check of the script itself
#
# Environment (all optional):
#   SOAK_SECONDS=3600          how long the daemon runs before SIGTERM
#   SOAK_SAMPLE_SECONDS=60     period of the /proc samples in the table
#   SOAK_WARMUP_SECONDS=600    samples before this are left out of the slope and the medians
#   SOAK_CHECKPOINT_EVERY=     checkpoint.every in seconds; unset: the daemon's default (300)
#   SOAK_EPOCHS=1000000        sources.epochs: the watched clips are read again and again
#   SOAK_FAST_SECONDS=0.5      period of the fast VmRSS sampler (catches checkpoint peaks)
#   SOAK_CKPT_LEAD_SECONDS=5   a checkpoint window opens this long before its .tmp file is seen
#                              (snapshot and serialisation happen before the file is created)
#   SOAK_CKPT_TAIL_SECONDS=1   ... and closes this long after its "checkpoint written" line
#   SOAK_CLIPS=samples/clips   directory whose media files are copied into the watched directory
#                              (if it does not exist, three 4 s clips are generated with ffmpeg)
#   SOAK_STREAM_CLIP=          file served, looped, as the live stream; default: the live
#                              benchmark's .build-bench/live_clip720p25.mp4 if present, else a
#                              20 s 720p25 H.264+AAC clip encoded into the work directory
#   SOAK_KEEP_STATE=0          1 keeps the checkpoints in the work directory (else deleted at the
#                              end; logs, raw samples and the report are always kept)
#   SSL_DAEMON_BIN=            the daemon binary; default: `swift build -c release`'s
#   TMPDIR=/tmp                where the work directory is created (its file system takes the
#                              checkpoint writes: use a real disk, write_bytes is 0 on tmpfs)
#
# What it does: makes a work directory with the clips, a state directory and a config (state_dir,
# sources.watch, sources.streams, sources.epochs, and checkpoint.every only when overridden);
# starts the daemon (`ssl-daemon run --config FILE`), a fast sampler
# (benchmarks/soak_report.py fast: VmRSS/VmHWM, .ckpt-*.tmp files, and the time each stderr line
# appears, every SOAK_FAST_SECONDS) and the stream server (`ffmpeg -re -stream_loop -1 -i CLIP
# -c copy -f mpegts udp://127.0.0.1:PORT`); every SOAK_SAMPLE_SECONDS reads /proc/PID/status
# (VmRSS, VmHWM, Threads), counts /proc/PID/fd, reads /proc/PID/io (rchar, wchar, write_bytes,
# cancelled_write_bytes) and `du -sb` of the state directory; after SOAK_SECONDS sends SIGTERM,
# waits for the exit (final checkpoint), and prints the report (benchmarks/soak_report.py report),
# also saved as WORK/report.md. Exit status 0, or 1 if the daemon crashed (died before SIGTERM,
# or exited non-zero after it). The goals in the report are information, not the exit status.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."

seconds=${SOAK_SECONDS:-3600}
sample_s=${SOAK_SAMPLE_SECONDS:-60}
warmup=${SOAK_WARMUP_SECONDS:-600}
ckpt_every=${SOAK_CHECKPOINT_EVERY:-}
epochs=${SOAK_EPOCHS:-1000000}
fast_s=${SOAK_FAST_SECONDS:-0.5}
lead=${SOAK_CKPT_LEAD_SECONDS:-5}
tail_s=${SOAK_CKPT_TAIL_SECONDS:-1}
clips_from=${SOAK_CLIPS:-samples/clips}
keep_state=${SOAK_KEEP_STATE:-0}

die() { echo "soak: $*" >&2; exit 2; }
is_int() { [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -gt 0 ]; }
is_num() { [[ $1 =~ ^([0-9]+([.][0-9]*)?|[.][0-9]+)$ ]]; }
is_int "$seconds" || die "SOAK_SECONDS must be a positive integer, got '$seconds'"
is_int "$sample_s" || die "SOAK_SAMPLE_SECONDS must be a positive integer, got '$sample_s'"
[[ $warmup =~ ^[0-9]+$ ]] || die "SOAK_WARMUP_SECONDS must be an integer >= 0, got '$warmup'"
is_int "$epochs" || die "SOAK_EPOCHS must be a positive integer, got '$epochs'"
[ -z "$ckpt_every" ] || { is_num "$ckpt_every" && [ "$(awk -v v="$ckpt_every" 'BEGIN{print (v > 0)}')" = 1 ]; } \
  || die "SOAK_CHECKPOINT_EVERY must be a number of seconds > 0, got '$ckpt_every'"
is_num "$fast_s" || die "SOAK_FAST_SECONDS must be a number, got '$fast_s'"
is_num "$lead" || die "SOAK_CKPT_LEAD_SECONDS must be a number, got '$lead'"
is_num "$tail_s" || die "SOAK_CKPT_TAIL_SECONDS must be a number, got '$tail_s'"
[ "$warmup" -lt "$seconds" ] || echo "soak: warning: SOAK_WARMUP_SECONDS >= SOAK_SECONDS, no samples after warm-up" >&2

for tool in ffmpeg ffprobe python3 du awk; do
  command -v "$tool" >/dev/null || { echo "soak: $tool not found (run bash scripts/setup.sh)" >&2; exit 1; }
done

if [ -n "${SSL_DAEMON_BIN:-}" ]; then
  bin=$SSL_DAEMON_BIN
else
  swift build -c release --product ssl-daemon >&2
  bin="$(swift build -c release --show-bin-path)/ssl-daemon"
fi
[ -x "$bin" ] || { echo "soak: $bin is not executable" >&2; exit 1; }
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

now() { date +%s.%N; }

work=$(mktemp -d "${TMPDIR:-/tmp}/ssl-soak.XXXXXX")
state="$work/state"
dpid="" spid="" fpid=""
cleanup() {
  # Only the processes this script started, by pid.
  [ -n "$fpid" ] && kill "$fpid" 2>/dev/null || true
  [ -n "$spid" ] && kill "$spid" 2>/dev/null || true
  [ -n "$dpid" ] && kill -KILL "$dpid" 2>/dev/null || true
  if [ "$keep_state" != 1 ] && [ -d "$state/checkpoints" ]; then
    rm -f "$state"/checkpoints/ckpt-*.safetensors "$state"/checkpoints/.ckpt-*.tmp 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- Inputs ---------------------------------------------------------------------------------
mkdir -p "$work/clips" "$state"
if [ -d "$clips_from" ] && compgen -G "$clips_from/*" >/dev/null; then
  cp "$clips_from"/* "$work/clips/"
else
  echo "soak: $clips_from not found; generating three 4 s clips with ffmpeg" >&2
  clips_from="generated (testsrc2/mandelbrot/life + sine, 320x240, 25 fps, 4 s)"
  i=0
  for src in "testsrc2=size=320x240:rate=25" "mandelbrot=size=320x240:rate=25" "life=size=320x240:rate=25:mold=8:ratio=0.2"; do
    i=$((i + 1))
    ffmpeg -nostdin -loglevel error -y -f lavfi -i "$src" -f lavfi -i "sine=f=$((300 + 110 * i))" -t 4 \
      -c:v libx264 -preset veryfast -pix_fmt yuv420p -g 25 -c:a aac -b:a 64k "$work/clips/gen$i.mp4"
  done
fi
n_clips=$(find "$work/clips" -maxdepth 1 -type f | wc -l)
clip_seconds=$(for f in "$work/clips"/*; do ffprobe -v error -show_entries format=duration -of csv=p=0 "$f" 2>/dev/null || true; done \
  | awk '{ s += $1 } END { printf "%.1f s of media in all", s }')

stream_clip=${SOAK_STREAM_CLIP:-}
if [ -z "$stream_clip" ] && [ -s .build-bench/live_clip720p25.mp4 ]; then
  stream_clip=.build-bench/live_clip720p25.mp4
fi
if [ -n "$stream_clip" ]; then
  [ -s "$stream_clip" ] || { echo "soak: stream clip $stream_clip not found" >&2; exit 1; }
  stream_info="$stream_clip"
else
  stream_clip="$work/stream720p25.mp4"
  echo "soak: encoding the 20 s 720p25 stream clip (libx264 veryfast zerolatency 3M + AAC)" >&2
  ffmpeg -nostdin -loglevel error -y \
    -f lavfi -i "testsrc2=size=1280x720:rate=25" -f lavfi -i "sine=f=440" -t 20 \
    -c:v libx264 -preset veryfast -tune zerolatency -g 50 -b:v 3M -pix_fmt yuv420p -c:a aac \
    -movflags +faststart -f mp4 "$stream_clip"
  stream_info="testsrc2 1280x720@25 + sine 440 Hz, 20 s, libx264 veryfast zerolatency 3 Mbit/s + AAC, in the work directory"
fi

port=$(python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="udp://127.0.0.1:$port"

cfg="$work/soak.toml"
{
  echo "# ssl-daemon soak config: everything else is the daemon's default."
  echo "state_dir = \"$state\""
  echo
  echo "[sources]"
  echo "watch = [\"$work/clips\"]"
  echo "streams = [\"$url\"]"
  echo "epochs = $epochs"
  if [ -n "$ckpt_every" ]; then
    echo
    echo "[checkpoint]"
    echo "every = $ckpt_every"
  fi
} > "$cfg"

# The effective settings, as the daemon sees them.
"$bin" run --config "$cfg" --print-config > "$work/effective.toml"
eff() { # SECTION KEY
  awk -v sec="$1" -v key="$2" '
    /^\[/ { cur = $0; gsub(/[][]/, "", cur); next }
    cur == sec && $1 == key { v = $3; gsub(/"/, "", v); print v; exit }' "$work/effective.toml"
}
eff_every=$(eff checkpoint every)
eff_keep=$(eff checkpoint keep)
eff_buffer=$(eff pairing buffer_bytes)
eff_epochs=$(eff sources epochs)
[ -n "$eff_every" ] || { echo "soak: could not read checkpoint.every from --print-config" >&2; exit 1; }

# --- Run ------------------------------------------------------------------------------------
daemon_cmd=("$bin" run --config "$cfg")
server_cmd=(ffmpeg -nostdin -loglevel error -re -stream_loop -1 -i "$stream_clip" -c copy -f mpegts "$url?pkt_size=1316")

: > "$work/samples.tsv"
"${daemon_cmd[@]}" > "$work/daemon.out" 2> "$work/daemon.err" &
dpid=$!
t_start=$(now)
python3 -u "$here/soak_report.py" fast --pid "$dpid" --state "$state" --err "$work/daemon.err" \
  --work "$work" --interval "$fast_s" > "$work/fast.out" 2>&1 &
fpid=$!
sleep 1
if ! kill -0 "$dpid" 2>/dev/null; then
  echo "soak: the daemon exited during start-up; its stderr:" >&2
  cat "$work/daemon.err" >&2
  exit 1
fi
"${server_cmd[@]}" > "$work/server.out" 2> "$work/server.err" &
spid=$!
echo "soak: daemon pid $dpid, server pid $spid ($url), ${seconds} s; work directory $work" >&2

# One row of samples.tsv:
#   t rss_kib hwm_kib fds threads rchar wchar write_bytes cancelled_write_bytes state_bytes ledger_bytes
sample() {
  local pid=$1 t status io fds state_b ledger_b
  t=$(now)
  status=$(cat "/proc/$pid/status" 2>/dev/null) || return 1
  io=$(cat "/proc/$pid/io" 2>/dev/null) || return 1
  fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
  state_b=$({ du -sb "$state" 2>/dev/null || true; } | awk 'NR == 1 { print $1 }')
  ledger_b=$(stat -c %s "$state/ledger.jsonl" 2>/dev/null || echo 0)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" \
    "$(awk '/^VmRSS:/ { print $2 }' <<<"$status")" "$(awk '/^VmHWM:/ { print $2 }' <<<"$status")" \
    "$fds" "$(awk '/^Threads:/ { print $2 }' <<<"$status")" \
    "$(awk '$1 == "rchar:" { print $2 }' <<<"$io")" "$(awk '$1 == "wchar:" { print $2 }' <<<"$io")" \
    "$(awk '$1 == "write_bytes:" { print $2 }' <<<"$io")" "$(awk '$1 == "cancelled_write_bytes:" { print $2 }' <<<"$io")" \
    "${state_b:-0}" "$ledger_b" >> "$work/samples.tsv"
}

died_early="" server_died=""
k=0
while :; do
  target=$(awk -v t0="$t_start" -v k="$k" -v n="$sample_s" -v end="$seconds" \
    'BEGIN { x = k * n; if (x > end) x = end; printf "%.3f", t0 + x }')
  # Sleep towards the target in steps of at most 1 s, noticing a dead daemon at once.
  while :; do
    if ! kill -0 "$dpid" 2>/dev/null || [ "$(awk -v p="$dpid" '$1 == "State:" { print $2 }' "/proc/$dpid/status" 2>/dev/null)" = Z ]; then
      died_early=1; break 2
    fi
    if [ -z "$server_died" ] && ! kill -0 "$spid" 2>/dev/null; then
      server_died=1; echo "soak: the stream server exited early (see $work/server.err)" >&2
    fi
    left=$(awk -v tg="$target" -v now="$(now)" 'BEGIN { d = tg - now; if (d > 1) d = 1; if (d < 0) d = 0; printf "%.3f", d }')
    [ "$left" = 0.000 ] && break
    sleep "$left"
  done
  sample "$dpid" || { died_early=1; break; }
  done_s=$(awk -v t0="$t_start" -v now="$(now)" -v end="$seconds" 'BEGIN { print (now - t0 >= end - 0.001) ? 1 : 0 }')
  [ "$done_s" = 1 ] && break
  k=$((k + 1))
done

# --- Stop ------------------------------------------------------------------------------------
t_sigterm="" shutdown_s=""
if [ -z "$died_early" ]; then
  t_sigterm=$(now)
  kill -TERM "$dpid"
  # Keep sampling (slowly) through the shutdown checkpoint; give it the grace time and more.
  for _ in $(seq 1 900); do
    kill -0 "$dpid" 2>/dev/null || break
    [ "$(awk '$1 == "State:" { print $2 }' "/proc/$dpid/status" 2>/dev/null)" = Z ] && break
    sleep 0.1
  done
  if kill -0 "$dpid" 2>/dev/null && [ "$(awk '$1 == "State:" { print $2 }' "/proc/$dpid/status" 2>/dev/null)" != Z ]; then
    echo "soak: the daemon is still running 90 s after SIGTERM; killing it" >&2
    kill -KILL "$dpid" 2>/dev/null || true
  fi
  shutdown_s=$(awk -v a="$t_sigterm" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
fi
set +e; wait "$dpid"; exit_code=$?; set -e
t_exit=$(now)
dpid=""
set +e; wait "$fpid" 2>/dev/null; set -e
fpid=""
kill "$spid" 2>/dev/null || true
set +e; wait "$spid" 2>/dev/null; set -e
spid=""

crashed=""
[ -n "$died_early" ] && crashed=1
[ "$exit_code" -ne 0 ] && crashed=1
state_final=$({ du -sb "$state" 2>/dev/null || true; } | awk 'NR == 1 { print $1 }')
ledger_bytes=$(stat -c %s "$state/ledger.jsonl" 2>/dev/null || echo 0)
ledger_lines=$(wc -l < "$state/ledger.jsonl" 2>/dev/null || echo 0)

# --- Report ----------------------------------------------------------------------------------
soak_cmd="SOAK_SECONDS=$seconds SOAK_SAMPLE_SECONDS=$sample_s SOAK_WARMUP_SECONDS=$warmup"
soak_cmd+="${ckpt_every:+ SOAK_CHECKPOINT_EVERY=$ckpt_every} SOAK_EPOCHS=$epochs SOAK_FAST_SECONDS=$fast_s"
soak_cmd+=" SOAK_CKPT_LEAD_SECONDS=$lead SOAK_CKPT_TAIL_SECONDS=$tail_s SSL_DAEMON_BIN=$bin bash benchmarks/soak.sh"
M_T_START=$t_start M_T_SIGTERM=$t_sigterm M_T_EXIT=$t_exit M_SECONDS=$seconds M_SAMPLE_SECONDS=$sample_s \
M_FAST_SECONDS=$fast_s M_WARMUP_SECONDS=$warmup M_CHECKPOINT_EVERY=$eff_every \
M_CHECKPOINT_EVERY_OVERRIDDEN=${ckpt_every:+1} M_CHECKPOINT_KEEP=$eff_keep M_BUFFER_BYTES=$eff_buffer \
M_EPOCHS=$eff_epochs M_CKPT_LEAD_SECONDS=$lead M_CKPT_TAIL_SECONDS=$tail_s \
M_EXIT_CODE=$exit_code M_DIED_EARLY=$died_early M_CRASHED=$crashed M_SHUTDOWN_SECONDS=$shutdown_s \
M_SERVER_DIED=$server_died M_STATE_BYTES_FINAL=${state_final:-0} M_LEDGER_BYTES=$ledger_bytes M_LEDGER_LINES=$ledger_lines \
M_N_CLIPS=$n_clips M_CLIPS_FROM=$clips_from M_CLIP_SECONDS="$clip_seconds" M_STREAM_CLIP_INFO="$stream_info" \
M_NPROC="$(nproc)" M_CPU_MODEL="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" \
M_MEM_TOTAL="$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)" \
M_KERNEL="$(uname -srm)" M_FFMPEG_VERSION="$(ffmpeg -version | head -n 1)" \
M_BIN="$bin" M_BIN_MTIME="$(date -r "$bin" '+%Y-%m-%d %H:%M:%S %Z')" \
M_GIT_HEAD="$(git rev-parse --short HEAD 2>/dev/null || echo unknown) (the working tree may differ)" \
M_SOAK_CMD="$soak_cmd" M_DAEMON_CMD="${daemon_cmd[*]}" M_SERVER_CMD="${server_cmd[*]}" \
python3 -c '
import json, os, sys
json.dump({k[2:].lower(): v for k, v in os.environ.items() if k.startswith("M_")}, open(sys.argv[1], "w"), indent=1)
' "$work/meta.json"

python3 "$here/soak_report.py" report --work "$work" | tee "$work/report.md"
[ "$keep_state" = 1 ] || echo "soak: checkpoints deleted (SOAK_KEEP_STATE=1 keeps them); logs and samples stay in $work" >&2

if [ -n "$crashed" ]; then
  echo "soak: the daemon crashed (exit code $exit_code${died_early:+, died before SIGTERM})" >&2
  exit 1
fi
exit 0
