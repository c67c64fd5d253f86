#!/usr/bin/env bash
# The GPU checks of docs/benchmarks.md, as one script a GPU machine runs as is in under 8 minutes (each step has its
# own time limit; the limits add up to 8 minutes). Figures go to
# $OUT/gpu_check.json (one JSON), each step's log beside it. Prepared here by benchmarks/gpu_prepare.sh, then:
#   device run(command="bash benchmarks/gpu_check.sh", carry=[".whl", "build/gpu"], timeout_s=570)
# Steps (each bounded by its own timeout, so one slow step cannot eat the others' time):
#   1. bench_training, SmolLM2-135M config, random init: ELM stage 2 / stage 1 / plain TRL SFT, tokens/s, MFU;
#      padded rows grouped by length, then padding-free under flex attention
#   2. the same (padded) for the SmolLM2-1.7B config
#   3. 2 minutes of the GPU recipe (recipes/movielens-semantic.yaml, 64k tokens per step) on a
#      random-init 135M model and the carried 24-task corpus: steps/s and tokens/s of the real train.py
#   4. evaluation on the device: 300 held-out movies x 5 tasks x (real, shuffled) with generation and NLL
# SMOKE=1 bash benchmarks/gpu_check.sh  runs every step tiny on this machine's CPU (no wheels): a dry run of the script.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/elm-gpu-check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
if [ -n "${SMOKE:-}" ]; then
  PY=${PYTHON:-.venv/bin/python}; DEVICE=cpu; STEPS=3; WARMUP=1; TOKENS=256; BIG_TOKENS=128; RECIPE_STEPS=2
  EXAMPLES=3; TASKS=2; BIG_MODEL=SmolLM2-135M-Instruct; BIG_STEPS=3; LIMIT=600; RECIPE_LIMIT=600
  PACKED_ATTENTION=eager  # flex_attention compiles for a minute on a CPU
  export PYTHONPATH=$PWD
else
  DEVICE=cuda; STEPS=8; WARMUP=3; TOKENS=65536; BIG_TOKENS=16384; RECIPE_STEPS=15; EXAMPLES=300; TASKS=5
  BIG_MODEL=SmolLM2-1.7B-Instruct; BIG_STEPS=6; LIMIT=75; RECIPE_LIMIT=120  # at most 8 minutes in all
  PACKED_ATTENTION=flex_attention  # attends within each packed row; sdpa would build a 64k x 64k mask
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/gpu.txt" 2>&1
fi
export PYTHONUNBUFFERED=1 ELM_CACHE=/tmp/elm-cache HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
CORPUS=build/gpu/corpus
TOKENIZER=build/gpu/tokenizer
step() {  # step NAME SECONDS COMMAND...: run it under its own time limit, log to $OUT/NAME.log, note its status
  local name=$1 seconds=$2; shift 2
  local start=$SECONDS
  timeout "$seconds" "$@" > "$OUT/$name.log" 2>&1
  echo "{\"step\": \"$name\", \"rc\": $?, \"seconds\": $((SECONDS - start))}" >> "$OUT/steps.jsonl"
  tail -n 3 "$OUT/$name.log"
}
: > "$OUT/steps.jsonl"

step train_135m "$LIMIT" $PY benchmarks/bench_training.py --device $DEVICE --random_init --tokenizer $TOKENIZER \
  --corpus $CORPUS --batch_tokens $TOKENS --steps $STEPS --warmup $WARMUP --repeats 1 --output "$OUT/train_135m.json"
step train_135m_packed "$LIMIT" $PY benchmarks/bench_training.py --device $DEVICE --random_init --tokenizer $TOKENIZER \
  --corpus $CORPUS --batch_tokens $TOKENS --steps $STEPS --warmup $WARMUP --repeats 1 --padding_free true \
  --attn_implementation $PACKED_ATTENTION --output "$OUT/train_135m_packed.json"
step train_1_7b "$LIMIT" $PY benchmarks/bench_training.py --device $DEVICE --random_init --tokenizer $TOKENIZER \
  --base_model HuggingFaceTB/$BIG_MODEL --corpus $CORPUS --batch_tokens $BIG_TOKENS --steps $BIG_STEPS --warmup $WARMUP \
  --repeats 1 --output "$OUT/train_1_7b.json"

# A random-init SmolLM2-135M folder: speed does not depend on the weights, and the real ones do not fit one call.
step base_model 45 $PY - <<'PYTHON'
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
import torch
torch.manual_seed(0)
config = AutoConfig.from_pretrained("benchmarks/model_configs/SmolLM2-135M-Instruct.json")
AutoModelForCausalLM.from_config(config).save_pretrained("/tmp/smollm2-135m-random")
AutoTokenizer.from_pretrained("build/gpu/tokenizer").save_pretrained("/tmp/smollm2-135m-random")
PYTHON
rm -rf /tmp/elm-gpu-run
DEVICE_FLAGS=(); [ -n "${SMOKE:-}" ] && DEVICE_FLAGS=(--use_cpu true --bf16 false)
# the recipe with its data section replaced by the corpus carried here (--corpus_path)
$PY -c "import yaml; r = yaml.safe_load(open('recipes/movielens-semantic.yaml')); r.pop('data'); \
yaml.safe_dump(r, open('/tmp/elm-gpu-recipe.yaml', 'w'))"
step recipe $RECIPE_LIMIT $PY train.py --config /tmp/elm-gpu-recipe.yaml --base_model /tmp/smollm2-135m-random \
  --corpus_path $CORPUS --output_dir /tmp/elm-gpu-run --batch_tokens $TOKENS \
  --stage1_max_steps $RECIPE_STEPS --stage2_max_steps $RECIPE_STEPS --eval_strategy no --report_to none \
  --save_steps 100000 --logging_steps 5 --warmup_steps 2 "${DEVICE_FLAGS[@]}"
step evaluation "$LIMIT" $PY benchmarks/bench_generation.py --model /tmp/elm-gpu-run --device $DEVICE --evaluation \
  --tasks $TASKS --examples $EXAMPLES --output "$OUT/evaluation.json"

# One JSON: every step's figures and status.
$PY - "$OUT" <<'PYTHON'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
report = {"steps": [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines() if line.strip()]}
for name in ("train_135m", "train_135m_packed", "train_1_7b", "evaluation"):
    path = out / f"{name}.json"
    report[name] = json.loads(path.read_text()) if path.is_file() else None
marker = Path("/tmp/elm-gpu-run/elm_stage.json")
if marker.is_file():
    stages = json.loads(marker.read_text())["stages"]
    # seconds include each stage's start (model to device, dataloader): a lower bound on the speed
    report["recipe"] = {name: {"steps": s["global_step"], "seconds": s["seconds"],
                               "rows_per_step": s.get("rows_per_device_step"),
                               "steps_per_s": round(s["global_step"] / max(s["seconds"], 1), 3)}
                        for name, s in stages.items()}
gpu = out / "gpu.txt"
report["gpu"] = gpu.read_text().strip() if gpu.is_file() else "none (smoke run)"
(out / "gpu_check.json").write_text(json.dumps(report, indent=2))
print(json.dumps(report, indent=2)[:3000])
PYTHON
