#!/usr/bin/env bash
# The README's test command (and CI's): set up a fresh machine, build, and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build --build-tests
# The committed log-mel fixture must be exactly what the NumPy reference produces.
fixtures=$(mktemp -d)
trap 'rm -rf "$fixtures"' EXIT
.venv/bin/python benchmarks/logmel_reference.py --check --out "$fixtures"
for f in "$fixtures"/*; do
  cmp -s "$f" "Tests/StreamDecodeTests/Fixtures/$(basename "$f")" || { echo "fixture $(basename "$f") is stale: rerun benchmarks/logmel_reference.py" >&2; exit 1; }
done
swift test --disable-xctest
