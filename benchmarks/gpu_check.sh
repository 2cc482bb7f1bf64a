#!/usr/bin/env bash
# The prepared device check of issue 13, for the device tool (runs in the repo root of the copied tree).
# The GPU machine has torch but not pydantic: the wheels travel in .whl/ (carry: [".whl"]; README, Benchmarks).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c "import pydantic" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >&2 || true
exec python3 benchmarks/gpu_check.py "$@"
