#!/usr/bin/env bash
# What data-parallel training costs per step: 1 process against 2 ranks under mpirun on this
# machine (oversubscribed on its 2 cores, so this shows correctness and overhead, not speed-up),
# for the reference workload (the `reference` encoder) and the larger `resnet-small` one, at the
# same global batch of 64 pairs (1 × 64 on 2 threads, 2 × 32 on 1 thread each). Then, on paper,
# the scaling efficiency for N machines from the measured step time and gradient bytes, for a ring
# allreduce at 1, 10 and 25 Gbit/s.
#
#   benchmarks/distributed_bench.sh [--steps N=30]
#
# Writes the tables to .build-bench/distributed_bench.md.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=30
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps=$2; shift 2 ;;
    *) echo "usage: $0 [--steps N]" >&2; exit 2 ;;
  esac
done

bash scripts/setup.sh
swift build -c release --product ssl-daemon >&2
bin="$(swift build -c release --show-bin-path)/ssl-daemon"
mkdir -p .build-bench
out=.build-bench/distributed_bench.md
# Open MPI refuses root unless told it is deliberate.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

rows=()
for video in reference resnet-small; do
  one=$("$bin" bench distributed --preset reference --video "$video" --batch 64 --threads 2 --steps "$steps" | tail -1)
  two=$(mpirun --oversubscribe -np 2 "$bin" bench distributed --preset reference --video "$video" --batch 32 --threads 1 --steps "$steps" | tail -1)
  rows+=("$video	$one	$two")
  echo "$video: 1 rank $one; 2 ranks $two" >&2
done

{
  echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(mpirun --version | head -1); global batch 64 pairs, $steps steps"
  echo
  printf '%s\n' "${rows[@]}" | python3 -c '
import json, sys
print("| encoder | ranks × batch | ms per step | ms in collectives per step | bytes sent per step and rank | OpenBLAS kernel |")
print("| --- | --- | ---: | ---: | ---: | --- |")
paper = []
for line in sys.stdin:
    video, one, two = line.rstrip("\n").split("\t")
    a, b = json.loads(one), json.loads(two)
    print("| %s | 1 × 64 | %.1f | – | – | %s |" % (video, a["ms_per_step"], a["blas_core"]))
    print("| %s | 2 × 32 | %.1f | %.1f | %s | %s |" % (video, b["ms_per_step"], b["collective_ms_per_step"], format(b["bytes_per_step"], ","), b["blas_core"]))
    paper.append((video, a["ms_per_step"] / 1000, b["bytes_per_step"]))
print()
print("On paper: N machines, each doing the 1 × 64 step, then a ring allreduce of the gradient bytes")
print("(each machine sends and receives 2 (N - 1) / N times them), not overlapped with compute:")
print("efficiency = step / (step + allreduce); latency terms are left out. A faster OpenBLAS kernel")
print("shortens the step and lowers these figures in proportion.")
print()
print("| encoder | link | N = 2 | N = 8 | N = 32 | N where communication exceeds compute |")
print("| --- | --- | ---: | ---: | ---: | ---: |")
for video, step, nbytes in paper:
    for gbit in (1, 10, 25):
        rate = gbit * 1e9 / 8
        def eff(n):
            comm = 2 * (n - 1) / n * nbytes / rate
            return step / (step + comm)
        limit = 2 * nbytes / rate
        dominated = "never (%.1f ms at most)" % (limit * 1000) if limit < step else next(
            (str(n) for n in range(2, 100000) if 2 * (n - 1) / n * nbytes / rate > step), "> 100000")
        print("| %s | %d Gbit/s | %.0f %% | %.0f %% | %.0f %% | %s |" % (video, gbit, 100 * eff(2), 100 * eff(8), 100 * eff(32), dominated))
'
} > "$out"
cat "$out"
