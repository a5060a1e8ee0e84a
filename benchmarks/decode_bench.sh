#!/usr/bin/env bash
# Side-by-side decode benchmark: decode a 720p H.264 file and scale every frame to
# SIZE x SIZE RGB24 with THREADS decoder threads, three ways:
#   (a) ssl-daemon bench decode FILE --size SIZE --threads THREADS
#   (b) ffmpeg -threads THREADS -i FILE -an -vf scale=SIZE:SIZE -pix_fmt rgb24 -f null -
#   (c) benchmarks/pyav_decode.py FILE --size SIZE --threads THREADS   (PyAV, in .venv)
#
# usage: benchmarks/decode_bench.sh [--runs N=5] [--size 128] [--threads 2] [FILE]
#
# Without FILE, the clip .build-bench/clip720p.mp4 is made by make_bench_clip.sh (20 s,
# 500 frames). Runs (a), (b), (c) interleaved N times (the order rotates each run), then
# prints a markdown table (median/min/max fps, ratio vs the ffmpeg CLI) and writes it to
# .build-bench/decode_bench.md; per-run numbers go to .build-bench/decode_bench_runs.tsv.
#
# Environment:
#   SSL_DAEMON_BIN=PATH  use this ssl-daemon binary; skips `swift build`.
#   SKIP_SSL=1           leave out (a) altogether (no build, no binary needed); for
#                        testing the script before `ssl-daemon bench decode` exists.
#   CLIP_SECONDS=N       length of the generated clip (default 20); ignored with FILE.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

runs=5
size=128
threads=2
file=""
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; }
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=${2:?--runs needs a value}; shift 2 ;;
    --runs=*) runs=${1#*=}; shift ;;
    --size) size=${2:?--size needs a value}; shift 2 ;;
    --size=*) size=${1#*=}; shift ;;
    --threads) threads=${2:?--threads needs a value}; shift 2 ;;
    --threads=*) threads=${1#*=}; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "decode_bench: unknown option $1" >&2; usage; exit 2 ;;
    *)
      [ -z "$file" ] || { echo "decode_bench: only one FILE allowed" >&2; exit 2; }
      file=$1; shift ;;
  esac
done
for v in runs size threads; do
  case ${!v} in
    ''|*[!0-9]*|0) echo "decode_bench: --$v must be a positive integer, got '${!v}'" >&2; exit 2 ;;
  esac
done

log() { echo "decode_bench: $*" >&2; }
outdir=$root/.build-bench
mkdir -p "$outdir"

# --- set-up: apt packages + PyAV into .venv -------------------------------------------
log "setup (SSL_SETUP_PY=bench scripts/setup.sh)"
SSL_SETUP_PY=bench bash scripts/setup.sh
py=$root/.venv/bin/python
[ -x "$py" ] || { log "missing $py after setup"; exit 1; }

# --- ssl-daemon binary ---------------------------------------------------------------
skip_ssl=${SKIP_SSL:-0}
[ "$skip_ssl" = 0 ] || [ "$skip_ssl" = 1 ] || { log "SKIP_SSL must be 0 or 1"; exit 2; }
ssl_bin=""
if [ "$skip_ssl" = 1 ]; then
  log "SKIP_SSL=1: leaving out ssl-daemon"
elif [ -n "${SSL_DAEMON_BIN:-}" ]; then
  ssl_bin=$SSL_DAEMON_BIN
  log "using SSL_DAEMON_BIN=$ssl_bin"
else
  log "swift build -c release --product ssl-daemon"
  swift build -c release --product ssl-daemon >&2
  ssl_bin="$(swift build -c release --show-bin-path)/ssl-daemon"
fi
if [ -n "$ssl_bin" ] && [ ! -x "$ssl_bin" ]; then
  log "ssl-daemon binary not found or not executable: $ssl_bin (set SKIP_SSL=1 to leave it out)"
  exit 1
fi

# --- input clip ----------------------------------------------------------------------
if [ -z "$file" ]; then
  file=$outdir/clip720p.mp4
  bash benchmarks/make_bench_clip.sh "$file" "${CLIP_SECONDS:-20}"
