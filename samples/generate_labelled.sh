#!/usr/bin/env bash
# Generate a small synthetic *labelled* audio-visual dataset (not committed).
#
# Usage: samples/generate_labelled.sh OUTDIR [CLIPS_PER_CLASS=8] [SEED=1]
#   env: JOBS=2        number of ffmpeg processes run in parallel
#        FFMPEG=ffmpeg ffmpeg binary
#
# Writes OUTDIR/<label>_<NNN>.mp4 (160x120, 25 fps, 2 s, H.264 + AAC 16 kHz
# mono) and OUTDIR/labels.csv ("file,label", paths relative to OUTDIR).
#
# Classes (each has its own object shape + motion AND its own sound):
#   ball_horizontal  disc bouncing left-right          ~440 Hz tone
#   box_vertical     square bouncing up-down           ~880 Hz tone
#   bar_diagonal     flat bar bouncing diagonally      white-noise bursts (3-5 Hz)
#   pulse            disc growing/shrinking in place   ~220 Hz tone, loudness follows size
#   orbit            diamond circling a centre point   ~660 Hz tone with 6 Hz vibrato
# Per clip (derived deterministically from SEED, class and clip index) the
# background colour/texture/drift, object colour/size, start position/phase,
# speed and tone frequency (+-5%) vary, so no single pixel or constant gives
# the class away (apart from the intended sound/motion cues).
# A clip's parameters depend only on (SEED, class, index), so raising
# CLIPS_PER_CLASS keeps the existing clips unchanged.
set -euo pipefail

