#!/usr/bin/env bash
# Makes the 720p H.264 clip used by the decode benchmark.
#   usage: benchmarks/make_bench_clip.sh OUT [SECONDS=20]
# 1280x720, 25 fps, yuv420p, libx264 preset medium crf 23, GOP 50, 2 B-frames, no audio.
# Content: testsrc2 (moving pattern + counters) with temporal noise, so it is not trivially
# compressible and the decoder does real work on every frame. Does nothing if OUT exists.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 OUT [SECONDS=20]" >&2
  exit 2
fi
out=$1
seconds=${2:-20}
case $seconds in
  ''|*[!0-9]*) echo "make_bench_clip: SECONDS must be a positive integer, got '$seconds'" >&2; exit 2 ;;
esac

if [ -e "$out" ]; then
  echo "make_bench_clip: $out exists, skipping" >&2
  exit 0
fi

mkdir -p "$(dirname "$out")"
# Write to a temporary name in the same directory and rename at the end, so an interrupted
# encode never leaves a truncated file that later runs would take as finished.
tmp="$(dirname "$out")/.tmp.$$.$(basename "$out")"
trap 'rm -f "$tmp"' EXIT

ffmpeg -hide_banner -loglevel error -nostdin -y \
  -f lavfi -i "testsrc2=size=1280x720:rate=25:duration=${seconds},noise=alls=12:allf=t" \
  -an -c:v libx264 -preset medium -crf 23 -g 50 -bf 2 -pix_fmt yuv420p \
  -movflags +faststart -f mp4 "$tmp"
mv -f "$tmp" "$out"
trap - EXIT
echo "make_bench_clip: wrote $out" >&2
