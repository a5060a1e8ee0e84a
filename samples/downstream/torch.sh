#!/usr/bin/env bash
# The daemon's recipe in PyTorch, on the downstream set of methods.sh: for each method and seed, train
# the same encoder with the same method, optimizer, schedule, batch and views in PyTorch on CPU
# (samples/downstream/torch_recipe.py; its docstring lists what matches the daemon and what does not),
# export what `ssl-daemon export` writes, and probe it with probe.py (linear probe, weighted kNN k 20,
# 1-NN, effective rank). Prints one table, mean ± sd over the seeds, beside the daemon's runs of the
# same methods when methods.sh has made them in the same WORK ($WORK/methods/runs.json; like for like
# with CONFIG=samples/downstream/pretrain-temporal.toml, temporal pairs only as this recipe), and
# writes it to $WORK/torch/table.md (per-run figures in $WORK/torch/runs.json).
# Runs already in $WORK/torch (exported and probed) are kept: running again with other METHODS or
# SEEDS adds the missing runs; delete the folder (or change STEPS) to start over. One training
# process at a time.
#
# usage: samples/downstream/torch.sh
#   env: METHODS="moco byol" SEEDS="1 2 3" STEPS=3000 WORK=/tmp/ssl-downstream PRETRAIN_PER_CLASS=24
#        LABELLED_PER_CLASS=48 THREADS=2 (PyTorch compute threads) WORKERS=1 (DataLoader workers)
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=${WORK:-/tmp/ssl-downstream}
METHODS=${METHODS:-moco byol}
SEEDS=${SEEDS:-1 2 3}
STEPS=${STEPS:-3000}
PRE=${PRETRAIN_PER_CLASS:-24}
LAB=${LABELLED_PER_CLASS:-48}
THREADS=${THREADS:-2}
WORKERS=${WORKERS:-1}
for method in $METHODS; do
  case $method in moco | byol) ;; *) echo "torch.sh: no PyTorch recipe for method $method (moco, byol)" >&2; exit 2 ;; esac
done

SSL_SETUP_PY="bench torch" bash scripts/setup.sh
py=.venv/bin/python
source samples/downstream/lib.sh
prepare_clips "$WORK" "$PRE" "$LAB"

machine="$(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
versions=$("$py" -c 'import torch, av; print(f"PyTorch {torch.__version__}, PyAV {av.__version__}")')
echo "machine: $machine; $versions; $THREADS threads, $WORKERS DataLoader workers" >&2

out="$WORK/torch"
# Runs of another budget are not comparable: start over when STEPS changes.
[ "$(cat "$out/steps" 2>/dev/null)" = "$STEPS" ] || rm -rf "$out"
mkdir -p "$out"
echo "$STEPS" > "$out/steps"