fi
[ -f "$file" ] || { log "no such file: $file"; exit 1; }
file=$(cd "$(dirname "$file")" && pwd)/$(basename "$file")

clip_info=$(ffprobe -v error -count_frames -select_streams v:0 \
  -show_entries stream=codec_name,width,height,pix_fmt,avg_frame_rate,nb_read_frames \
  -of default=nw=1 "$file")
probe() { sed -n "s/^$1=//p" <<<"$clip_info"; }
expected_frames=$(probe nb_read_frames)
clip_mb=$(awk -v b="$(stat -c %s "$file")" 'BEGIN { printf "%.1f", b / 1e6 }')
log "clip: $file ($(probe codec_name) $(probe width)x$(probe height) $(probe pix_fmt)" \
    "$(probe avg_frame_rate) fps, $expected_frames frames, $clip_mb MB)"
cat "$file" >/dev/null   # warm the page cache so the first run reads from memory like the rest

# --- the three contenders --------------------------------------------------------------
# Each prints one line "frames seconds_internal seconds_wall" on stdout; its own output goes
# to $outdir/last_<tool>.{out,err} for inspection. Internal seconds: (a) and (c) time
# themselves (JSON last line); (b) has no internal timer, so its internal = wall-clock.
now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }

json_last_line() {  # FILE -> "frames seconds" from the JSON last line of stdout
  tail -n 1 "$1" | "$py" -c '
import json, sys
d = json.loads(sys.stdin.read())
print(int(d["frames"]), float(d["seconds"]))'
}

run_ssl() {
  local t0 t1 res
  t0=$(now)
  "$ssl_bin" bench decode "$file" --size "$size" --threads "$threads" \
    >"$outdir/last_ssl.out" 2>"$outdir/last_ssl.err" \
    || { log "ssl-daemon failed, see $outdir/last_ssl.err"; tail -n 20 "$outdir/last_ssl.err" >&2; return 1; }
  t1=$(now)
  res=$(json_last_line "$outdir/last_ssl.out") \
    || { log "ssl-daemon: last stdout line is not the expected JSON, see $outdir/last_ssl.out"; return 1; }
  echo "$res $(elapsed "$t0" "$t1")"
}

run_ffmpeg() {
  local t0 t1 frames wall
  t0=$(now)
  ffmpeg -hide_banner -nostdin -nostats -loglevel error -progress pipe:1 \
    -threads "$threads" -i "$file" -an -vf "scale=$size:$size" -pix_fmt rgb24 -f null - \
    >"$outdir/last_ffmpeg.out" 2>"$outdir/last_ffmpeg.err" \
    || { log "ffmpeg failed, see $outdir/last_ffmpeg.err"; tail -n 20 "$outdir/last_ffmpeg.err" >&2; return 1; }
  t1=$(now)
  frames=$(sed -n 's/^frame=//p' "$outdir/last_ffmpeg.out" | tail -n 1)
  wall=$(elapsed "$t0" "$t1")
  echo "${frames:-0} $wall $wall"
}

run_pyav() {
  local t0 t1 res
  t0=$(now)
  "$py" benchmarks/pyav_decode.py "$file" --size "$size" --threads "$threads" \
    >"$outdir/last_pyav.out" 2>"$outdir/last_pyav.err" \
    || { log "pyav_decode.py failed, see $outdir/last_pyav.err"; tail -n 20 "$outdir/last_pyav.err" >&2; return 1; }
  t1=$(now)
  res=$(json_last_line "$outdir/last_pyav.out") \
    || { log "pyav_decode.py: last stdout line is not the expected JSON, see $outdir/last_pyav.out"; return 1; }
  echo "$res $(elapsed "$t0" "$t1")"
}

