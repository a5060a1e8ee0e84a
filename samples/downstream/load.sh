#!/usr/bin/env bash
# Does machine load change what the daemon learns? For each seed, pretrains METHOD beside a
# CPU-hungry neighbour (one busy process per core, for the whole run) with the budget and config of
# methods.sh, exports and probes, and prints the loaded runs beside the idle runs methods.sh made
# (run it first with the same STEPS: its runs of METHOD are the reference): examples produced,
# pairs trained, wall seconds, linear probe and weighted kNN.
#
# usage: samples/downstream/load.sh
#   env: METHOD=moco SEEDS="1 2 3" STEPS=3000 WORK=/tmp/ssl-downstream CONFIG=samples/downstream/pretrain.toml
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=${WORK:-/tmp/ssl-downstream}
METHOD=${METHOD:-moco}
SEEDS=${SEEDS:-1 2 3}
STEPS=${STEPS:-3000}
CONFIG=${CONFIG:-samples/downstream/pretrain.toml}
source samples/downstream/lib.sh

if [ "$(cat "$WORK/methods/steps" 2>/dev/null)" != "$STEPS" ]; then
  echo "load.sh: no idle runs of $STEPS steps in $WORK/methods: run samples/downstream/methods.sh with the same STEPS first" >&2
  exit 1
fi
out="$WORK/load"
[ "$(cat "$out/steps" 2>/dev/null)" = "$STEPS" ] || rm -rf "$out"
mkdir -p "$out"
echo "$STEPS" > "$out/steps"

busy=()
stop_neighbour() { [ ${#busy[@]} -eq 0 ] || kill "${busy[@]}" 2>/dev/null || true; busy=(); }
trap stop_neighbour EXIT

names=()
for seed in $SEEDS; do
  run="$out/$METHOD-s$seed"
  names+=("$METHOD-s$seed")
  [ ! -f "$run/export/manifest.json" ] || continue
  mkdir -p "$run"
  printf 'objective.kind = "%s"\n' "$METHOD" | with_settings "$CONFIG" > "$run/config.toml"
  for _ in $(seq "$(nproc)"); do sh -c 'while :; do :; done' & busy+=($!); done
  pretrain "$run" "$seed" "$STEPS" "$METHOD, seed $seed, loaded"
  stop_neighbour
done
probe_missing "$out" "${names[@]}"

.venv/bin/python - "$WORK" "$METHOD" "$SEEDS" "$STEPS" <<'PY'
import json, os, sys
work, method, seeds, steps = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4]
lines = [f"{method}, {steps} steps per run; idle runs from methods.sh, loaded ones beside one busy process per core", "",
         "| run | examples produced | pairs trained | trained per produced | wall s | linear probe | weighted kNN (k 20) |",
         "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
for where, label in (("methods", "idle"), ("load", "loaded")):
    for seed in seeds:
        folder = os.path.join(work, where, f"{method}-s{seed}")
        if not os.path.exists(os.path.join(folder, "probe.json")):
            continue
        s, p = json.load(open(os.path.join(folder, "summary.json"))), json.load(open(os.path.join(folder, "probe.json")))
        produced = sum(s["pairs"].values())
        seconds = float(open(os.path.join(folder, "seconds")).read())
        lines.append(f"| {label}, seed {seed} | {produced:,} | {s['pairs_trained']:,} | {s['pairs_trained'] / produced:.2f} | "
                     f"{seconds:.0f} | {p['linear']:.3f} | {p['knn20']:.3f} |")
text = "\n".join(lines) + "\n"
open(os.path.join(work, "load", "table.md"), "w").write(text)
print(text)
PY
