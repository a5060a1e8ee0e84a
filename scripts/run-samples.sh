#!/usr/bin/env bash
# The README's main command: set up a fresh machine, build, and run ssl-daemon on the bundled samples.
# Until the training daemon lands, the main job is `ssl-daemon probe` over samples/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release --product ssl-daemon
.build/release/ssl-daemon probe samples/