# probe.py reads the preprocessing from each export's manifest: it must be the daemon's. Compare with
# a daemon export (methods.sh's, or a step-0 one when the daemon is built).
reference=$(ls "$WORK"/methods/*/export/manifest.json 2>/dev/null | head -1 || true)
if [ -z "$reference" ] && [ -x .build/release/ssl-daemon ]; then
  if [ ! -f "$out/daemon-step0/export/manifest.json" ]; then
    .build/release/ssl-daemon run --config samples/downstream/pretrain.toml --watch "$WORK/pretrain" \
      --state-dir "$out/daemon-step0/state" --seed 1 --max-steps 0 >/dev/null 2>&1
    .build/release/ssl-daemon export --from "$out/daemon-step0/state" --out "$out/daemon-step0/export" >/dev/null
  fi
  reference="$out/daemon-step0/export/manifest.json"
fi

names=()
for seed in $SEEDS; do
  for method in $METHODS; do
    run="$out/$method-s$seed"
    names+=("$method-s$seed")
    if [ ! -f "$run/export/manifest.json" ]; then
      rm -rf "$run"
      mkdir -p "$run"
      start=$(date +%s.%N)
      "$py" samples/downstream/torch_recipe.py --clips "$WORK/pretrain" --method "$method" --steps "$STEPS" \
        --seed "$seed" --threads "$THREADS" --workers "$WORKERS" --out "$run/export" 2> "$run/train.log" | tail -1 > "$run/summary.json"
      # Wall time of the process without its ONNX export, as methods.sh times `ssl-daemon run` alone.
      "$py" -c 'import json, sys; print("%.1f" % (float(sys.argv[2]) - float(sys.argv[1]) - json.load(open(sys.argv[3]))["export_seconds"]))' \
        "$start" "$(date +%s.%N)" "$run/summary.json" > "$run/seconds"
      echo "pytorch $method, seed $seed: $(cat "$run/seconds") s, $(cat "$run/summary.json")" >&2
    fi
  done
done

if [ -n "$reference" ]; then
  "$py" - "$reference" "$out" $METHODS -- $SEEDS <<'PY'
import json, os, sys
reference, out = sys.argv[1], sys.argv[2]
methods, seeds = sys.argv[3:sys.argv.index("--")], sys.argv[sys.argv.index("--") + 1:]
keys = ("architecture", "opset", "input", "output", "embedding_size", "preprocess", "tensors")
want = json.load(open(reference))
for method in methods:
    for seed in seeds:
        got = json.load(open(os.path.join(out, f"{method}-s{seed}", "export", "manifest.json")))
        if set(got) != set(want):
            sys.exit(f"torch.sh: manifest fields {sorted(got)} differ from the daemon's {sorted(want)} ({reference})")
        for k in keys:
            if got["encoders"]["video"][k] != want["encoders"]["video"][k]:
                sys.exit(f"torch.sh: {method}-s{seed}: manifest video {k} differs from the daemon's ({reference})")
print(f"manifests match the daemon's ({reference})", file=sys.stderr)
PY
else
  echo "torch.sh: no daemon export to compare the manifests with (run methods.sh, or build ssl-daemon)" >&2
fi

probe_missing "$out" "${names[@]}"

"$py" - "$WORK" "$STEPS" "$METHODS" "$SEEDS" "$machine" "$versions" "$THREADS" "$WORKERS" <<'PY'
import json, os, statistics, sys

work, steps, methods, seeds, machine, versions, threads, workers = sys.argv[1:9]
steps, methods, seeds = int(steps), methods.split(), seeds.split()
out = os.path.join(work, "torch")
runs = {}
for method in methods:
    for seed in seeds:
        folder = os.path.join(out, f"{method}-s{seed}")
        r = json.load(open(os.path.join(folder, "probe.json")))
        summary = json.load(open(os.path.join(folder, "summary.json")))
        seconds = float(open(os.path.join(folder, "seconds")).read())
        r.update(seconds=seconds, pairs=summary["pairs_trained"], pairs_per_second=summary["pairs_trained"] / seconds,
                 loss_first=summary["loss_first"], loss_last=summary["loss_last"], skipped=summary["skipped_updates"])
        runs[f"{method}/{seed}"] = r
json.dump(runs, open(os.path.join(out, "runs.json"), "w"), indent=1)

def cell(values, digits=3):
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"

def loss(rs):
    first = [r["loss_first"] for r in rs if r.get("loss_first") is not None]
    last = [r["loss_last"] for r in rs if r.get("loss_last") is not None]
    return f"{statistics.mean(first):.2f} → {statistics.mean(last):.2f}" if first and last else ""

def row(label, rs, trained=True):
    rank = f"{statistics.mean(r['rank'] for r in rs):.1f} / {rs[0]['dimension']}"
    cells = [cell([r["linear"] for r in rs]), cell([r["knn20"] for r in rs]), cell([r["knn"] for r in rs]), rank]
    if trained:
        cells += [cell([r["pairs_per_second"] for r in rs], 0), cell([r["seconds"] for r in rs], 0), loss(rs)]
    else:
        cells += ["", "", ""]
    return f"| {label} | " + " | ".join(cells) + f" | {len(rs)} |"

daemon_runs, daemon_steps = {}, None
runs_json = os.path.join(work, "methods", "runs.json")
if os.path.exists(runs_json):
    daemon_runs = json.load(open(runs_json))
    try:
        daemon_steps = int(open(os.path.join(work, "methods", "steps")).read())
    except (OSError, ValueError):
        daemon_steps = None

lines = [f"{steps} steps of 64 pairs per run, seeds {', '.join(seeds)}; mean ± sd over the seeds",
         f"machine: {machine}; {versions}; PyTorch runs: {threads} threads, {workers} DataLoader workers", "",
         "| trainer, method | linear probe | weighted kNN (k 20) | 1-NN | effective rank | pairs/s | wall s | loss first → last | runs |",
         "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
for method in methods:
    lines.append(row(f"PyTorch, {method}", [runs[f"{method}/{s}"] for s in seeds]))
    theirs = [daemon_runs[f"{method}/{s}"] for s in seeds if f"{method}/{s}" in daemon_runs]
    if theirs:
        lines.append(row(f"ssl-daemon, {method}", theirs))
theirs = [daemon_runs[f"random/{s}"] for s in seeds if f"random/{s}" in daemon_runs]
if theirs:
    lines.append(row("random weights (step 0, ssl-daemon)", theirs, trained=False))
pixels = json.load(open(os.path.join(out, "pixels.json")))
lines.append(f"| raw pixels | {pixels['linear']:.3f} | {pixels['knn20']:.3f} | {pixels['knn']:.3f} | | | | | |")
lines.append("")
if daemon_runs:
    note = "" if daemon_steps == steps else f" **at {daemon_steps} steps, not {steps}: not comparable**"
    # Temporal pairs only (CONFIG=samples/downstream/pretrain-temporal.toml) is this recipe's data.
    produced = [json.load(open(os.path.join(work, "methods", f"{m}-s{s}", "summary.json")))["pairs"]
                for m in methods for s in seeds if f"{m}/{s}" in daemon_runs]
    temporal_only = all(p["tracked"] + p["audio_video"] < 0.05 * sum(p.values()) for p in produced)
    kinds = ("temporal pairs only, as here" if temporal_only else
             "batches that also hold tracked-patch and audio-video pairs, its loss adding the cross-modal term, "
             "so the loss columns compare within a trainer only")
    lines.append(f"ssl-daemon rows: {runs_json}{note} (the seeds above that it has); {kinds}.")
else:
    lines.append(f"no ssl-daemon runs in {runs_json}: run samples/downstream/methods.sh with the same WORK and STEPS for its rows.")
lines.append("wall s: the whole training process (decoding included, export not); pairs/s: pairs trained / wall s.")
text = "\n".join(lines) + "\n"
open(os.path.join(out, "table.md"), "w").write(text)
print(text)
PY
