#!/usr/bin/env bash
# Live capacity: the largest number of concurrent 720p25 H.264+AAC UDP streams one ssl-daemon
# (default config, 2 cores) ingests with <= 1 % of frames lost per stream and every example trained
# at least once. See benchmarks/live_capacity.py for what is measured.
#
#   benchmarks/live_capacity.sh [--seconds 60] [--start 8] [--step 8] [--max 64] [--warmup 10]
#
# Uses the 60 s clip that live_bench.sh encodes (.build-bench/live_clip720p25.mp4; made here if
# missing, with the same settings). SSL_DAEMON_BIN=/path/to/ssl-daemon skips the build.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${SSL_DAEMON_BIN:-}" ]; then
  bin=$SSL_DAEMON_BIN
else
  swift build -c release --product ssl-daemon >&2
  bin="$(swift build -c release --show-bin-path)/ssl-daemon"
fi
mkdir -p .build-bench
clip=.build-bench/live_clip720p25.mp4
if [ ! -s "$clip" ]; then
  tmp=".build-bench/.tmp.$$.live_clip720p25.mp4"
  ffmpeg -nostdin -loglevel error -y -f lavfi -i "testsrc2=size=1280x720:rate=25" -f lavfi -i "sine=f=440" -t 60 \
    -c:v libx264 -preset veryfast -tune zerolatency -g 50 -b:v 3M -pix_fmt yuv420p -c:a aac -movflags +faststart -f mp4 "$tmp"
  mv -f "$tmp" "$clip"
fi
exec python3 benchmarks/live_capacity.py --bin "$bin" --clip "$clip" "$@"
