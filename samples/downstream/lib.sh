# Sourced by the downstream scripts (run.sh, methods.sh, load.sh, stream.sh, torch.sh): the clips,
# one pretraining run, the probe, and configs with extra settings. Expects the project root as the
# working directory and $WORK set.

bin=.build/release/ssl-daemon

# Makes the unlabelled pretraining clips and the labelled probe clips under $1 (once; kept between
# runs). Pretraining and probe clips come from different seeds: the probe never sees a pretraining
# clip, and the pretraining clips' labels are moved out of the watched folder, so the daemon never
# sees them.
#   prepare_clips WORK PRETRAIN_PER_CLASS LABELLED_PER_CLASS
prepare_clips() {
  local work=$1 pre=$2 lab=$3
  mkdir -p "$work"
  if [ ! -f "$work/pretrain-labels.csv" ]; then
    samples/generate_labelled.sh "$work/pretrain" "$pre" 2
    mv "$work/pretrain/labels.csv" "$work/pretrain-labels.csv"
  fi
  [ -f "$work/labelled/labels.csv" ] || samples/generate_labelled.sh "$work/labelled" "$lab" 1
}

# Prints config file $1 with the "table.key = value" lines of stdin put into their tables (TOML
# allows a table to be defined once).
#   printf 'objective.kind = "pirl"\n' | with_settings BASE.toml > run.toml
with_settings() {
  .venv/bin/python -c '
import sys
lines = open(sys.argv[1]).read().splitlines()
for setting in sys.stdin.read().splitlines():
    table, key = setting.split(".", 1)
    if f"[{table}]" in lines:
        lines.insert(lines.index(f"[{table}]") + 1, key)
    else:
        lines += ["", f"[{table}]", key]
print("\n".join(lines))' "$1"
}

# Pretrains the daemon on $WORK/pretrain into RUN (state/, train.log, summary.json, seconds) with
# RUN/config.toml, then exports to RUN/export. Skips a run that has its export already.
#   pretrain RUN SEED STEPS LABEL
pretrain() {
  local run=$1 seed=$2 steps=$3 label=$4 start
  [ ! -f "$run/export/manifest.json" ] || return 0
  rm -rf "$run/state" "$run/export"
  start=$(date +%s.%N)
  "$bin" run --config "$run/config.toml" --watch "$WORK/pretrain" --state-dir "$run/state" --seed "$seed" \
    --epochs 100000 --max-steps "$steps" 2> "$run/train.log" | tail -1 > "$run/summary.json"
  awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f\n", b - a }' > "$run/seconds"
  "$bin" export --from "$run/state" --out "$run/export" >/dev/null
  echo "$label: $(cat "$run/seconds") s, $(cat "$run/summary.json")" >&2
}

# Probes every OUT/NAME/export that has no OUT/NAME/probe.json yet and writes one per run (raw
# pixels, probed alongside, go to OUT/pixels.json).
#   probe_missing OUT NAME...
probe_missing() {
  local out=$1 name
  shift
  local todo=()
  for name in "$@"; do [ -f "$out/$name/probe.json" ] || todo+=("$out/$name/export=$name"); done
  [ ${#todo[@]} -gt 0 ] || return 0
  .venv/bin/python samples/downstream/probe.py --labels "$WORK/labelled/labels.csv" --json "$out/probe-new.json" "${todo[@]}" >&2
  .venv/bin/python - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
for name, r in json.load(open(os.path.join(out, "probe-new.json"))).items():
    path = os.path.join(out, "pixels.json" if name.startswith("raw pixels") else os.path.join(name, "probe.json"))
    json.dump(r, open(path, "w"), indent=1)
PY
}
