#!/usr/bin/env bash
# One-shot, idempotent set-up of a fresh machine for psi0:
#   system packages (ffmpeg, chromium + chromedriver), a virtual environment with the locked
#   dependency set, psi0 itself (editable), and the MediaPipe hand model assembled offline.
# Re-running is cheap: each step is skipped when its stamp says it is already done.
#
#   VENV=.venv            where the environment lives (make passes it)
#   PSI0_SKIP_APT=1       skip system packages (e.g. inside the Docker image, where they are baked in)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3.11}
log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# ---- 1. system packages ----------------------------------------------------------------------
need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
command -v tmux >/dev/null || need+=(tmux)
# sim/: MuJoCo renders headless through EGL on Mesa's software rasterizer (no GPU, no X server)
ldconfig -p | grep -q 'libEGL_mesa.so.0' || need+=(libegl1 libegl-mesa0 libgl1-mesa-dri)
if [ "${#need[@]}" -gt 0 ] && [ -z "${PSI0_SKIP_APT:-}" ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  log "installing system packages: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# ---- 2. virtual environment with the locked dependency set -----------------------------------
lock_hash=$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)
stamp="$VENV/.psi0-deps-$lock_hash"
if [ ! -f "$stamp" ]; then
  [ -x "$VENV/bin/python" ] || { log "creating $VENV"; "$PY" -m venv "$VENV"; }
  # The locked set is ~9.6 GB unpacked (CUDA torch + NVIDIA libraries: ~6.7 GB of it). Say so up front, with
  # the numbers, rather than let an installer fail half-way with ENOSPC.
  need_gb=11
  free_gb=$(df -Pk "$VENV" | awk 'NR==2 {printf "%d", $4 / 1048576}')
  log "disk: ${free_gb} GB free where $VENV lives; the first install needs ~${need_gb} GB"
  if [ "$free_gb" -lt "$need_gb" ]; then
    log "WARNING: less than ${need_gb} GB free: the install below may fail with 'No space left on device'"
  fi
  "$VENV/bin/python" -m pip install -q -U pip wheel
  log "installing locked dependencies (first time: a few minutes, ~9 GB with the CUDA torch wheel)"
  # requirements.lock pins every package; --no-deps keeps pip from re-resolving (and from
  # re-adding opencv-contrib-python, see below). It also keeps mjlab (sim/'s G1 model files) from
  # pulling in warp, mujoco-warp, wandb: sim/ only reads its MJCF and meshes.
  # uv installs the ~9 GB set in ~1 min where pip takes 4-5 (parallel downloads and unpacking; measured
  # here). Its cache sits inside the venv (same filesystem: the venv's files are hard links to it, no second
  # copy) and is removed after. pip is the fallback wherever uv cannot be installed or fails.
  # No --compile-bytecode: compiling all ~30 000 modules took ~70 s of a ~2 min set-up, most of them never
  # imported; tools/warm_bytecode.py (below) compiles what psi0 imports in ~12 s.
  if "$VENV/bin/python" -m pip install -q uv >/dev/null 2>&1 &&
     UV_CACHE_DIR="$VENV/.uv-cache" "$VENV/bin/uv" pip install -q --no-deps --python "$VENV/bin/python" \
       -r requirements.lock; then
    rm -rf "$VENV/.uv-cache"
  else
    rm -rf "$VENV/.uv-cache"
    log "uv unavailable or failed: installing with pip"
    # --no-cache-dir: pip's wheel cache would hold a second, compressed copy (~3.5 GB) of the same set.
    "$VENV/bin/python" -m pip install -q --no-deps --no-cache-dir -r requirements.lock
  fi
  rm -f "$VENV"/.psi0-deps-*
  touch "$stamp"
fi
# psi0 itself: editable, so the checkout is what runs (cheap; always refreshed).
"$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1

# One cv2: mediapipe asks for opencv-contrib-python, LeRobot pins opencv-python-headless<4.13.
# Both ship the same `cv2` package and overwrite each other's files. We keep only LeRobot's
# headless build (mediapipe's Tasks API does not use cv2; its drawing utils work with it).
if "$VENV/bin/python" -m pip show -q opencv-contrib-python >/dev/null 2>&1; then
  log "removing opencv-contrib-python (one cv2 build: opencv-python-headless)"
  "$VENV/bin/python" -m pip uninstall -q -y opencv-contrib-python
  "$VENV/bin/python" -m pip install -q --no-deps --force-reinstall "$(grep -i '^opencv-python-headless==' requirements.lock)"
fi

# ---- 3. MediaPipe hand model, assembled offline -----------------------------------------------
"$VENV/bin/python" tools/build_hand_model.py --quiet

# ---- 4. .pyc files for what psi0 imports ------------------------------------------------------
# Without them every fresh process (the suite starts ~90, plus Ray's workers and train's children) compiles
# torch's and transformers' modules again where PYTHONDONTWRITEBYTECODE is set (this VM's image sets it): a Ray
# test took 85 s instead of 45 s (measured here). Later processes read these even with the variable set.
pyc_stamp="$VENV/.psi0-pyc-$lock_hash"
if [ ! -f "$pyc_stamp" ]; then
  log "compiling what psi0 imports (~15 s)"
  # only speed depends on it: a crash here (say, a native import) is reported and the set-up goes on
  if PYTHONDONTWRITEBYTECODE= "$VENV/bin/python" tools/warm_bytecode.py; then
    rm -f "$VENV"/.psi0-pyc-*
    touch "$pyc_stamp"
  else
    log "WARNING: tools/warm_bytecode.py failed (exit $?): modules will be compiled on first import instead"
  fi
fi

log "ready: $VENV ($("$VENV/bin/python" --version))"