usage() { echo "usage: $0 OUTDIR [CLIPS_PER_CLASS=8] [SEED=1]" >&2; exit 2; }
[[ $# -ge 1 && $# -le 3 ]] || usage
OUTDIR=$1
N=${2:-8}
SEED=${3:-1}
[[ $N =~ ^[0-9]+$ && $N -ge 1 ]] || { echo "CLIPS_PER_CLASS must be a positive integer" >&2; exit 2; }
[[ $SEED =~ ^[0-9]+$ ]] || { echo "SEED must be a non-negative integer" >&2; exit 2; }
JOBS=${JOBS:-2}
[[ $JOBS =~ ^[0-9]+$ && $JOBS -ge 1 ]] || JOBS=2
FFMPEG=${FFMPEG:-ffmpeg}

CLASSES=(ball_horizontal box_vertical bar_diagonal pulse orbit)
W=160; H=120; FPS=25; DUR=2; AR=16000

mkdir -p "$OUTDIR"

# ---------------------------------------------------------------------------
# Deterministic RNG, pure bash integer arithmetic (independent of bash's
# $RANDOM implementation and of awk flavour). 31-bit state, murmur3-style
# finaliser; all products stay below 2^63.
_rs=0
mix31() {
  local h=$1
  h=$(( (h ^ (h >> 16)) & 0x7fffffff ))
  h=$(( (h * 0x85ebca6b) & 0x7fffffff ))
  h=$(( (h ^ (h >> 13)) & 0x7fffffff ))
  h=$(( (h * 0xc2b2ae35) & 0x7fffffff ))
  h=$(( (h ^ (h >> 16)) & 0x7fffffff ))
  R=$h
}
rng_init() { # SEED CLASS INDEX
  mix31 $(( ($1 * 0x9E3779B) & 0x7fffffff )); local a=$R
  mix31 $(( (a ^ ($2 * 0x3C6EF37 + 1)) & 0x7fffffff )); local b=$R
  mix31 $(( (b ^ ($3 * 0x1B873593 + 7)) & 0x7fffffff )); _rs=$R
}
# uni LO HI -> V = uniform integer in [LO, HI]
uni() {
  _rs=$(( (_rs + 0x6D2B79F5) & 0x7fffffff ))
  mix31 "$_rs"
  V=$(( $1 + R % ($2 - $1 + 1) ))
}
# milli VALUE_IN_THOUSANDTHS -> M = decimal string ("-1.250")
milli() {
  local v=$1 s=""
  (( v < 0 )) && { s="-"; v=$(( -v )); }
  M=$(printf '%s%d.%03d' "$s" $(( v / 1000 )) $(( v % 1000 )))
}

# Triangle-wave bounce in [0, SPAN] with SPEED px/s and OFFSET px, as an
# ffmpeg expression of t (commas escaped for use inside quoted options).
bounce() { printf '(%s)-abs((%s)-mod(%s*t+%s\\,2*(%s)))' "$1" "$1" "$2" "$3" "$1"; }

# ---------------------------------------------------------------------------
# Build the ffmpeg command for one clip; sets CMD (array).
build_clip() { # CLASS_INDEX CLIP_INDEX OUTFILE
  local ci=$1 idx=$2 outfile=$3
  rng_init "$SEED" "$ci" "$idx"

  # --- background: base colour + one of 4 textures, slowly drifting --------
  local y0 cb0 cr0 amp per drift tex bg
  uni 50 200; y0=$V
  uni 60 196; cb0=$V
  uni 60 196; cr0=$V
  uni 12 45;  amp=$V
  uni 5 16;   per=$V
  uni -15 15; drift=$V
  uni 0 3;    tex=$V
  local cvar; uni 10 40; cvar=$V
  local ang; uni 0 628; milli $(( V * 10 )); ang=$M   # 0..6.28 rad
  case $tex in
    0) # oriented stripes
       bg="lum='${y0}+${amp}*sin(((X+${drift}*T)*cos(${ang})+Y*sin(${ang}))/${per})'" ;;
    1) # checkerboard
       bg="lum='${y0}+${amp}*(2*mod(floor((X+${drift}*T)/(2*${per}))+floor(Y/(2*${per}))\\,2)-1)'" ;;
    2) # plasma
       bg="lum='${y0}+${amp}*sin((X+${drift}*T)/${per})*cos(Y/(1.3*${per})+0.3*T)'" ;;
    3) # concentric rings around a random point
       local rx ry; uni 0 $W; rx=$V; uni 0 $H; ry=$V
       bg="lum='${y0}+${amp}*sin(hypot(X-${rx}\\,Y-${ry})/${per}-${drift}*T/${per})'" ;;
  esac
  bg+=":cb='${cb0}+${cvar}*sin(X/37+${ang})':cr='${cr0}+${cvar}*cos(Y/29-${ang})'"
  bg="nullsrc=s=${W}x${H}:r=${FPS}:d=${DUR},format=yuv420p,geq=${bg}"

  # --- object colour: random, but with enough luma contrast to the bg ------
  local r g b lum tries=0
  while :; do
    uni 0 255; r=$V; uni 0 255; g=$V; uni 0 255; b=$V
    lum=$(( (77 * r + 150 * g + 29 * b) >> 8 ))
    (( (lum - y0) * (lum - y0) >= 60 * 60 || ++tries >= 20 )) && break
  done
  (( (lum - y0) * (lum - y0) >= 60 * 60 )) || { if (( y0 > 128 )); then r=20; g=20; b=30; else r=240; g=240; b=225; fi; }
  local rgb; rgb=$(printf '0x%02X%02X%02X' "$r" "$g" "$b")

  # --- class-specific object, motion and sound ------------------------------
  local obj ov aud f amp_a
  uni 950 1050; local jit=$V                    # frequency factor, thousandths
  uni 200 400; milli $V; amp_a=$M               # tone amplitude 0.2..0.4
  case ${CLASSES[$ci]} in
    ball_horizontal)
      local d y v off c
      uni 18 30; d=$V; uni 4 $(( H - d - 4 )); y=$V
      uni 50 130; v=$V; uni 0 $(( 2 * (W - d) )); off=$V
      milli $(( (d - 1) * 500 )); c=$M
      obj="color=c=black@0:s=${d}x${d}:r=${FPS}:d=${DUR},format=rgba,geq=r=${r}:g=${g}:b=${b}:a='255*clip(${c}+0.5-hypot(X-${c}\\,Y-${c})\\,0\\,1)'"
      ov="x='$(bounce W-w "$v" "$off")':y=${y}"
      milli $(( 440 * jit )); f=$M
      aud="${amp_a}*sin(2*PI*${f}*t)" ;;
    box_vertical)
      local s x v off
      uni 16 28; s=$V; uni 4 $(( W - s - 4 )); x=$V
      uni 40 100; v=$V; uni 0 $(( 2 * (H - s) )); off=$V
      obj="color=c=${rgb}:s=${s}x${s}:r=${FPS}:d=${DUR},format=rgba"
      ov="x=${x}:y='$(bounce H-h "$v" "$off")'"
      milli $(( 880 * jit )); f=$M
      aud="${amp_a}*sin(2*PI*${f}*t)" ;;
    bar_diagonal)
      local bw bh vx vy ox oy rate
      uni 30 44; bw=$V; uni 6 10; bh=$V
      uni 40 90; vx=$V; uni 30 70; vy=$V
      uni 0 $(( 2 * (W - bw) )); ox=$V; uni 0 $(( 2 * (H - bh) )); oy=$V
      obj="color=c=${rgb}:s=${bw}x${bh}:r=${FPS}:d=${DUR},format=rgba"
      ov="x='$(bounce W-w "$vx" "$ox")':y='$(bounce H-h "$vy" "$oy")'"
      uni 3000 5000; milli $V; rate=$M
      local ph; uni 0 1000; milli $V; ph=$M
      aud="${amp_a}*lt(mod(${rate}*t+${ph}\\,1)\\,0.4)*(2*random(0)-1)" ;;
    pulse)
      local rmin rmax cx cy pf
      uni 5 9; rmin=$V; uni 18 26; rmax=$V
      uni $(( rmax + 2 )) $(( W - rmax - 3 )); cx=$V; uni $(( rmax + 2 )) $(( H - rmax - 3 )); cy=$V
      uni 800 1600; milli $V; pf=$M
      local ph; uni 0 628; milli $(( V * 10 )); ph=$M
      local rad="(${rmin}+$(( rmax - rmin ))*(0.5-0.5*cos(2*PI*${pf}*T+${ph})))"
      obj="color=c=black@0:s=${W}x${H}:r=${FPS}:d=${DUR},format=rgba,geq=r=${r}:g=${g}:b=${b}:a='255*clip(${rad}+0.5-hypot(X-${cx}\\,Y-${cy})\\,0\\,1)'"
      ov="x=0:y=0"
      milli $(( 220 * jit )); f=$M
      aud="${amp_a}*(0.25+0.75*(0.5-0.5*cos(2*PI*${pf}*t+${ph})))*sin(2*PI*${f}*t)" ;;
    orbit)
      local s rad cx cy w dir ph c
      uni 16 24; s=$V; uni 18 34; rad=$V
      local hs=$(( s / 2 ))
      uni $(( rad + hs + 2 )) $(( W - rad - hs - 2 )); cx=$V
      uni $(( rad + hs + 2 )) $(( H - rad - hs - 2 )); cy=$V
      uni 500 1100; milli $V; w=$M
      uni 0 1; dir=$(( V * 2 - 1 ))
      uni 0 628; milli $(( V * 10 )); ph=$M
      milli $(( (s - 1) * 500 )); c=$M
      obj="color=c=black@0:s=${s}x${s}:r=${FPS}:d=${DUR},format=rgba,geq=r=${r}:g=${g}:b=${b}:a='255*clip(${c}+0.5-abs(X-${c})-abs(Y-${c})\\,0\\,1)'"
      ov="x='${cx}-${hs}+${rad}*cos(${dir}*2*PI*${w}*t+${ph})':y='${cy}-${hs}+${rad}*sin(${dir}*2*PI*${w}*t+${ph})'"
      milli $(( 660 * jit )); f=$M
      aud="${amp_a}*sin(2*PI*${f}*t+5*sin(2*PI*6*t))" ;;   # +-30 Hz vibrato
  esac

  # quiet noise floor, per-clip level
  local nl; uni 3 20; milli $V; nl=$M    # 0.003..0.020
  aud="${aud}+${nl}*(2*random(1)-1)"

  local graph="${bg}[bg];${obj}[obj];[bg][obj]overlay=${ov}:eval=frame:shortest=1,format=yuv420p[v];"
  graph+="aevalsrc=exprs='${aud}':s=${AR}:d=${DUR}:c=mono[a]"

  CMD=("$FFMPEG" -nostdin -hide_banner -loglevel error -y
       -filter_complex "$graph" -map '[v]' -map '[a]'
       -c:v libx264 -preset veryfast -crf 28 -pix_fmt yuv420p -g 25 -bf 2 -threads 1
       -c:a aac -b:a 32k -ar "$AR" -ac 1
       -t "$DUR" -map_metadata -1 -fflags +bitexact -flags:v +bitexact -flags:a +bitexact
       -movflags +faststart -f mp4 "$outfile.tmp")
}

# ---------------------------------------------------------------------------
fail=0
running=0
csv="file,label"
for ci in "${!CLASSES[@]}"; do
  label=${CLASSES[$ci]}
  for (( i = 0; i < N; i++ )); do
    name=$(printf '%s_%03d.mp4' "$label" "$i")
    csv+=$'\n'"$name,$label"
    build_clip "$ci" "$i" "$OUTDIR/$name"
    if (( running >= JOBS )); then
      wait -n || fail=1
      running=$(( running - 1 ))
    fi
    ( "${CMD[@]}" && mv -f "$OUTDIR/$name.tmp" "$OUTDIR/$name" \
        || { rm -f "$OUTDIR/$name.tmp"; exit 1; } ) &
    running=$(( running + 1 ))
  done
done
while (( running > 0 )); do
  wait -n || fail=1
  running=$(( running - 1 ))
done

if (( fail )); then
  echo "generate_labelled.sh: some clips failed" >&2
  exit 1
fi
printf '%s\n' "$csv" > "$OUTDIR/labels.csv"
echo "generate_labelled.sh: wrote $(( N * ${#CLASSES[@]} )) clips (${#CLASSES[@]} classes x $N) to $OUTDIR" >&2
