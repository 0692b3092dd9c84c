#!/usr/bin/env bash
# Idempotent machine set-up for vidray: Debian packages, then the venv with the CPU torch and every
# extra except `gpu`. Safe to re-run; does nothing that is already done.
#   bash scripts/setup.sh            # default: all CPU extras (serve, train, models, api, dev)
#   VIDRAY_EXTRAS=dev bash scripts/setup.sh   # a smaller install
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${VIDRAY_EXTRAS:-serve,train,models,api,dev}"

# 1. Debian packages (FFmpeg libraries for torchcodec, tesseract, espeak-ng, PostgreSQL, sample media, ...)
mapfile -t pkgs < <(grep -vE '^\s*(#|$)' scripts/apt-packages.txt)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. The venv. torch is pinned to the CPU build first: an unpinned torch pulls a multi-GB CUDA build.
py="${PYTHON:-python3.11}"
command -v "$py" >/dev/null || py=python3
[ -x .venv/bin/python ] || "$py" -m venv .venv
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)
stamp=.venv/.vidray-setup-stamp
want="$(cat pyproject.toml scripts/pip-nodeps.txt 2>/dev/null | sha256sum | cut -c1-16) $extras"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing Python packages into .venv (extras: $extras)"
  "${pip[@]}" install "torch==2.13.0" 2>&1 | grep -v "is ignored" || true
  "${pip[@]}" install "torch==2.13.0" -e ".[${extras}]" 2>&1 | grep -v "is ignored" || true
  if [ -s scripts/pip-nodeps.txt ]; then
    "${pip[@]}" install --no-deps -r scripts/pip-nodeps.txt 2>&1 | grep -v "is ignored" || true
  fi
  .venv/bin/python -c "import torch, torchcodec, ray, yt_dlp, av" || { echo "setup: core imports failed" >&2; exit 1; }
  if ls -d .venv/lib/python3*/site-packages/nvidia >/dev/null 2>&1; then
    echo "setup: CUDA libraries were pulled into .venv; a dependency asked for a non-CPU torch" >&2; exit 1
  fi
  echo "$want" > "$stamp"
fi
echo "setup: ok ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