tools=()
[ -n "$ssl_bin" ] && tools+=(ssl)
tools+=(ffmpeg pyav)
n_tools=${#tools[@]}

runs_tsv=$outdir/decode_bench_runs.tsv
printf 'run\ttool\tframes\tseconds\twall_seconds\n' >"$runs_tsv"
load_before=$(cut -d' ' -f1 /proc/loadavg)
for ((r = 1; r <= runs; r++)); do
  for ((k = 0; k < n_tools; k++)); do
    tool=${tools[$(((r - 1 + k) % n_tools))]}   # rotate the order each run
    res=$("run_$tool")
    read -r frames secs wall <<<"$res"
    printf '%s\t%s\t%s\t%s\t%s\n' "$r" "$tool" "$frames" "$secs" "$wall" >>"$runs_tsv"
    log "run $r/$runs $tool: $frames frames in ${secs}s (wall ${wall}s)"
  done
done

load_after=$(cut -d' ' -f1 /proc/loadavg)

# --- machine header + table -------------------------------------------------------------
cpu=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
ffmpeg_version=$(ffmpeg -version | head -n 1 | sed 's/ Copyright.*//')
pyav_versions=$("$py" -c '
import av
libs = ", ".join(k + " " + ".".join(map(str, v)) for k, v in sorted(av.library_versions.items()))
print(f"PyAV {av.__version__} (bundled FFmpeg libs: {libs})")')
ssl_libs="system libavcodec $(pkg-config --modversion libavcodec 2>/dev/null || echo '?'), libswscale $(pkg-config --modversion libswscale 2>/dev/null || echo '?')"

report=$outdir/decode_bench.md
{
  echo "Machine: ${cpu:-unknown CPU}, nproc $(nproc); $ffmpeg_version; $pyav_versions; ssl-daemon built against $ssl_libs"
  echo
  echo "Decode $(basename "$file") ($(probe width)x$(probe height) $(probe codec_name), $expected_frames frames, $clip_mb MB) -> ${size}x${size} rgb24, $threads threads, $runs runs interleaved; 1-min load average $load_before before, $load_after after (other work on the machine skews the numbers)"
  echo
  "$py" - "$runs_tsv" "$expected_frames" <<'PY'
import csv, statistics, sys
path, expected = sys.argv[1], int(sys.argv[2] or 0)
names = {"ssl": "ssl-daemon bench decode", "ffmpeg": "ffmpeg CLI", "pyav": "PyAV to_ndarray"}
rows = {}
with open(path) as f:
    for r in csv.DictReader(f, delimiter="\t"):
        rows.setdefault(r["tool"], []).append(r)

def fps_of(r, key):
    return int(r["frames"]) / float(r[key])

def table(key, title):
    med = {t: statistics.median(fps_of(r, key) for r in rs) for t, rs in rows.items()}
    base = med.get("ffmpeg")
    out = [title, "",
           "| tool | frames | median fps | min | max | ratio vs ffmpeg CLI |",
           "|---|---:|---:|---:|---:|---:|"]
    for t in ("ssl", "ffmpeg", "pyav"):
        if t not in rows:
            continue
        fps = [fps_of(r, key) for r in rows[t]]
        frames = sorted({int(r["frames"]) for r in rows[t]})
        ratio = f"{med[t] / base:.2f}x" if base else "n/a"
        out.append(f"| {names[t]} | {'/'.join(map(str, frames))} | {med[t]:.1f} | "
                   f"{min(fps):.1f} | {max(fps):.1f} | {ratio} |")
    return out

lines = table("seconds", "fps as each tool reports it (ssl-daemon, PyAV: own timer around open+decode+scale; ffmpeg CLI: whole-process wall clock)")
lines += [""] + table("wall_seconds", "fps from whole-process wall clock for all three (includes process start-up, Python/PyAV import)")
for t, rs in rows.items():
    bad = sorted({int(r["frames"]) for r in rs if int(r["frames"]) != expected})
    if expected and bad:
        lines.append(f"\nWARNING: {names[t]} reported {bad} frames, ffprobe -count_frames says {expected}")
print("\n".join(lines))
PY
} >"$report"
cat "$report"
log "wrote $report and $runs_tsv"
