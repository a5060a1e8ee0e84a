#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build, run and test ssl-daemon.
# Idempotent: packages already present are left alone, and `apt-get update` runs only
# when something is missing. Python packages go into a project-local venv (.venv).
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev
  libopenblas-dev pkgconf ffmpeg python3-venv
  # oneDNN: the convolutions (training.convolution = "onednn", the default)
  libdnnl-dev
  # the status-page test: a headless browser (and curl for plain requests)
  chromium fonts-dejavu-core curl
  # the live-protocol tests' real servers: GStreamer's RTSP server (run from Debian's python3 with
  # PyGObject), nginx with its RTMP module; SRT, TCP, UDP and HLS come from the ffmpeg CLI
  gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad python3-gi nginx libnginx-mod-rtmp
  # Open MPI: the build links it (data-parallel training under mpirun), the tests run mpirun
  libopenmpi-dev openmpi-bin
)

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python packages for reference checks (NumPy fixtures), the export checks (onnx, onnxruntime,
# safetensors) and the observability checks (prometheus_client, tensorboard) live in a venv so the
# system stays untouched.
# SSL_SETUP_PY lists extra requirement sets to install: "bench" adds PyAV for the decode benchmark,
# "torch" adds PyTorch (CPU) for the training benchmark and the golden-fixture script. CI needs neither.
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
want="numpy safetensors onnx onnxruntime prometheus_client tensorboard"
case " ${SSL_SETUP_PY:-} " in *" bench "*) want="$want av" ;; esac
case " ${SSL_SETUP_PY:-} " in *" torch "*) want="$want torch" ;; esac
for pkg in $want; do
  .venv/bin/python -c "import $pkg" 2>/dev/null || .venv/bin/pip install -q --disable-pip-version-check "$pkg"
done
