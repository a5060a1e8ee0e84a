#!/usr/bin/env bash
# Side-by-side training benchmark: the reference MoCo workload in ssl-daemon and in PyTorch eager,
# interleaved run by run on the same machine, for 1 and 2 threads.
#
#   benchmarks/train_bench.sh [--runs N=3] [--steps N=30]
#
# ssl-daemon is timed twice per run: with OpenBLAS's kernels as the environment selects them
# (OPENBLAS_CORETYPE as set, or OpenBLAS's own CPU detection when unset) and with its AVX-512
# kernels (OPENBLAS_CORETYPE=SkylakeX), when the CPU has AVX-512. Installs PyTorch into .venv
# (SSL_SETUP_PY=torch). Writes the table to .build-bench/train_bench.md.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=3 steps=30
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--steps N]" >&2; exit 2 ;;
  esac
done

SSL_SETUP_PY=torch bash scripts/setup.sh
swift build -c release --product ssl-daemon >&2
bin="$(swift build -c release --show-bin-path)/ssl-daemon"
py=.venv/bin/python
mkdir -p .build-bench
results=.build-bench/train_bench_runs.tsv
: > "$results"

avx512=no
grep -q ' avx512f ' /proc/cpuinfo && grep -q ' avx512bw ' /proc/cpuinfo && grep -q ' avx512vl ' /proc/cpuinfo && avx512=yes
env_kernel="${OPENBLAS_CORETYPE:-auto-detected}"

field() { sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p" | tail -n 1; }

for run in $(seq 1 "$runs"); do
  for threads in 1 2; do
    out=$("$py" benchmarks/train_reference_torch.py --threads "$threads" --steps "$steps" 2>/dev/null | tail -n 1)
    printf 'pytorch\t%s\t%s\t%s\n' "$threads" "$(echo "$out" | field pairs_per_second)" "$(echo "$out" | field gflops)" >> "$results"
    out=$("$bin" bench train --threads "$threads" --steps "$steps" 2>/dev/null | tail -n 1)
    printf 'ssl-daemon (OpenBLAS %s)\t%s\t%s\t%s\n' "$env_kernel" "$threads" "$(echo "$out" | field pairs_per_second)" "$(echo "$out" | field gflops)" >> "$results"
    if [ "$avx512" = yes ]; then
      out=$(OPENBLAS_CORETYPE=SkylakeX "$bin" bench train --threads "$threads" --steps "$steps" 2>/dev/null | tail -n 1)
      printf 'ssl-daemon (OpenBLAS SkylakeX, AVX-512)\t%s\t%s\t%s\n' "$threads" "$(echo "$out" | field pairs_per_second)" "$(echo "$out" | field gflops)" >> "$results"
    fi
    echo "train_bench: run $run/$runs, $threads thread(s) done" >&2
  done
done

torch_version=$("$py" -c 'import torch; print(torch.__version__)')
{
  echo "Machine: $(lscpu | sed -n 's/^Model name: *//p' | head -n 1), $(nproc) cores; PyTorch $torch_version (eager, CPU); OpenBLAS as Debian ships it"
  echo
  echo "Reference MoCo workload (batch 64 pairs, 3x64x64, queue 4096), $steps timed steps, $runs runs interleaved; median (min-max) pairs/s"
  echo
  echo "| implementation | threads | pairs/s | GFLOP/s | vs PyTorch |"
  echo "|---|---:|---:|---:|---:|"
  "$py" - "$results" <<'PY'
import sys, statistics, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    tool, threads, pairs, gflops = line.rstrip("\n").split("\t")
    if pairs:
        rows[(tool, int(threads))].append((float(pairs), float(gflops)))
for threads in (1, 2):
    base = statistics.median(p for p, _ in rows[("pytorch", threads)]) if rows[("pytorch", threads)] else None
    for (tool, t), values in rows.items():
        if t != threads:
            continue
        pairs = [p for p, _ in values]
        med = statistics.median(pairs)
        ratio = f"{med / base:.2f}x" if base else "n/a"
        print(f"| {tool} | {t} | {med:.0f} ({min(pairs):.0f}-{max(pairs):.0f}) | {statistics.median(g for _, g in values):.1f} | {ratio} |")
PY
} | tee .build-bench/train_bench.md
