# Sourced by run.sh and methods.sh: makes the unlabelled pretraining clips and the labelled probe
# clips under $1 (once; kept between runs). Pretraining and probe clips come from different seeds:
# the probe never sees a pretraining clip, and the pretraining clips' labels are moved out of the
# watched folder, so the daemon never sees them.
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
