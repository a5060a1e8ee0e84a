#!/usr/bin/env bash
# The downstream measurement: pretrain ssl-daemon on unlabelled synthetic clips, export the trained
# encoder and a random-weights one (step 0, same seed and architecture), and linear-probe both plus
# raw pixels on a separate labelled set. Prints the probe table and the training budget.
#
# usage: samples/downstream/run.sh   (env: WORK=/tmp/ssl-downstream STEPS=3000 PRETRAIN_PER_CLASS=24
#        LABELLED_PER_CLASS=48 CONFIG=samples/downstream/pretrain.toml)
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=${WORK:-/tmp/ssl-downstream}
STEPS=${STEPS:-3000}
PRE=${PRETRAIN_PER_CLASS:-24}
LAB=${LABELLED_PER_CLASS:-48}
CONFIG=${CONFIG:-samples/downstream/pretrain.toml}

bash scripts/setup.sh
swift build -c release --product ssl-daemon >&2
source samples/downstream/lib.sh
prepare_clips "$WORK" "$PRE" "$LAB"

rm -rf "$WORK/state" "$WORK/random" "$WORK/export-trained" "$WORK/export-random"
start=$(date +%s)
"$bin" run --config "$CONFIG" --watch "$WORK/pretrain" --state-dir "$WORK/state" --epochs 100000 --max-steps "$STEPS" \
  2> "$WORK/train.log" | tail -1 | tee "$WORK/summary.json"
seconds=$(( $(date +%s) - start ))
"$bin" run --config "$CONFIG" --watch "$WORK/pretrain" --state-dir "$WORK/random" --max-steps 0 2>/dev/null >/dev/null
"$bin" export --from "$WORK/state" --out "$WORK/export-trained" >/dev/null
"$bin" export --from "$WORK/random" --out "$WORK/export-random" >/dev/null
echo "pretraining: $STEPS steps in ${seconds} s on $(nproc) cores, $(( PRE * 5 )) unlabelled 2 s clips" >&2
.venv/bin/python samples/downstream/probe.py --labels "$WORK/labelled/labels.csv" --json "$WORK/probe.json" \
  "$WORK/export-trained=trained ($STEPS steps)" "$WORK/export-random=random weights (step 0)"
