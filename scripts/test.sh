#!/usr/bin/env bash
# The README's test command (and CI's): set up a fresh machine, build, and run every test; then
# again under AddressSanitizer and ThreadSanitizer, each in its own scratch directory (.build-asan,
# .build-tsan); which tests each runs, and why, is in scripts/sanitizers.sh.
# SSL_SANITIZERS picks the sanitizer stages ("address thread" by default; empty for none).
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
for sanitizer in ${SSL_SANITIZERS-address thread}; do
  bash scripts/sanitizers.sh "$sanitizer"
done
# Each libFuzzer target briefly (SSL_FUZZ_SECONDS each, 0 skips); scripts/fuzz.sh 600 for a long run.
if [ "${SSL_FUZZ_SECONDS:-15}" -gt 0 ]; then
  bash scripts/fuzz.sh "${SSL_FUZZ_SECONDS:-15}"
fi
