#!/usr/bin/env bash
# The stream question: does a MinRed replay buffer make a stream nearly as good as shuffled data?
# The pretraining clips arrive in path order, which is class by class (ball_horizontal_000 ...
# ball_horizontal_023, bar_diagonal_000, ...), one file after the other: a stream whose content
# drifts, as a camera's does. Four conditions, the same method, seeds and budget (STEPS steps, each
# delivered example buying training.replay_ratio draws):
#   shuffled  i.i.d.: a FIFO buffer that holds a whole pass over the clips, and training waits until
#             it has received one (training.prefill), so every batch is drawn from all the clips
#   arrival   arrival order with no replay buffer to speak of: a FIFO of two batches
#   fifo      arrival order through a FIFO buffer of BUFFER_SHARE of a pass
#   minred    arrival order through a MinRed buffer of the same size
# Each run is exported and probed as methods.sh does; prints one table (mean ± sd over the seeds)
# and writes it to $WORK/stream/table.md. Finished runs are kept; delete the folder (or change
# STEPS, METHOD or BUFFER_SHARE) to start over.
#
# usage: samples/downstream/stream.sh
#   env: METHOD=moco SEEDS="1 2 3" STEPS=1000 BUFFER_SHARE=0.25 CONDITIONS="shuffled arrival fifo minred"
#        WORK=/tmp/ssl-downstream PRETRAIN_PER_CLASS=24 LABELLED_PER_CLASS=48 CONFIG=samples/downstream/pretrain.toml
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=${WORK:-/tmp/ssl-downstream}
METHOD=${METHOD:-moco}
SEEDS=${SEEDS:-1 2 3}
STEPS=${STEPS:-1000}
SHARE=${BUFFER_SHARE:-0.25}
CONDITIONS=${CONDITIONS:-shuffled arrival fifo minred}
PRE=${PRETRAIN_PER_CLASS:-24}
LAB=${LABELLED_PER_CLASS:-48}
CONFIG=${CONFIG:-samples/downstream/pretrain.toml}

bash scripts/setup.sh
swift build -c release --product ssl-daemon >&2
source samples/downstream/lib.sh
prepare_clips "$WORK" "$PRE" "$LAB"

out="$WORK/stream"
[ "$(cat "$out/budget" 2>/dev/null)" = "$METHOD $STEPS $SHARE" ] || rm -rf "$out"
mkdir -p "$out"
echo "$METHOD $STEPS $SHARE" > "$out/budget"

# One pass over the clips: how many examples it makes and how many bytes they take in the buffer
# (a buffer big enough for all of it, training held until every file is read, then one step).
if [ ! -f "$out/pass.json" ]; then
  rm -rf "$out/pass"
  mkdir -p "$out/pass"
  printf 'training.prefill = 100000000\npairing.buffer_bytes = 17179869184\n' | with_settings "$CONFIG" > "$out/pass/config.toml"
  "$bin" run --config "$out/pass/config.toml" --watch "$WORK/pretrain" --state-dir "$out/pass/state" --epochs 1 --max-steps 1 \
    2> "$out/pass/train.log" | tail -1 > "$out/pass/summary.json"
  .venv/bin/python - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
buffer = json.load(open(os.path.join(out, "pass/state/status.json")))["buffer"]
produced = sum(json.load(open(os.path.join(out, "pass/summary.json")))["pairs"].values())
json.dump({"examples": produced, "entries": buffer["entries"], "bytes": buffer["bytes"]}, open(os.path.join(out, "pass.json"), "w"))
PY
fi
read -r examples bytes < <(.venv/bin/python -c 'import json,sys; p=json.load(open(sys.argv[1])); print(p["examples"], p["bytes"])' "$out/pass.json")
batch=64
per_example=$(( bytes / examples ))
echo "one pass: $examples examples, $bytes bytes in the buffer ($per_example per example)" >&2

condition_config() {  # the [training] and [pairing] lines of a condition
  local mib=$(( 1 << 20 ))
  case $1 in
    shuffled) echo "training.prefill = $examples"; echo "pairing.buffer_policy = \"fifo\""; echo "pairing.buffer_bytes = $(( bytes + bytes / 20 ))" ;;
    arrival) echo "pairing.buffer_policy = \"fifo\""; echo "pairing.buffer_bytes = $(( 2 * batch * per_example > mib ? 2 * batch * per_example : mib ))" ;;
    fifo|minred) echo "pairing.buffer_policy = \"$1\""; echo "pairing.buffer_bytes = $(awk -v b="$bytes" -v s="$SHARE" 'BEGIN { printf "%d", b * s }')" ;;
    *) echo "unknown condition $1" >&2; exit 2 ;;
  esac
}

names=()
for seed in $SEEDS; do
  for condition in $CONDITIONS; do
    run="$out/$condition-s$seed"
    names+=("$condition-s$seed")
    mkdir -p "$run"
    [ -f "$run/export/manifest.json" ] ||
      { condition_config "$condition"; echo "objective.kind = \"$METHOD\""; } | with_settings "$CONFIG" > "$run/config.toml"
    pretrain "$run" "$seed" "$STEPS" "$condition, seed $seed"
  done
done
probe_missing "$out" "${names[@]}"

.venv/bin/python - "$out" "$METHOD" "$STEPS" "$SHARE" "$CONDITIONS" "$SEEDS" <<'PY'
import json, os, statistics, sys

out, method, steps, share, conditions, seeds = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5].split(), sys.argv[6].split()
p = json.load(open(os.path.join(out, "pass.json")))
what = {"shuffled": "shuffled (i.i.d.): a buffer of one whole pass, filled before the first step",
        "arrival": "arrival order, no replay buffer (a FIFO of two batches)",
        "fifo": f"arrival order, FIFO buffer of {float(share):.3g} of a pass",
        "minred": f"arrival order, MinRed buffer of {float(share):.3g} of a pass"}

def cell(values):
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"

lines = [f"{method}, {steps} steps per run, seeds {', '.join(seeds)}; one pass over the clips is {p['examples']} examples "
         f"({p['bytes'] / 2**20:.0f} MiB in the buffer); mean ± sd over the seeds", "",
         "| examples fed | linear probe | weighted kNN (k 20) | 1-NN | effective rank | examples produced |",
         "| --- | ---: | ---: | ---: | ---: | ---: |"]
runs = {}
for c in conditions:
    rs = []
    for s in seeds:
        r = json.load(open(os.path.join(out, f"{c}-s{s}", "probe.json")))
        r["produced"] = sum(json.load(open(os.path.join(out, f"{c}-s{s}", "summary.json")))["pairs"].values())
        runs[f"{c}/{s}"] = r
        rs.append(r)
    lines.append(f"| {what[c]} | {cell([r['linear'] for r in rs])} | {cell([r['knn20'] for r in rs])} | {cell([r['knn'] for r in rs])} | "
                 f"{statistics.mean(r['rank'] for r in rs):.1f} / {rs[0]['dimension']} | {statistics.mean(r['produced'] for r in rs):.0f} |")
json.dump(runs, open(os.path.join(out, "runs.json"), "w"), indent=1)
text = "\n".join(lines) + "\n"
open(os.path.join(out, "table.md"), "w").write(text)
print(text)
PY
