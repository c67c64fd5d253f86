"""The README's first command end to end on the real default (SmolLM2, ml-latest-small, MiniLM), shortened."""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_main_job_trains_evaluates_and_answers(tmp_path):
    out = tmp_path / "elm-quick"
    env = {**os.environ, "ELM_OUTPUT_DIR": str(out),
           "ELM_EVAL_ARGS": "--max_examples 4 --curve_examples 2 --max_new_tokens 12"}
    result = subprocess.run(
        ["bash", "scripts/main.sh", "--stage1_max_steps", "3", "--stage2_max_steps", "2", "--save_steps", "1000",
         "--report_to", "none", "--logging_steps", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    marker = json.loads((out / "elm_stage.json").read_text())
    assert marker["complete"] and marker["stages"]["stage2"]["global_step"] == 2
    assert (out / "loss_stage1.png").is_file() and (out / "model.safetensors").is_file()
    results = json.loads((tmp_path / "elm-quick-eval" / "results.json").read_text())
    assert set(results["tasks"]) == {"what_kind"} and "nll_real" in results["summary"]
    assert "held out from training" in result.stdout and f"Trained ELM: {out}" in result.stdout
