"""Distributed runs are what their launch asked for: announced, refused when accelerate would quietly run something
else, and saved whole whichever stage trained last."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from trl import SFTConfig

from helpers.elm import build_tiny_corpus, tiny_train_args, write_tiny_base_model
from modeling_elm.training.launch import check_launch, describe_run

ROOT = Path(__file__).resolve().parents[2]
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1", "--mixed_precision", "no",
              "--dynamo_backend", "no"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("distributed-inputs")
    return write_tiny_base_model(folder / "base"), build_tiny_corpus(folder)


def launch(launcher: list[str], args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([*launcher, str(ROOT / "train.py"), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def cpu_config() -> SFTConfig:
    return SFTConfig(output_dir="unused", use_cpu=True, bf16=False, report_to="none")


def test_a_run_says_what_it_is(caplog):
    with caplog.at_level(logging.INFO, logger="modeling_elm.training.launch"):
        check_launch(cpu_config(), environ={})
    assert "Training on 1 process (single process) on cpu, float32" in caplog.text
    assert describe_run(cpu_config(), environ={}) == "1 process (single process) on cpu, float32"


@pytest.mark.parametrize("variable, named",
                         [("ACCELERATE_USE_FSDP", "FSDP"), ("ACCELERATE_USE_DEEPSPEED", "DeepSpeed")])
def test_sharding_asked_for_on_cpu_is_refused_not_run_as_ddp(variable, named):
    with pytest.raises(SystemExit, match=f"(?s)asked for {named}.*plain DDP over gloo.*torchrun --nproc_per_node"):
        check_launch(cpu_config(), environ={variable: "true"})


def test_lora_under_sharding_is_refused_with_the_choices():
    with pytest.raises(SystemExit, match="(?s)--stage2 lora under FSDP.*--stage2 full.*ddp.yaml"):
        check_launch(cpu_config(), stage2="lora", environ={"ACCELERATE_USE_FSDP": "true"})


def test_accelerate_cpu_launch_of_two_processes_is_refused_before_any_work(inputs, tmp_path):
    out = tmp_path / "out"
    result = launch([*ACCELERATE, "--cpu", "--num_processes", "2"], tiny_train_args(*inputs, out), timeout=300)
    assert result.returncode != 0
    log = result.stdout + result.stderr
    assert "asked for several processes but started one" in log
    assert "configs/accelerate/cpu_ddp.yaml --num_processes N" in log
    assert not (out / "stage0").exists()  # refused before assembling anything


def test_fsdp_config_on_cpu_processes_is_refused(inputs, tmp_path):
    out = tmp_path / "out"
    launcher = [*ACCELERATE, "--config_file", str(ROOT / "configs/accelerate/fsdp2.yaml"), "--num_processes", "2"]
    result = launch(launcher, tiny_train_args(*inputs, out), timeout=300)
    assert result.returncode != 0
    assert "The launch asked for FSDP, but this run is on the CPU" in result.stdout + result.stderr
    assert not (out / "stage0").exists()


def test_readme_cpu_ddp_command_starts_two_processes_and_stage1_only_saves_a_whole_elm(inputs, tmp_path):
    from modeling_elm import ElmForCausalLM

    out = tmp_path / "out"
    launcher = [*ACCELERATE, "--config_file", str(ROOT / "configs/accelerate/cpu_ddp.yaml"), "--num_processes", "2"]
    result = launch(launcher, tiny_train_args(*inputs, out, stage2="none"))
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert "Training on 2 processes (DDP over gloo) on cpu, float32" in log
    marker = json.loads((out / "elm_stage.json").read_text())
    assert marker["complete"] and marker["stage"] == 1
    assert marker["stages"]["stage1"]["rank_sync"]["world_size"] == 2
    model = ElmForCausalLM.from_pretrained(out)  # loadable: the LM and the trained adapters
    adapters = load_file(str(out / "stage1" / "final" / "elm_adapters.safetensors"))
    state = model.state_dict()
    assert adapters and all(torch.equal(state[k], v) for k, v in adapters.items())


def test_final_save_of_a_sharded_stage1_run_writes_the_gathered_weights(tmp_path, tiny_elm):
    """Under FSDP / ZeRO-3 the main process holds shards: what is saved must be the gathered whole, also when the
    last trainer trained the adapters only (--stage2 none)."""
    from modeling_elm.training.stages import save_final

    model, processor = tiny_elm
    gathered = {k: v.clone() + 1.0 for k, v in model.state_dict().items()}  # what the other ranks' shards make up
    expected = {k: v.clone() for k, v in gathered.items()}  # save_pretrained consumes the dict it is given

    class ShardedStage1Trainer:
        is_sharded = True
        adapter_only_checkpoints = True

        def whole_state_dict(self):
            return dict(gathered)

    save_final(model, processor, tmp_path, {"stage1": {"stage": 1}}, ShardedStage1Trainer(), tmp_path, None)
    from modeling_elm import ElmForCausalLM

    reloaded = ElmForCausalLM.from_pretrained(tmp_path).state_dict()
    assert reloaded.keys() == expected.keys()
    assert all(torch.equal(reloaded[k], expected[k]) for k in expected)
