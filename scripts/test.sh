#!/usr/bin/env bash
# The test command (README; .ci/run calls exactly this): set up the machine, start the services the
# tests need on 127.0.0.1, run the whole suite.  Extra arguments go to pytest, e.g. `-m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -x scripts/start_postgres.sh ]; then
  VIDRAY_TEST_PG_URL="$(bash scripts/start_postgres.sh)"
  export VIDRAY_TEST_PG_URL
fi
if [ -x scripts/build_vllm_venv.sh ]; then
  bash scripts/build_vllm_venv.sh || echo "test: the vLLM CPU venv could not be built; its test will say why"
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 RAY_USAGE_STATS_ENABLED=0
set +e
# One rerun for a failed test: on a 2-core machine a Ray node can miss Ray's fixed 30 s start-up
# window under load. A test that fails twice fails the run.
.venv/bin/python -m pytest --reruns 1 --reruns-delay 5 --durations=30 "$@"
rc=$?
set -e
[ -x scripts/stop_postgres.sh ] && bash scripts/stop_postgres.sh >/dev/null 2>&1 || true
exit $rc
