#!/usr/bin/env bash
# Regenerate the small bundled test clips in samples/clips/.
#
# Uses only the ffmpeg CLI with lavfi (synthetic) sources, so no external
# media is needed. All sources are deterministic (fixed seeds, single-threaded
# encoders, metadata stripped, bitexact muxing), so re-running with the same
# ffmpeg build reproduces the same bytes.
#
# Usage: samples/generate.sh            (writes samples/clips/*)
#        FFMPEG=/path/to/ffmpeg samples/generate.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/clips"
FFMPEG="${FFMPEG:-ffmpeg}"
mkdir -p "$out"

# Common flags: quiet, overwrite, no stdin, no metadata / encoder version tags.
ff() {
  "$FFMPEG" -nostdin -hide_banner -loglevel error -y "$@"
}
strip=(-map_metadata -1 -map_chapters -1 -fflags +bitexact -flags:v +bitexact -flags:a +bitexact)

# ---------------------------------------------------------------------------
# Reusable filter snippets (expressions are single-quoted for the filtergraph
# parser, so commas inside them need no escaping).

# A soft-edged disc of diameter $1 and colour r,g,b ($2 $3 $4) on a
# transparent canvas; $5 = frame rate, $6 = duration.
disc() {
  local d=$1 r=$2 g=$3 b=$4 fps=$5 dur=$6
  local c; c=$(awk -v d="$d" 'BEGIN{printf "%.1f", (d-1)/2}')
  printf "color=c=black@0:s=%dx%d:r=%s:d=%s,format=rgba,geq=r=%d:g=%d:b=%d:a='255*clip(%s+0.5-hypot(X-%s\\,Y-%s)\\,0\\,1)'" \
    "$d" "$d" "$fps" "$dur" "$r" "$g" "$b" "$c" "$c" "$c"
}

# Triangle-wave ("bouncing") position between 0 and L=(W-w) or (H-h):
# bounce SPAN SPEED OFFSET  ->  expression in t
bounce() {
  local span=$1 speed=$2 off=$3
  printf "(%s)-abs((%s)-mod(%s*t+%s\\,2*(%s)))" "$span" "$span" "$speed" "$off" "$span"
}

# ---------------------------------------------------------------------------
# 1. h264_aac.mp4: H.264 + AAC stereo 44.1 kHz, 320x240, 25 fps, 4 s.
#    Background: drifting colour plasma with fine stripes. Objects: a red disc
#    bouncing left-right, a cyan square bouncing up-down, and a small
#    testsrc2 patch (textured object) travelling diagonally.
#    Audio: left = 440 Hz tone whose loudness follows the disc's x position,
#    right = 660 Hz tone + slow chirp, plus a little noise.
W=320; H=240; FPS=25; D=4
bg="nullsrc=s=${W}x${H}:r=${FPS}:d=${D},format=yuv420p,geq=lum='110+45*sin(X/9+2*T)*cos(Y/13-T)+25*sin((X+Y)/4)':cb='128+50*sin(X/47+T)':cr='128+50*cos(Y/31-0.7*T)'"
f="${bg}[bg];"
f+="$(disc 44 235 50 40 $FPS $D)[disc];"
f+="color=c=0x20C8F0:s=36x36:r=${FPS}:d=${D},format=rgba[sq];"
f+="testsrc2=s=64x48:r=${FPS}:d=${D},format=rgba[tex];"
f+="[bg][disc]overlay=x='$(bounce "W-w" 110 0)':y='30+20*sin(2*PI*0.5*t)':eval=frame[v1];"
f+="[v1][sq]overlay=x=230:y='$(bounce "H-h" 90 40)':eval=frame[v2];"
f+="[v2][tex]overlay=x='$(bounce "W-w" 55 200)':y='$(bounce "H-h" 45 10)':eval=frame,format=yuv420p[v]"
# Disc x position in [0,1] (same bounce as above, span 276) drives the left gain.
ax="(276-abs(276-mod(110*t\\,552)))/276"
a="aevalsrc=exprs='(0.1+0.3*(1-${ax}))*sin(2*PI*440*t)+0.03*(2*random(0)-1)|0.2*sin(2*PI*660*t)+0.12*sin(2*PI*(300+60*t)*t)+0.03*(2*random(1)-1)':s=44100:d=${D}:c=stereo[a]"
ff -filter_complex "${f};${a}" -map '[v]' -map '[a]' \
  -c:v libx264 -preset medium -crf 28 -pix_fmt yuv420p -profile:v high -g 25 -bf 2 -threads 1 \
  -c:a aac -b:a 96k -ar 44100 -ac 2 \
  -t $D -movflags +faststart "${strip[@]}" "$out/h264_aac.mp4"

