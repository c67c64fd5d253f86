#!/usr/bin/env bash
# Set up, then run the whole test suite (slow tests included: real SmolLM2, real subprocesses, real vLLM servers).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"` for the quick part.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup_vllm.sh   # the serving engine's own environment: tests/serving starts real vLLM servers
.venv/bin/python -m pytest "$@"
