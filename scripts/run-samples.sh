#!/usr/bin/env bash
# The README's main command: set up a fresh machine, build, and run the daemon on the bundled
# samples (with no sources configured, `ssl-daemon run` learns once over samples/clips, state in
# ./state, and prints its JSON summary). Running it again resumes from ./state: files already in the
# ledger are not redone. `rm -rf state` to start over.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release --product ssl-daemon
.build/release/ssl-daemon run
