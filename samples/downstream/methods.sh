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
bin=.build/release/ssl-daemon
source samples/downstream/clips.sh
prepare_clips "$WORK" "$PRE" "$LAB"

out="$WORK/methods"
# Runs of another budget are not comparable: start over when STEPS changes.
[ "$(cat "$out/steps" 2>/dev/null)" = "$STEPS" ] || rm -rf "$out"
mkdir -p "$out"
echo "$STEPS" > "$out/steps"
unprobed=()
for seed in $SEEDS; do
  run="$out/random-s$seed"
  if [ ! -f "$run/export/manifest.json" ]; then
    "$bin" run --config "$CONFIG" --watch "$WORK/pretrain" --state-dir "$run/state" --seed "$seed" --max-steps 0 >/dev/null 2>&1
    "$bin" export --from "$run/state" --out "$run/export" >/dev/null
  fi
  [ -f "$run/probe.json" ] || unprobed+=("$run/export=random-s$seed")
  for method in $METHODS; do
    run="$out/$method-s$seed"
    if [ ! -f "$run/export/manifest.json" ]; then
      rm -rf "$run"
      mkdir -p "$run"
      { cat "$CONFIG"; printf '\n[objective]\nkind = "%s"\n' "$method"; } > "$run/config.toml"
      start=$(date +%s.%N)
      "$bin" run --config "$run/config.toml" --watch "$WORK/pretrain" --state-dir "$run/state" --seed "$seed" \
        --epochs 100000 --max-steps "$STEPS" 2> "$run/train.log" | tail -1 > "$run/summary.json"
      awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f\n", b - a }' > "$run/seconds"
      "$bin" export --from "$run/state" --out "$run/export" >/dev/null
      echo "$method, seed $seed: $(cat "$run/seconds") s, $(cat "$run/summary.json")" >&2
    fi
    [ -f "$run/probe.json" ] || unprobed+=("$run/export=$method-s$seed")
  done
done

# Probe what has no figures yet; each run keeps its own (probe.json), raw pixels go to pixels.json.
if [ ${#unprobed[@]} -gt 0 ]; then
  .venv/bin/python samples/downstream/probe.py --labels "$WORK/labelled/labels.csv" --json "$out/probe-new.json" "${unprobed[@]}" >&2
  .venv/bin/python - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
for name, r in json.load(open(os.path.join(out, "probe-new.json"))).items():
    path = os.path.join(out, "pixels.json" if name.startswith("raw pixels") else os.path.join(name, "probe.json"))
    json.dump(r, open(path, "w"), indent=1)
PY
fi

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
