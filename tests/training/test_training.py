"""Training: the collator's masks, both stages on a tiny random LM, LoRA, kill-and-resume, 2-process DDP, recipes."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from modeling_elm.checkpoints import write_marker
from modeling_elm.data.tokenization import tokenize_rows
from modeling_elm.training.stages import last_checkpoint
from modeling_elm.training.trainer import ElmDataCollator
from modeling_elm.data.corpus import VectorTable
from helpers.elm import assemble, build_tiny_corpus, run_train, tiny_train_args, write_tiny_base_model

ROOT = Path(__file__).resolve().parents[2]
STATISTICS = ("input_mean", "input_std")  # adapter buffers: standardisation statistics, never trained


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("training-inputs")
    return write_tiny_base_model(folder / "base"), build_tiny_corpus(folder)


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def split(state: dict) -> tuple[dict, dict]:
    adapters = {k: v for k, v in state.items() if ".adapters." in f".{k}"}
    return adapters, {k: v for k, v in state.items() if k not in adapters}


def changed(before: dict, after: dict) -> set[str]:
    return {k for k in before if not torch.equal(before[k], after[k])}


# The collator and tokenisation


def _rows(prompts, targets, slots):
    import datasets

    return datasets.Dataset.from_dict({"task": [f"t{i}" for i in range(len(prompts))], "prompt": prompts,
                                       "target": targets, "movie_slots": slots})


def _table(n=4, dim=8):
    """Entity e<k> has the vector (k+1, k+1, ...)."""
    return VectorTable([f"e{k}" for k in range(n)], np.repeat(np.arange(1.0, n + 1)[:, None], dim, axis=1), "movie")


def test_collator_labels_only_the_target_and_gathers_vectors_in_order(tiny_elm):
    _, processor = tiny_elm
    rows = _rows(["describe <movie> .", "what does <movie> and <movie> mean ?", "a film between <movie> ."],
                 ["a funny movie", "two sad films about war", "a war film"],
                 [[["e0"]], [["e1"], ["e2"]], [["e0", "e3"]]])  # the last: one slot, the mean of two entities
    table = _table()
    tokenized = tokenize_rows(rows, processor, {"movie": table}, max_length=None)
    batch = ElmDataCollator(processor.tokenizer.pad_token_id, {"movie": table.vectors})(list(tokenized))
    placeholder = processor.tokenizer.convert_tokens_to_ids("<movie>")
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    for i, row in enumerate(tokenized):
        n, p = row["length"], row["prompt_length"]
        assert (labels[i, :p] == -100).all()  # system prompt, user turn and placeholders: no loss
        assert torch.equal(labels[i, p:n], ids[i, p:n])  # the target and its end-of-turn token: loss
        assert (labels[i, n:] == -100).all() and (mask[i, n:] == 0).all() and (mask[i, :n] == 1).all()
        assert (ids[i, :p] == placeholder).sum() == len(rows[i]["movie_slots"])
        assert ids[i, n - 1] == processor.tokenizer.eos_token_id
    target = ids[0, tokenized[0]["prompt_length"]:tokenized[0]["length"] - 1]
    assert processor.tokenizer.decode(target) == "a funny movie"
    assert torch.equal(batch["vectors"]["movie"][:, 0], torch.tensor([1.0, 2.0, 3.0, 2.5]))


def test_the_lm_head_scores_only_the_target_positions_on_the_cpu_for_the_same_loss(tmp_path, monkeypatch):
    """TRL's fused head scores every position off CUDA; ElmSFTTrainer makes it score only those with a label (the
    main job's rows are ~4/5 prompt), for the loss the model itself computes from its full logits."""
    import trl.trainer.utils as trl_utils
    from trl import SFTConfig

    from modeling_elm.training.trainer import ElmSFTTrainer

    model, processor = assemble("llama")
    rows = _rows(["describe <movie> in a long question about it .", "what does <movie> and <movie> mean ?"],
                 ["funny", "two sad films"], [[["e0"]], [["e1"], ["e2"]]])
    table = _table()
    tokenized = list(tokenize_rows(rows, processor, {"movie": table}, max_length=None))
    collator = ElmDataCollator(processor.tokenizer.pad_token_id, {"movie": table.vectors})
    batch = collator(tokenized)
    with torch.no_grad():
        reference = model(**batch).loss
    config = SFTConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to="none",
                       remove_unused_columns=False, dataset_kwargs={"skip_prepare_dataset": True})
    trainer = ElmSFTTrainer(model=model, args=config, train_dataset=datasets.Dataset.from_list(tokenized),
                            data_collator=collator, processing_class=processor.tokenizer)
    scored, head = [], trl_utils._ChunkedLogProbFunction.apply
    monkeypatch.setattr(trl_utils._ChunkedLogProbFunction, "apply",
                        lambda hidden, *rest: scored.append(len(hidden)) or head(hidden, *rest))
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, dict(batch))
    targets = int((batch["labels"][:, 1:] != -100).sum())
    assert scored == [targets] and targets < batch["labels"][:, 1:].numel() / 2
    assert abs(loss.item() - reference.item()) < 1e-5
    assert not trl_utils._use_triton(torch.device("cpu"))  # TRL's own choice is back after the step


