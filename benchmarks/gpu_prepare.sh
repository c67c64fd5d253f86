#!/usr/bin/env bash
# Prepare, on this machine, what benchmarks/gpu_check.sh needs on a GPU machine (no network there, and no
# project install: its torch is not ours). Writes two ignored folders that the device call carries:
#   .whl/        wheels for Python 3.12 of the libraries that machine lacks, at this venv's versions (~25 MB)
#   build/gpu/   SmolLM2's tokenizer, and the 24-task ml-latest-small corpus (vectors stored once: ~7 MB)
# Then, with the device tool:  run(command="bash benchmarks/gpu_check.sh", carry=[".whl", "build/gpu"], timeout_s=570)
# ../shared/GPU.md says what that machine has; docs/benchmarks.md where the figures go.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
grep -qxF '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl && mkdir -p .whl build/gpu

# Exactly the versions this venv runs, so the device runs the code the tests ran.
wanted="transformers huggingface_hub tokenizers trl datasets peft accelerate safetensors dill multiprocess xxhash
fsspec filelock regex httpx2 httpcore2 h11 anyio idna truststore typing_extensions PyYAML tqdm packaging"
pins=$($PY -m pip freeze | awk -F== -v want="$wanted" 'BEGIN { n = split(want, w, /[ \n]+/); for (i = 1; i <= n; i++) keep[tolower(w[i])] = 1 }
  { name = tolower($1); gsub(/-/, "_", name) } keep[name] { print $0 }')
echo "$pins" | tr '\n' ' '; echo
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl $pins

# The tokenizer (and chat template) of SmolLM2: the benchmarks build the LM itself from its config, no weights.
$PY - <<'PYTHON'
import shutil
from pathlib import Path

from modeling_elm.base_models import resolve_base_model

source, target = Path(resolve_base_model("HuggingFaceTB/SmolLM2-135M-Instruct")), Path("build/gpu/tokenizer")
target.mkdir(parents=True, exist_ok=True)
for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"):
    if (source / name).is_file():
        shutil.copy(source / name, target / name)
PYTHON
$PY -m modeling_elm.scripts.corpus --tasks all --corpus_dir build/gpu/corpus
du -sh .whl build/gpu
