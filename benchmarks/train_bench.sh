#!/usr/bin/env bash
# Side-by-side training benchmark, in one run: ssl-daemon's MoCo step against the same step in
# PyTorch on CPU (eager NCHW, eager channels_last, torch.compile, bf16 autocast), on the reference
# workload and on the resnet-small workload, plus the machine's sgemm ceiling. Commands are
# interleaved run by run so background noise hits all of them alike.
#
#   benchmarks/train_bench.sh [--runs N=3] [--steps N=30] [--threads N=2] [--no-compile]
#
# ssl-daemon runs twice per run and workload: with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset
# for that command alone ("kernels chosen": OpenBLAS's CPU detection, or ssl-daemon's choice where
# OpenBLAS falls back to a generic kernel), and with OPENBLAS_CORETYPE=Haswell (what hosts that
# force Haswell get). Each ssl-daemon row names the kernel that ran. Installs PyTorch into .venv
# (SSL_SETUP_PY=torch). Writes the table to .build-bench/train_bench.md.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=3 steps=30 threads=2 compile=yes
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --no-compile) compile=no; shift ;;
    *) echo "usage: $0 [--runs N] [--steps N] [--threads N] [--no-compile]" >&2; exit 2 ;;
  esac
done

SSL_SETUP_PY=torch bash scripts/setup.sh
if [ -z "${SSL_DAEMON_BIN:-}" ]; then
  swift build -c release --product ssl-daemon >&2
  bin="$(swift build -c release --show-bin-path)/ssl-daemon"
else
  bin=$SSL_DAEMON_BIN
fi
py=.venv/bin/python
mkdir -p .build-bench
results=.build-bench/train_bench_runs.tsv
: > "$results"

field() { sed -n "s/.*\"$1\": \"\{0,1\}\([^,\"}]*\).*/\1/p" | tail -n 1; }
chosen() { env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$@"; }
haswell() { OPENBLAS_CORETYPE=Haswell "$@"; }

# workload, label, command...: runs the command, appends workload, label, pairs/s, GFLOP/s, kernel.
measure() {
  local workload=$1 label=$2; shift 2
  local out
  if ! out=$("$@" 2>/dev/null | tail -n 1); then
    echo "train_bench: $label ($workload) failed" >&2
    return
  fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$workload" "$label" "$(echo "$out" | field pairs_per_second)" \
    "$(echo "$out" | field gflops)" "$(echo "$out" | field blas_core)" >> "$results"
}

for run in $(seq 1 "$runs"); do
  for label in chosen haswell; do
    out=$($label "$bin" bench gemm --threads "$threads" 2>/dev/null | tail -n 1)
    printf 'ceiling\tsgemm 1536³ (%s)\t\t%s\t%s\n' "$label" "$(echo "$out" | field gflops)" "$(echo "$out" | field blas_core)" >> "$results"
  done
  for preset in reference resnet-small; do
    s=$steps
    [ "$preset" = resnet-small ] && s=$(( (steps + 2) / 3 ))
    measure "$preset" "ssl-daemon, kernels chosen" chosen "$bin" bench train --preset "$preset" --threads "$threads" --steps "$s"
    measure "$preset" "ssl-daemon, Haswell kernels" haswell "$bin" bench train --preset "$preset" --threads "$threads" --steps "$s"
    measure "$preset" "PyTorch eager, NCHW" "$py" benchmarks/train_reference_torch.py --preset "$preset" --threads "$threads" --steps "$s"
    measure "$preset" "PyTorch eager, channels_last" "$py" benchmarks/train_reference_torch.py --preset "$preset" --threads "$threads" --steps "$s" --layout channels_last
    if [ "$compile" = yes ]; then
      measure "$preset" "PyTorch torch.compile, channels_last" "$py" benchmarks/train_reference_torch.py --preset "$preset" --threads "$threads" --steps "$s" --layout channels_last --compile
    fi
    measure "$preset" "PyTorch eager, channels_last, bf16 autocast" "$py" benchmarks/train_reference_torch.py --preset "$preset" --threads "$threads" --steps "$s" --layout channels_last --bf16
  done
  echo "train_bench: run $run/$runs done" >&2
done

torch_version=$("$py" -c 'import torch; print(torch.__version__)')
{
  echo "Machine: $(lscpu | sed -n 's/^Model name: *//p' | head -n 1), $(nproc) cores; $threads threads; PyTorch $torch_version (CPU); OpenBLAS $(dpkg-query -W -f '${Version}' libopenblas0-pthread 2>/dev/null || echo '?') as Debian ships it; environment OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
  echo
  echo "$runs runs interleaved, $steps timed steps (reference) and $(( (steps + 2) / 3 )) (resnet-small) per command; median (min-max)."
  echo "reference: the reference MoCo step (4-conv encoder, batch 64 pairs of 3x64x64, queue 4096); resnet-small: the same step with the resnet-small encoder, batch 32 pairs of 3x112x112."
  echo
  "$py" - "$results" <<'PY'
import sys, statistics, collections
rows = collections.defaultdict(list)
order = []
for line in open(sys.argv[1]):
    workload, label, pairs, gflops, core = line.rstrip("\n").split("\t")
    key = (workload, label)
    if key not in rows:
        order.append(key)
    rows[key].append((float(pairs) if pairs else None, float(gflops) if gflops else None, core))

def med(values):
    return statistics.median(values) if values else None

ceiling = {}
print("| sgemm ceiling, 1536³ | kernel | GFLOP/s |")
print("|---|---|---:|")
for key in order:
    if key[0] != "ceiling":
        continue
    g = [v[1] for v in rows[key] if v[1] is not None]
    ceiling[key[1]] = med(g)
    cores = sorted({v[2] for v in rows[key] if v[2]})
    print(f"| {key[1]} | {', '.join(cores)} | {med(g):.0f} ({min(g):.0f}-{max(g):.0f}) |")
best_ceiling = max((v for v in ceiling.values() if v), default=None)
for workload in ("reference", "resnet-small"):
    keys = [k for k in order if k[0] == workload]
    if not keys:
        continue
    torch_fp32 = [med([v[0] for v in rows[k] if v[0]]) for k in keys if k[1].startswith("PyTorch") and "bf16" not in k[1]]
    best = max((t for t in torch_fp32 if t), default=None)
    print()
    print(f"| {workload} | kernel | pairs/s | useful GFLOP/s | of the sgemm ceiling | vs best PyTorch fp32 |")
    print("|---|---|---:|---:|---:|---:|")
    for k in keys:
        p = [v[0] for v in rows[k] if v[0]]
        g = [v[1] for v in rows[k] if v[1]]
        if not p:
            print(f"| {k[1]} | | failed | | | |")
            continue
        cores = sorted({v[2] for v in rows[k] if v[2]})
        share = f"{100 * med(g) / best_ceiling:.0f} %" if best_ceiling and g else ""
        ratio = f"{med(p) / best:.2f}x" if best else ""
        print(f"| {k[1]} | {', '.join(cores) or 'oneDNN (PyTorch)'} | {med(p):.0f} ({min(p):.0f}-{max(p):.0f}) | {med(g):.1f} | {share} | {ratio} |")
PY
} | tee .build-bench/train_bench.md
