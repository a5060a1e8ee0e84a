#!/usr/bin/env bash
# Builds the libFuzzer targets under Fuzz/ (with AddressSanitizer) and runs each for a bounded time
# on a copy of its seed corpus (Fuzz/corpus/<name>/ never grows). Fails, naming the target and
# the crashing input, when any target finds a crash, a leak, a timeout or an out-of-memory input.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]   fuzz every target (default 60 s each)
#   scripts/fuzz.sh --replay               replay every seed corpus through a normal debug build
#                                          (no libFuzzer): the regression run, e.g. for CI
#
# Environment: FUZZ_TARGETS (space-separated subset, e.g. "FuzzConfig FuzzLedger"),
# FUZZ_JOBS (parallel targets, default 1), FUZZ_CONFIGURATION (release or debug, default release),
# FUZZ_ARGS (extra libFuzzer flags, e.g. "-fork=1 -ignore_crashes=1" to keep going past crashes),
# FUZZ_NO_BUILD=1 (run the binaries already built). Runs go to .build-fuzz/runs/<time>/<target>/
# (log, grown corpus, artifacts).
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A corpus=([FuzzSafeTensors]=safetensors [FuzzCheckpoint]=checkpoint [FuzzConfig]=config [FuzzLedger]=ledger)
# Extra libFuzzer flags per target (none needed now).
declare -A target_flags=()
targets=(${FUZZ_TARGETS:-FuzzSafeTensors FuzzCheckpoint FuzzConfig FuzzLedger})
for t in "${targets[@]}"; do
  [ -n "${corpus[$t]:-}" ] || { echo "fuzz: unknown target $t (known: ${!corpus[*]})" >&2; exit 2; }
done

if [ "${1:-}" = "--replay" ]; then
  flags=(--scratch-path .build-fuzz/replay)
  for t in "${targets[@]}"; do swift build "${flags[@]}" --product "$t"; done
  bin=$(swift build "${flags[@]}" --show-bin-path)
  for t in "${targets[@]}"; do "$bin/$t" "Fuzz/corpus/${corpus[$t]}"; done
  exit 0
fi

seconds=${1:-60}
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || { echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] | --replay" >&2; exit 2; }

# SwiftPM hands swiftc one -sanitize= flag per sanitizer, and swiftc compiles with the last one
# only (the link gets both): without the combined flag Swift code has no coverage instrumentation
# and libFuzzer runs blind ("no interesting inputs were found so far").
flags=(-c "${FUZZ_CONFIGURATION:-release}" --scratch-path .build-fuzz
  --sanitize fuzzer --sanitize address -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING)
if [ -z "${FUZZ_NO_BUILD:-}" ]; then
  for t in "${targets[@]}"; do swift build "${flags[@]}" --product "$t"; done
fi
bin=$(swift build "${flags[@]}" --show-bin-path)

run_dir=.build-fuzz/runs/$(date +%Y%m%d-%H%M%S)
mkdir -p "$run_dir"
# The harnesses' scratch files (FuzzSafeTensors, FuzzLedger write some per input) go to memory when
# possible, in a directory of this run's own that is removed at exit (a crashing harness cannot
# remove its own).
scratch_base=/tmp
if [ -d /dev/shm ] && [ -w /dev/shm ]; then scratch_base=/dev/shm; fi
TMPDIR=$(mktemp -d "$scratch_base/ssl-daemon-fuzz-run.XXXXXX")
export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT
# Leaks inside the toolchain's libraries, each explained in the file.
export LSAN_OPTIONS="suppressions=$PWD/Fuzz/lsan-suppressions.txt:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"

fuzz_one() {
  local t=$1 dir=$run_dir/$1
  mkdir -p "$dir/corpus" "$dir/artifacts"
  cp -R "Fuzz/corpus/${corpus[$t]}/." "$dir/corpus/"
  local status=0 dict=() start=$SECONDS
  [ -f "Fuzz/dictionaries/${corpus[$t]}.dict" ] && dict=(-dict="Fuzz/dictionaries/${corpus[$t]}.dict")
  # SWIFT_BACKTRACE=enable=no: libFuzzer's and ASan's handlers report a crash, not Swift's
  # backtracer (which would hold the crashing process and its pipes for a while).
  # shellcheck disable=SC2086
  SWIFT_BACKTRACE=enable=no "$bin/$t" -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 "${dict[@]}" -artifact_prefix="$PWD/$dir/artifacts/" ${target_flags[$t]:-} ${FUZZ_ARGS:-} \
    "$dir/corpus" >"$dir/log" 2>&1 || status=$?
  echo "$status" >"$dir/status"
  echo $((SECONDS - start)) >"$dir/seconds"
}

pids=()
for t in "${targets[@]}"; do
  echo "fuzz: $t for ${seconds}s (log: $run_dir/$t/log)" >&2
  fuzz_one "$t" &
  pids+=($!)
  if [ "${#pids[@]}" -ge "${FUZZ_JOBS:-1}" ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p"; done

failed=0
echo
printf '%-16s %12s %8s  %s\n' target executions seconds result  # seconds: wall time of the run
for t in "${targets[@]}"; do
  dir=$run_dir/$t log=$run_dir/$t/log
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  # -fork mode prints no final stats: take its last progress line ("#N: cov: ...").
  [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\): cov:.*/\1/p' "$log" | tail -1)
  time=$(cat "$dir/seconds")
  grep -q '^INFO: Seed:' "$log" || echo "fuzz: $t: no libFuzzer banner in $log: was it linked with -sanitize=fuzzer?" >&2
  artifacts=$(find "$dir/artifacts" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | sort)
  status=$(cat "$dir/status")
  if [ "$status" = 0 ] && [ -z "$artifacts" ]; then
    result=ok
  else
    failed=1
    count=$(echo "$artifacts" | grep -c . || true)
    result="FAILED (exit $status)${artifacts:+: $count inputs in $dir/artifacts/}"
    echo "fuzz: $t failed; its first report:" >&2
    grep -E -A40 '^==[0-9]+==ERROR|deadly signal|Fatal error|fuzz invariant|^SUMMARY' "$log" | head -80 >&2 || tail -40 "$log" >&2
    echo "$artifacts" | head -5 | while read -r a; do
      [ -n "$a" ] && echo "fuzz: $t: crashing input $a (replay: $bin/$t $a)" >&2
    done
  fi
  printf '%-16s %12s %8s  %s\n' "$t" "${execs:-?}" "${time:-?}" "$result"
done
exit "$failed"
