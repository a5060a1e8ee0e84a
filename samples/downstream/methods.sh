#!/usr/bin/env bash
# Every method side by side on the downstream set: for each `objective.kind` and seed, pretrain the
# daemon on the unlabelled clips with the same budget (steps; the wall clock is reported), export,
# and probe (linear probe, 1-NN, weighted kNN k = 20 T = 0.07, effective rank of the frame
# features); plus random weights (step 0, one per seed) and raw pixels. Prints one table, mean ± sd
# over the seeds, and writes it to $WORK/methods/table.md (the per-run figures to runs.json).
# Runs already in $WORK/methods (exported and probed) are kept: running again with other METHODS
# or SEEDS adds the missing runs; delete the folder (or change STEPS) to start over.
#
# usage: samples/downstream/methods.sh
#   env: METHODS="moco infonce vicreg pirl barlow byol simsiam dino swav" SEEDS="1 2 3" STEPS=3000
#        WORK=/tmp/ssl-downstream PRETRAIN_PER_CLASS=24 LABELLED_PER_CLASS=48
#        CONFIG=samples/downstream/pretrain.toml (gets an [objective] table with the kind appended)
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=${WORK:-/tmp/ssl-downstream}
METHODS=${METHODS:-moco infonce vicreg pirl barlow byol simsiam dino swav}
SEEDS=${SEEDS:-1 2 3}
STEPS=${STEPS:-3000}
PRE=${PRETRAIN_PER_CLASS:-24}
LAB=${LABELLED_PER_CLASS:-48}
CONFIG=${CONFIG:-samples/downstream/pretrain.toml}

bash scripts/setup.sh
swift build -c release --product ssl-daemon >&2
source samples/downstream/lib.sh
prepare_clips "$WORK" "$PRE" "$LAB"

out="$WORK/methods"
# Runs of another budget are not comparable: start over when STEPS changes.
[ "$(cat "$out/steps" 2>/dev/null)" = "$STEPS" ] || rm -rf "$out"
mkdir -p "$out"
echo "$STEPS" > "$out/steps"
names=()
for seed in $SEEDS; do
  mkdir -p "$out/random-s$seed"
  cp "$CONFIG" "$out/random-s$seed/config.toml"
  pretrain "$out/random-s$seed" "$seed" 0 "random weights, seed $seed"
  names+=("random-s$seed")
  for method in $METHODS; do
    run="$out/$method-s$seed"
    mkdir -p "$run"
    [ -f "$run/export/manifest.json" ] || printf 'objective.kind = "%s"\n' "$method" | with_settings "$CONFIG" > "$run/config.toml"
    pretrain "$run" "$seed" "$STEPS" "$method, seed $seed"
    names+=("$method-s$seed")
  done
done
# Raw pixels come with the first probe of this folder.
[ -f "$out/pixels.json" ] || rm -f "$out/random-s${SEEDS%% *}/probe.json"
probe_missing "$out" "${names[@]}"

.venv/bin/python - "$out" "$STEPS" "$METHODS" "$SEEDS" <<'PY'
import json, os, statistics, sys

out, steps, methods, seeds = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4].split()
runs = {}
for method in methods + ["random"]:
    for seed in seeds:
        folder = os.path.join(out, f"{method}-s{seed}")
        r = json.load(open(os.path.join(folder, "probe.json")))
        if method != "random":
            summary = json.load(open(os.path.join(folder, "summary.json")))
            seconds = float(open(os.path.join(folder, "seconds")).read())
            r.update(seconds=seconds, pairs=summary["pairs_trained"], pairs_per_second=summary["pairs_trained"] / seconds,
                     loss_first=summary["loss_first"], loss_last=summary["loss_last"], diverged=summary["diverged"],
                     skipped=summary["skipped_updates"])
        runs[f"{method}/{seed}"] = r
json.dump(runs, open(os.path.join(out, "runs.json"), "w"), indent=1)

def cell(values, digits=3):
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"

lines = [f"{steps} steps per run, seeds {', '.join(seeds)}; mean ± sd over the seeds", "",
         "| features | linear probe | weighted kNN (k 20) | 1-NN | effective rank | pairs/s | wall s | loss first → last |",
         "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
for method in methods + ["random"]:
    rs = [runs[f"{method}/{s}"] for s in seeds]
    rank = f"{statistics.mean(r['rank'] for r in rs):.1f} / {rs[0]['dimension']}"
    if method == "random":
        lines.append(f"| random weights (step 0) | {cell([r['linear'] for r in rs])} | {cell([r['knn20'] for r in rs])} | "
                     f"{cell([r['knn'] for r in rs])} | {rank} | | | |")
        continue
    diverged = sum(r["diverged"] for r in rs)
    loss = f"{statistics.mean(r['loss_first'] for r in rs):.2f} → {statistics.mean(r['loss_last'] for r in rs):.2f}"
    lines.append(f"| {method}{' (diverged ×%d)' % diverged if diverged else ''} | {cell([r['linear'] for r in rs])} | "
                 f"{cell([r['knn20'] for r in rs])} | {cell([r['knn'] for r in rs])} | {rank} | "
                 f"{statistics.mean(r['pairs_per_second'] for r in rs):.0f} | {statistics.mean(r['seconds'] for r in rs):.0f} | {loss} |")
pixels = json.load(open(os.path.join(out, "pixels.json")))
lines.append(f"| raw pixels | {pixels['linear']:.3f} | {pixels['knn20']:.3f} | {pixels['knn']:.3f} | | | | |")
text = "\n".join(lines) + "\n"
open(os.path.join(out, "table.md"), "w").write(text)
print(text)
PY