# ---------------------------------------------------------------------------
# 2. vp9_opus.webm: VP9 + Opus 48 kHz stereo, 320x240, 25 fps, 4 s.
#    Background: slowly rotating 4-colour gradient multiplied with a drifting
#    checkerboard. Objects: two discs orbiting in opposite directions and a
#    yellow bar sliding diagonally. Audio: two-tone warble + clicks.
bg="gradients=s=${W}x${H}:r=${FPS}:d=${D}:n=4:c0=0x1E3C78:c1=0xC85A28:c2=0x28A050:c3=0xE6D2B4:seed=1:speed=0.02,format=yuv420p,"
bg+="geq=lum='lum(X,Y)*(0.75+0.25*(2*mod(floor((X+20*T)/16)+floor(Y/16)\\,2)-1))':cb='cb(X,Y)':cr='cr(X,Y)'"
f="${bg}[bg];"
f+="$(disc 40 250 240 250 $FPS $D)[d1];"
f+="$(disc 28 200 30 200 $FPS $D)[d2];"
f+="color=c=0xF0E020:s=70x14:r=${FPS}:d=${D},format=rgba[bar];"
f+="[bg][d1]overlay=x='140+90*cos(2*PI*0.4*t)':y='100+70*sin(2*PI*0.4*t)':eval=frame[v1];"
f+="[v1][d2]overlay=x='146+60*cos(-2*PI*0.7*t+1)':y='106+50*sin(-2*PI*0.7*t+1)':eval=frame[v2];"
f+="[v2][bar]overlay=x='$(bounce "W-w" 80 0)':y='$(bounce "H-h" 60 0)':eval=frame,format=yuv420p[v]"
a="aevalsrc=exprs='0.25*sin(2*PI*(520+40*sin(2*PI*5*t))*t)+0.4*lt(mod(t\\,0.5)\\,0.01)*sin(2*PI*2000*t)|0.25*sin(2*PI*(780+30*sin(2*PI*3*t))*t)':s=48000:n=960:d=${D}:c=stereo[a]"
ff -filter_complex "${f};${a}" -map '[v]' -map '[a]' \
  -c:v libvpx-vp9 -crf 40 -b:v 0 -deadline good -cpu-used 4 -row-mt 0 -threads 1 -g 25 -pix_fmt yuv420p \
  -c:a libopus -b:a 64k -ar 48000 -ac 2 \
  -t $D "${strip[@]}" "$out/vp9_opus.webm"

# ---------------------------------------------------------------------------
# 3. mpeg4_mp3.mkv: MPEG-4 Part 2 + MP3 44.1 kHz stereo, 320x240, 25 fps, 4 s.
#    Background: zooming Mandelbrot set. Objects: an orange disc bouncing
#    diagonally and a white square bouncing horizontally.
#    Audio: 330 Hz tone with 2 Hz tremolo + pink-ish noise bursts.
bg="mandelbrot=s=${W}x${H}:r=${FPS}:maxiter=300:start_scale=2.5:end_scale=0.5:end_pts=100:start_x=-0.75:start_y=0.1,trim=duration=${D},format=yuv420p"
f="${bg}[bg];"
f+="$(disc 36 250 140 20 $FPS $D)[disc];"
f+="color=c=0xF0F0F0:s=30x30:r=${FPS}:d=${D},format=rgba[sq];"
f+="[bg][disc]overlay=x='$(bounce "W-w" 95 30)':y='$(bounce "H-h" 70 0)':eval=frame[v1];"
f+="[v1][sq]overlay=x='$(bounce "W-w" 130 150)':y=190:eval=frame,format=yuv420p[v]"
a="aevalsrc=exprs='(0.2+0.15*sin(2*PI*2*t))*sin(2*PI*330*t)+0.15*gt(sin(2*PI*1.5*t)\\,0.7)*(2*random(0)-1)|(0.2+0.15*cos(2*PI*2*t))*sin(2*PI*495*t)':s=44100:d=${D}:c=stereo[a]"
ff -filter_complex "${f};${a}" -map '[v]' -map '[a]' \
  -c:v mpeg4 -q:v 12 -g 25 -bf 2 -pix_fmt yuv420p -threads 1 \
  -c:a libmp3lame -b:a 96k -ar 44100 -ac 2 \
  -t $D "${strip[@]}" "$out/mpeg4_mp3.mkv"

# ---------------------------------------------------------------------------
# 4. video_only.mp4: H.264 only (no audio stream), 320x240, 25 fps, 3 s.
#    Background: Game of Life with mould, upscaled. Objects: a green disc and
#    a magenta square moving in opposite directions.
D=3
bg="life=s=80x60:r=${FPS}:seed=7:ratio=0.2:mold=8:life_color=0x40A0FF:death_color=0x102030:mold_color=0x705020,scale=${W}x${H}:flags=neighbor,trim=duration=${D},format=yuv420p"
f="${bg}[bg];"
f+="$(disc 40 60 230 60 $FPS $D)[disc];"
f+="color=c=0xE020C0:s=34x34:r=${FPS}:d=${D},format=rgba[sq];"
f+="[bg][disc]overlay=x='$(bounce "W-w" 120 0)':y='100+60*sin(2*PI*0.6*t)':eval=frame[v1];"
f+="[v1][sq]overlay=x='$(bounce "W-w" 100 286)':y='$(bounce "H-h" 80 100)':eval=frame,format=yuv420p[v]"
ff -filter_complex "${f}" -map '[v]' -an \
  -c:v libx264 -preset medium -crf 28 -pix_fmt yuv420p -g 25 -bf 2 -threads 1 \
  -t $D -movflags +faststart "${strip[@]}" "$out/video_only.mp4"

# ---------------------------------------------------------------------------
# 5. audio_only.m4a: AAC only, 48 kHz stereo, 3 s.
#    A little arpeggio: notes change every 0.25 s, each with a decaying
#    envelope; right channel an octave lower; light noise floor.
note="440*pow(2\\,floor(mod(4*t\\,8))*2/12)"
env="exp(-6*mod(t\\,0.25))"
a="aevalsrc=exprs='0.4*${env}*sin(2*PI*${note}*t)+0.02*(2*random(0)-1)|0.3*${env}*sin(PI*${note}*t)+0.02*(2*random(1)-1)':s=48000:d=${D}:c=stereo"
ff -filter_complex "$a" -vn -c:a aac -b:a 96k -ar 48000 -ac 2 \
  -t $D -movflags +faststart "${strip[@]}" "$out/audio_only.m4a"
