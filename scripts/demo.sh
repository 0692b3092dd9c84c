#!/usr/bin/env bash
# The main-job command (README): set up the machine, then run vidray on the embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m vidray.demo "$@"
