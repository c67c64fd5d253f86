#!/usr/bin/env bash
# The main job on the embedded default: set up, build the ml-latest-small task corpus (cached), train the `quick`
# recipe (SmolLM2-135M-Instruct, both stages, ~15 min on 2 CPU cores) into checkpoints/elm-quick, evaluate it on
# held-out movies against the controls (checkpoints/elm-quick-eval/report.md, a few minutes), and ask it about a movie it never saw.
# Running it again resumes an interrupted run, or skips training if it finished. Extra arguments go to train.py;
# ELM_OUTPUT_DIR and ELM_EVAL_ARGS change where the model goes and how evaluation runs (the tests use both).
set -euo pipefail
cd "$(dirname "$0")/.."
OUTPUT_DIR=${ELM_OUTPUT_DIR:-checkpoints/elm-quick}
bash scripts/setup.sh
.venv/bin/accelerate launch --cpu --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no \
    train.py --config recipes/quick.yaml --output_dir "$OUTPUT_DIR" "$@"
.venv/bin/python -m modeling_elm.scripts.evaluate --model "$OUTPUT_DIR" \
    ${ELM_EVAL_ARGS:---max_examples 48}
echo
.venv/bin/python -m modeling_elm.scripts.describe --model "$OUTPUT_DIR"
