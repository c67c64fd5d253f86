#!/usr/bin/env bash
# The main job on the embedded default: set up, then assemble an ELM around SmolLM2-135M-Instruct, save it, and
# generate from a vector. Extra arguments go to the job (see `python -m modeling_elm.assemble --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m modeling_elm.assemble "$@"
