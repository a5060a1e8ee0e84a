#!/usr/bin/env bash
# End to end over a directory: wall time of `ssl-daemon run --once` over a fixed corpus of clips
# (decode, pairing, training) against the same job written with PyTorch and PyAV
# (benchmarks/end_to_end_torch.py: DataLoader workers decoding with PyAV, the same temporal
# sampling and augmentation, the reference MoCo step), trained on as many pairs as the daemon
# trained. Runs are interleaved.
#
#   benchmarks/end_to_end.sh [--runs N=3] [--clips N=6] [--seconds S=20] [--workers N=1]
#
# The corpus (.build-bench/corpus-N-S/) is made once with the ffmpeg CLI: N clips of S seconds,
# 640x360 25 fps H.264 (libx264 veryfast, GOP 50, B-frames), each from a different lavfi source
# with temporal noise. The daemon's config keeps only temporal pairs (no tracks, no audio), as the
# PyTorch job does. Installs PyTorch and PyAV into .venv (SSL_SETUP_PY="bench torch").
set -euo pipefail
cd "$(dirname "$0")/.."
runs=3 clips=6 seconds=20 workers=1
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --clips) clips=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--clips N] [--seconds S] [--workers N]" >&2; exit 2 ;;
  esac
done
SSL_SETUP_PY="bench torch" bash scripts/setup.sh
if [ -z "${SSL_DAEMON_BIN:-}" ]; then
  swift build -c release --product ssl-daemon >&2
  bin="$(swift build -c release --show-bin-path)/ssl-daemon"
else
  bin=$SSL_DAEMON_BIN
fi
py=.venv/bin/python
corpus=.build-bench/corpus-$clips-$seconds
sources=(testsrc2 mandelbrot "life=s=640x360:mold=10:r=25:ratio=0.1" rgbtestsrc smptehdbars "cellauto=s=640x360:rule=110")
mkdir -p "$corpus"
for i in $(seq 0 $((clips - 1))); do
  out="$corpus/clip$i.mp4"
  [ -s "$out" ] && continue
  src=${sources[$((i % ${#sources[@]}))]}
  case $src in *=*) lavfi="$src" ;; *) lavfi="$src=size=640x360:rate=25" ;; esac
  ffmpeg -nostdin -loglevel error -y -f lavfi -i "$lavfi" -t "$seconds" \
    -vf "noise=alls=8:allf=t,format=yuv420p,scale=640:360" -r 25 -c:v libx264 -preset veryfast -g 50 -bf 2 "$out.tmp.mp4"
  mv -f "$out.tmp.mp4" "$out"
done

work=$(mktemp -d /tmp/end_to_end.XXXXXX)
cat > "$work/config.toml" <<TOML
[sources]
watch = ["$PWD/$corpus"]
[http]
listen = ""
[objective]
kind = "moco"
[pairing]
track_start_interval = 3600.0
[pairing.mix]
temporal = 1.0
tracked = 0.0
audio_video = 0.0
TOML
results=.build-bench/end_to_end_runs.tsv
: > "$results"
now() { date +%s.%N; }
for run in $(seq 1 "$runs"); do
  rm -rf "$work/state"
  t0=$(now)
  "$bin" run --once --config "$work/config.toml" --state-dir "$work/state" > "$work/daemon.out" 2> "$work/daemon.err"
  t1=$(now)
  summary=$(tail -n 1 "$work/daemon.out")
  trained=$(echo "$summary" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pairs_trained"])')
  produced=$(echo "$summary" | python3 -c 'import json,sys; s=json.load(sys.stdin); print(sum(s["pairs"].values()))')
  printf 'ssl-daemon run --once\t%s\t%s\t%s\n' "$(python3 -c "print(round($t1 - $t0, 2))")" "$trained" "$produced" >> "$results"
  t0=$(now)
  out=$("$py" benchmarks/end_to_end_torch.py "$corpus" --pairs "$trained" --workers "$workers" 2> "$work/torch.err" | tail -n 1)
  t1=$(now)
  printf 'PyTorch + PyAV DataLoader (%s worker(s))\t%s\t%s\t%s\n' "$workers" "$(python3 -c "print(round($t1 - $t0, 2))")" \
    "$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pairs_trained"])')" \
    "$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pairs_per_epoch"])')" >> "$results"
  echo "end_to_end: run $run/$runs done" >&2
done
{
  echo "Machine: $(lscpu | sed -n 's/^Model name: *//p' | head -n 1), $(nproc) cores; corpus: $clips clips x ${seconds} s, 640x360 25 fps H.264; PyTorch $("$py" -c 'import torch; print(torch.__version__)'), PyAV $("$py" -c 'import av; print(av.__version__)')"
  echo
  echo "| job | wall seconds, median (min-max) | pairs trained | pairs produced (per epoch) | vs PyTorch |"
  echo "|---|---:|---:|---:|---:|"
  python3 - "$results" <<'PY'
import sys, statistics, collections
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    job, secs, trained, produced = line.rstrip("\n").split("\t")
    rows.setdefault(job, []).append((float(secs), int(trained), int(produced)))
torch = [statistics.median(s for s, _, _ in v) for k, v in rows.items() if k.startswith("PyTorch")]
for job, v in rows.items():
    s = [x[0] for x in v]
    ratio = f"{torch[0] / statistics.median(s):.2f}x" if torch else ""
    print(f"| {job} | {statistics.median(s):.1f} ({min(s):.1f}-{max(s):.1f}) | {statistics.median(x[1] for x in v):.0f} | {statistics.median(x[2] for x in v):.0f} | {ratio} |")
PY
} | tee .build-bench/end_to_end.md
echo "logs: $work" >&2
