#!/usr/bin/env bash
# Set up, then run the whole test suite (slow tests included: real SmolLM2, real subprocesses).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"` for the quick part.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pytest "$@"