def test_vector_noise_is_seeded_and_scaled_by_each_dimensions_spread(tiny_elm):
    _, processor = tiny_elm
    rows = _rows(["describe <movie> ."] * 4, ["a"] * 4, [[["e0"]], [["e1"]], [["e2"]], [["e3"]]])
    rng = np.random.default_rng(0)
    spread = np.array([0.01, 1.0, 100.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    table = VectorTable([f"e{k}" for k in range(4)], rng.standard_normal((4, 8)) * spread, "movie")
    tokenized = list(tokenize_rows(rows, processor, {"movie": table}, max_length=None))

    def noisy(noise, seed=0, repeats=1):
        collate = ElmDataCollator(processor.tokenizer.pad_token_id, {"movie": table.vectors}, vector_noise=noise,
                                  seed=seed)
        return torch.stack([collate(tokenized)["vectors"]["movie"] for _ in range(repeats)])

    clean = torch.as_tensor(table.vectors, dtype=torch.float32)
    assert torch.equal(noisy(0.0)[0], clean)  # off by default: the vectors as they are
    assert torch.equal(noisy(0.5, seed=3), noisy(0.5, seed=3)) and not torch.equal(noisy(0.5, seed=3), noisy(0.5))
    offsets = (noisy(0.5, repeats=400) - clean) / clean.std(dim=0)  # in units of each dimension's spread
    assert torch.allclose(offsets.std(dim=(0, 1)), torch.full((8,), 0.5), rtol=0.1)


def test_rows_that_disagree_with_their_tables_are_refused_naming_the_row(tiny_elm):
    _, processor = tiny_elm
    table = {"movie": _table()}
    with pytest.raises(ValueError, match=r"Row 1 \(task 't1'\): id 'e9' is not in vector table 'movie'"):
        tokenize_rows(_rows(["describe <movie> ."] * 2, ["x", "y"], [[["e0"]], [["e9"]]]), processor, table, None)
    with pytest.raises(ValueError, match=r"Row 0 \(task 't0'\): the prompt has 1 placeholder\(s\) .* names 2 slot"):
        tokenize_rows(_rows(["describe <movie> ."], ["x"], [[["e0"], ["e1"]]]), processor, table, None)


def test_a_space_unused_in_a_whole_tokenizing_batch_does_not_break_the_next():
    import datasets

    from helpers.elm import assemble

    _, processor = assemble("llama", spaces={"movie": {"dim": 8}, "user": {"dim": 4}})
    n = 1001  # datasets maps in batches of 1000: the first batch has no user slot at all
    rows = datasets.Dataset.from_dict({
        "task": ["t"] * n, "prompt": ["describe <movie> ."] * (n - 1) + ["who is <user> ?"], "target": ["x"] * n,
        "movie_slots": [[["e0"]]] * (n - 1) + [[]], "user_slots": [[]] * (n - 1) + [[["u0"]]]})
    tables = {"movie": _table(), "user": VectorTable(["u0"], np.ones((1, 4)), "user")}
    tokenized = tokenize_rows(rows, processor, tables, None)
    assert tokenized[0]["user_slot_index"] == [] and tokenized[n - 1]["user_slot_index"] == [[0]]


@pytest.mark.parametrize("attention", ["sdpa", "eager", pytest.param("flex_attention", marks=pytest.mark.slow)])
def test_packed_and_padded_batches_give_the_same_loss(attention, tmp_path):
    """Padding-free: every row in one sequence, position ids restarting per row; the placeholders of all rows are
    found inside it and the loss (fp32) equals the padded batch's, under each attention implementation."""
    from helpers.elm import assemble
    from modeling_elm import ElmForCausalLM

    model, processor = assemble("llama")
    model.save_pretrained(tmp_path)
    model = ElmForCausalLM.from_pretrained(tmp_path, attn_implementation=attention)
    assert model.config.text_config._attn_implementation == attention
    rows = _rows(["describe <movie> .", "what does <movie> and <movie> mean ?", "a film between <movie> ."],
                 ["a funny movie", "two sad films about war and love", "war"],
                 [[["e0"]], [["e1"], ["e2"]], [["e0", "e3"]]])
    table = VectorTable([f"e{k}" for k in range(4)], np.random.default_rng(0).standard_normal((4, 8)) * 3, "movie")
    tokenized = list(tokenize_rows(rows, processor, {"movie": table}, max_length=None))
    padded = ElmDataCollator(processor.tokenizer.pad_token_id, {"movie": table.vectors})(tokenized)
    packed = ElmDataCollator(processor.tokenizer.pad_token_id, {"movie": table.vectors}, padding_free=True)(tokenized)
    assert packed["input_ids"].shape == (1, sum(r["length"] for r in tokenized)) and "attention_mask" not in packed
    assert torch.equal(packed["position_ids"][0, :tokenized[0]["length"] + 1],
                       torch.tensor(list(range(tokenized[0]["length"])) + [0]))
    torch.testing.assert_close(packed["vectors"]["movie"], padded["vectors"]["movie"], rtol=0, atol=0)
    model.eval()
    with torch.no_grad():
        out_padded, out_packed = model(**padded), model(**packed)
        # the vectors do reach the packed rows: other rows' vectors change their logits
        moved = model(**{**packed, "vectors": {"movie": packed["vectors"]["movie"].flip(0)}}).logits
    assert abs(out_packed.loss.item() - out_padded.loss.item()) < 1e-5
    start = 0
    for i, row in enumerate(tokenized):
        end = start + row["length"]
        torch.testing.assert_close(out_packed.logits[0, start:end], out_padded.logits[i, :row["length"]],
                                   rtol=1e-5, atol=1e-5)
        assert (moved[0, start:end] - out_packed.logits[0, start:end]).abs().max() > 1e-3
        start = end


def test_long_rows_lose_target_tokens_never_the_prompt(tiny_elm):
    _, processor = tiny_elm
    rows = _rows(["describe <movie> ."], ["the movie " * 30], [[["e0"]]])
    table = {"movie": _table()}
    full = tokenize_rows(rows, processor, table, max_length=None)[0]
    cut = tokenize_rows(rows, processor, table, max_length=full["prompt_length"] + 5)[0]
    assert cut["length"] == full["prompt_length"] + 5
    assert cut["input_ids"][: cut["prompt_length"]] == full["input_ids"][: full["prompt_length"]]
    with pytest.raises(ValueError, match=r"Row 0 \(task 't0'\).*prompt alone.*never cuts a prompt"):
        tokenize_rows(rows, processor, table, max_length=full["prompt_length"] - 1)


def test_resume_ignores_a_checkpoint_whose_save_did_not_finish(tmp_path):
    for step in (2, 4, 6):
        (tmp_path / f"checkpoint-{step}").mkdir()
    write_marker(tmp_path / "checkpoint-2", stage=1, global_step=2)
    write_marker(tmp_path / "checkpoint-4", stage=1, global_step=4)  # checkpoint-6: killed while saving
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-4")
    assert last_checkpoint(tmp_path / "missing") is None


# Stages on a tiny random LM


def test_stage1_trains_the_adapters_only(inputs, tmp_path):
    out = run_train(tiny_train_args(*inputs, tmp_path / "out", stage2="none", keep_checkpoints="true"))
    stage0, final = weights(out / "stage0"), weights(out)
    adapters0, lm0 = split(stage0)
    adapters1, lm1 = split(final)
    # every adapter parameter moved; the standardisation buffers are statistics, not parameters
    assert changed(adapters0, adapters1) == {k for k in adapters0 if not k.endswith(STATISTICS)}
    assert not changed(lm0, lm1)
    # stage-1 checkpoints hold the adapters alone, a tiny fraction of the model
    checkpoint = Path(last_checkpoint(out / "stage1"))
    assert set(load_file(str(checkpoint / "elm_adapters.safetensors"))) == set(adapters0)
    assert not (checkpoint / "model.safetensors").exists()
    assert (out / "loss_stage1.png").stat().st_size > 1000
    marker = json.loads((out / "elm_stage.json").read_text())
    assert marker["complete"] and marker["stage"] == 1 and marker["stages"]["stage1"]["global_step"] == 4


def test_stage2_full_trains_adapters_and_lm_and_the_result_loads(inputs, tmp_path):
    from transformers import AutoModelForCausalLM, AutoProcessor

    out = run_train(tiny_train_args(*inputs, tmp_path / "out"))
    stage1 = load_file(str(out / "stage1" / "final" / "elm_adapters.safetensors"))
    adapters2, lm2 = split(weights(out))
    _, lm0 = split(weights(out / "stage0"))
    assert changed(stage1, adapters2) == {k for k in stage1 if not k.endswith(STATISTICS)}
    assert len(changed(lm0, lm2)) > len(lm0) // 2
    assert (out / "loss_stage2.png").is_file()
    model, processor = AutoModelForCausalLM.from_pretrained(out), AutoProcessor.from_pretrained(out)
    batch = processor(text="describe <movie> .", vectors=torch.ones(384))  # MiniLM-sized, as the corpus
    assert model.generate(**batch, max_new_tokens=3, do_sample=False).shape[1] == batch["input_ids"].shape[1] + 3


def test_padding_free_batches_by_tokens_through_both_stages(inputs, tmp_path):
    out = run_train(tiny_train_args(*inputs, tmp_path / "out", padding_free="true", batch_tokens=200,
                                    stage1_max_steps=2, stage2_max_steps=2, save_steps=2, keep_checkpoints="true"))
    for stage in (1, 2):
        state = json.loads((Path(last_checkpoint(out / f"stage{stage}")) / "trainer_state.json").read_text())
        rows = state["train_batch_size"]
        assert 1 < rows < 20 and rows != 4  # from the token budget and the mean row length, not the recipe's 4
        assert all(math.isfinite(e["loss"]) for e in state["log_history"] if "loss" in e)
    assert changed(split(weights(out / "stage0"))[1], split(weights(out))[1])  # stage 2 trained the LM


def test_stage2_lora_merges_into_a_plain_elm(inputs, tmp_path):
    out = run_train(tiny_train_args(*inputs, tmp_path / "out", stage2="lora", lora_r=4))
    state = weights(out)
    assert not any("lora" in k or "modules_to_save" in k for k in state)
    stage1 = load_file(str(out / "stage1" / "final" / "elm_adapters.safetensors"))
    adapters2, lm2 = split(state)
    _, lm0 = split(weights(out / "stage0"))
    # the adapters train fully in stage 2
    assert changed(stage1, adapters2) == {k for k in stage1 if not k.endswith(STATISTICS)}
    lora_targets = changed(lm0, lm2)
    assert lora_targets and all("proj" in k for k in lora_targets)  # merged LoRA: only linear layers moved
    assert not any("embed_tokens" in k or "norm" in k for k in lora_targets)


def test_a_finished_run_keeps_the_model_not_the_checkpoints(inputs, tmp_path):
    # Checkpoints only serve resuming; a stage-2 one holds the optimizer state too (~3x the model on disk).
    kept = run_train(tiny_train_args(*inputs, tmp_path / "kept", stage1_max_steps=5, stage2_max_steps=5,
                                     save_steps=2, keep_checkpoints="true"))
    for stage in ("stage1", "stage2"):  # periodic ones stay; none at the last step, which the final save writes
        assert sorted(p.name for p in (kept / stage).glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    out = run_train(tiny_train_args(*inputs, tmp_path / "out", stage1_max_steps=5, stage2_max_steps=5, save_steps=2))
    assert not list(out.glob("stage*/checkpoint-*"))
    assert (out / "stage1" / "final" / "elm_adapters.safetensors").is_file() and (out / "stage0").is_dir()
    final, final_kept = weights(out), weights(kept)
    assert final.keys() == final_kept.keys() and all(torch.equal(final[k], final_kept[k]) for k in final)
    assert json.loads((out / "elm_stage.json").read_text())["complete"]


def test_a_run_that_finished_is_not_trained_again_and_says_its_settings_went_unused(inputs, tmp_path, caplog):
    out = run_train(tiny_train_args(*inputs, tmp_path / "out", stage2="none"))
    before = (out / "model.safetensors").stat().st_mtime_ns
    run_train(tiny_train_args(*inputs, tmp_path / "out", stage2="none"))
    assert (out / "model.safetensors").stat().st_mtime_ns == before
    caplog.clear()
    run_train(tiny_train_args(*inputs, tmp_path / "out", stage2="none", stage1_max_steps=6, system_prompt="Be brief."))
    assert (out / "model.safetensors").stat().st_mtime_ns == before
    said = " ".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert "already holds a finished ELM" in said and "nothing was trained" in said
    assert "stage1: 4 steps there, 6 asked now" in said and "'Be brief.' now" in said
    assert "pick another --output_dir" in said


@pytest.mark.parametrize("killed_in", ["stage1", "stage2"])
def test_a_run_killed_after_its_last_checkpoint_trains_no_step_past_the_end(inputs, tmp_path, killed_in):
    """max_steps a multiple of save_steps: the checkpoint at the last step is kept. A run killed right after it,
    before the stage was marked done, must end the stage there when rerun, as the uninterrupted run did."""
    stage2 = "none" if killed_in == "stage1" else "full"
    args = tiny_train_args(*inputs, tmp_path / "out", stage2=stage2, stage1_max_steps=4, stage2_max_steps=2,
                           save_steps=2, keep_checkpoints="true")
    out = run_train(args)
    uninterrupted = weights(out)
    assert Path(last_checkpoint(out / killed_in)).name == f"checkpoint-{4 if killed_in == 'stage1' else 2}"
    (out / "elm_stage.json").unlink()  # the kill: neither the stage nor the run was marked done
    if killed_in == "stage1":
        (out / "stage1" / "final" / "elm_stage.json").unlink()
    run_train(args)
    record = json.loads((out / "elm_stage.json").read_text())["stages"][killed_in]
    assert record["resumed_from"] == last_checkpoint(out / killed_in)
    assert record["global_step"] == (4 if killed_in == "stage1" else 2)
    resumed = weights(out)
    assert resumed.keys() == uninterrupted.keys() and not changed(uninterrupted, resumed)


# Real processes: SIGKILL and resume, 2-process DDP


def start(args: list[str], launcher: list[str] | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = (launcher or [sys.executable]) + [str(ROOT / "train.py"), *args]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def kill_when(process: subprocess.Popen, path_glob: tuple[Path, str], timeout: float = 240) -> None:
    folder, pattern = path_glob
    deadline = time.time() + timeout
    while not list(folder.glob(pattern)):
        assert process.poll() is None, f"train.py ended before {pattern} appeared:\n{process.stdout.read()[-3000:]}"
        assert time.time() < deadline, f"{pattern} never appeared"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()


@pytest.mark.slow
def test_sigkill_in_either_stage_resumes_in_that_stage_and_loses_no_finished_work(inputs, tmp_path):
    out = tmp_path / "out"
    args = tiny_train_args(*inputs, out, stage1_max_steps=60, stage2_max_steps=60, save_steps=5,
                           keep_checkpoints="true")
    kill_when(start(args), (out / "stage1", "checkpoint-*/elm_stage.json"))
    assert not (out / "stage1" / "final").exists()

    kill_when(start(args), (out / "stage2", "checkpoint-*/elm_stage.json"))  # resumes stage 1, then dies in 2
    stage1 = json.loads((out / "stage1" / "final" / "elm_stage.json").read_text())
    assert stage1["resumed_from"] and "stage1/checkpoint-" in stage1["resumed_from"] and stage1["global_step"] == 60
    stage1_adapters = (out / "stage1" / "final" / "elm_adapters.safetensors").stat().st_mtime_ns

    process = start(args)
    log, _ = process.communicate(timeout=600)
    assert process.returncode == 0, log[-3000:]
    assert "Stage 1 already finished" in log
    marker = json.loads((out / "elm_stage.json").read_text())
    assert marker["complete"] and "stage2/checkpoint-" in marker["stages"]["stage2"]["resumed_from"]
    assert marker["stages"]["stage2"]["global_step"] == 60
    assert (out / "stage1" / "final" / "elm_adapters.safetensors").stat().st_mtime_ns == stage1_adapters
    history = json.loads((Path(last_checkpoint(out / "stage2")) / "trainer_state.json").read_text())["log_history"]
    assert [e["step"] for e in history if "loss" in e] == list(range(1, 61))  # every step logged once: nothing redone


@pytest.mark.slow
def test_two_cpu_processes_hold_identical_weights_after_each_stage(inputs, tmp_path):
    out = tmp_path / "out"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    process = start(tiny_train_args(*inputs, out), launcher=torchrun)
    log, _ = process.communicate(timeout=600)
    assert process.returncode == 0, log[-3000:]
    stages = json.loads((out / "elm_stage.json").read_text())["stages"]
    for stage in ("stage1", "stage2"):
        assert stages[stage]["rank_sync"] == {"world_size": 2, "max_fingerprint_difference": 0.0}


def _desynchronised_rank(rank: int, port: int, queue) -> None:
    from modeling_elm.training.callbacks import CheckRanksAgree

    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    model = torch.nn.Linear(3, 2)
    torch.nn.init.constant_(model.weight, float(rank))  # the ranks disagree
    try:
        CheckRanksAgree(1).on_train_end(None, None, None, model=model)
        queue.put("no error")
    except RuntimeError as error:
        queue.put(str(error))
    finally:
        torch.distributed.destroy_process_group()


def test_rank_check_fails_loudly_when_ranks_disagree():
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    context = mp.get_context("spawn")
    queue = context.SimpleQueue()
    processes = [context.Process(target=_desynchronised_rank, args=(rank, port, queue)) for rank in (0, 1)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(120)
    messages = [queue.get() for _ in processes]
    assert all("ranks hold different weights" in m for m in messages), messages


# Recipes


@pytest.mark.parametrize("recipe", sorted((ROOT / "recipes").glob("*.yaml")), ids=lambda p: p.stem)
def test_recipes_parse_into_the_three_argument_groups(recipe):
    from trl import SFTConfig, TrlParser

    from modeling_elm.data.movielens.build import MovieLensConfig
    from modeling_elm.training.arguments import ElmArguments

    from modeling_elm.scripts import train

    parser = TrlParser((ElmArguments, MovieLensConfig, SFTConfig))
    elm_args, movielens_config, sft_config = parser.parse_args_and_config(
        args=train.with_cpu_defaults(["--config", str(recipe)]))
    assert sft_config.output_dir.startswith("checkpoints/")
    assert elm_args.stage1_learning_rate > elm_args.stage2_learning_rate
    assert not sft_config.gradient_checkpointing or recipe.stem != "quick"
    if recipe.stem == "quick":
        assert elm_args.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
        assert movielens_config.source == "ml-latest-small" and sft_config.use_cpu


def test_stage1_stops_early_once_the_loss_criterion_is_met(inputs, tmp_path):
    out = run_train(tiny_train_args(*inputs, tmp_path / "out", stage2="none", stage1_max_steps=20,
                                    stage1_stop_loss=100.0))
    assert json.loads((out / "elm_stage.json").read_text())["stages"]["stage1"]["global_step"] == 1


def test_a_stage_refuses_to_start_when_the_wrong_parameters_train(tiny_elm):
    from modeling_elm.training.arguments import ElmArguments
    from modeling_elm.training.callbacks import CheckTrainableParameters
    from modeling_elm.training.stages import training_stages

    adapters_only = training_stages(ElmArguments())[0].trainable

    model, _ = tiny_elm
    for parameter in model.parameters():
        parameter.requires_grad_(True)  # stage 1 must train the adapters alone
    with pytest.raises(RuntimeError, match="Stage 1: the parameters that train are not the ones"):
        CheckTrainableParameters(1, adapters_only).on_train_begin(None, None, None, model=model)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(adapters_only(name))
    CheckTrainableParameters(1, adapters_only).on_train_begin(None, None, None, model=model)


def test_a_curriculum_continues_from_a_trained_elm_and_refuses_one_of_another_space(trained, tmp_path):
    """--init_from: stage 0 is the trained ELM itself (weights and input statistics), not a fresh wrap."""
    from modeling_elm.checkpoints import read_marker

    first, corpus = trained
    out = run_train(tiny_train_args(first / "stage0", corpus, tmp_path / "next", init_from=first, stage2="none",
                                    stage1_max_steps=1))
    assert read_marker(out / "stage0")["init_from"] == str(first)
    assert torch.equal(weights(out / "stage0")["model.adapters.movie.fc1.weight"],
                       weights(first)["model.adapters.movie.fc1.weight"])
    other = tmp_path / "other-space"
    model, processor = assemble("llama", spaces={"movie": {"dim": 3}})
    model.save_pretrained(other)
    processor.save_pretrained(other)
    write_marker(other, complete=True, stage=1)
    with pytest.raises(ValueError, match=r"reads spaces \{'movie': 3\}, but the corpus needs \{'movie': 384"):
        run_train(tiny_train_args(first / "stage0", corpus, tmp_path / "bad", init_from=other, stage2="none",
                                  stage1_max_steps=1))
