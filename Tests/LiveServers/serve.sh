#!/usr/bin/env bash
# serve.sh PROTOCOL PORT CLIP WORKDIR [SECRET]
#
# Serves CLIP (H.264 + AAC) on 127.0.0.1:PORT the way a real peer of PROTOCOL would, in the
# foreground, until its process group is killed (the tests stop, pause and kill the whole group).
# Listeners that take one client per run (ffmpeg's tcp and srt) start again after each client,
# like a camera or encoder that keeps listening. SECRET is the RTSP password, the SRT passphrase
# or the value of the X-Token header the HLS server requires.
set -u
protocol=$1 port=$2 clip=$3 work=$4 secret=${5:-}
here=$(cd "$(dirname "$0")" && pwd)
ff=(ffmpeg -nostdin -hide_banner -loglevel error)
mkdir -p "$work"
case $protocol in
  udp)
    exec "${ff[@]}" -re -stream_loop -1 -i "$clip" -c copy -f mpegts "udp://127.0.0.1:$port?pkt_size=1316" ;;
  tcp)
    while :; do "${ff[@]}" -re -stream_loop -1 -i "$clip" -c copy -f mpegts "tcp://127.0.0.1:$port?listen=1"; sleep 0.2; done ;;
  srt)
    while :; do
      "${ff[@]}" -re -stream_loop -1 -i "$clip" -c copy -f mpegts "srt://127.0.0.1:$port?mode=listener&passphrase=$secret"
      sleep 0.2
    done ;;
  rtsp)
    exec /usr/bin/python3 "$here/rtsp_server.py" --port "$port" --clip "$clip" --user viewer --password "$secret" ;;
  rtmp)
    # nginx with Debian's RTMP module; an encoder publishes the clip to it, and the daemon plays it.
    mkdir -p "$work/nginx/logs"
    cat > "$work/nginx/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 64; }
rtmp { server { listen 127.0.0.1:$port; application live { live on; record off; } } }
CONF
    nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" &
    while :; do
      sleep 0.3
      "${ff[@]}" -re -stream_loop -1 -i "$clip" -c copy -f flv "rtmp://127.0.0.1:$port/live/cam"
    done ;;
  hls)
    # A live playlist (6 one-second segments, old ones deleted) behind an HTTP server.
    rm -rf "$work/hls" && mkdir -p "$work/hls"
    "${ff[@]}" -re -stream_loop -1 -i "$clip" -c copy -f hls -hls_time 1 -hls_list_size 6 \
      -hls_flags delete_segments "$work/hls/live.m3u8" &
    exec /usr/bin/python3 "$here/http_server.py" --port "$port" --directory "$work/hls" --header "X-Token: $secret" ;;
  *)
    echo "serve.sh: unknown protocol $protocol" >&2; exit 2 ;;
esac
