#!/usr/bin/env bash
# The pairing stage alone on one core: makes a 20 s 720p25 H.264+AAC clip (moving testsrc2 with
# a tone), then runs `ssl-daemon bench pairing` on it (decoding excluded from the timing).
#   benchmarks/pairing_bench.sh [FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release --product ssl-daemon >&2
bin="$(swift build -c release --show-bin-path)/ssl-daemon"
clip=${1:-.build-bench/pairing720p.mp4}
if [ ! -f "$clip" ]; then
  mkdir -p "$(dirname "$clip")"
  ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i "testsrc2=size=1280x720:rate=25:duration=20" \
    -f lavfi -i "sine=f=440:duration=20" -c:v libx264 -preset veryfast -crf 23 -c:a aac -b:a 96k "$clip"
fi
echo "Machine: $(lscpu | sed -n 's/^Model name: *//p' | head -n 1), $(nproc) cores" >&2
for run in 1 2 3; do "$bin" bench pairing "$clip" 2>/dev/null | tail -n 1; done
