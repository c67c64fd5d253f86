"""bf16 where the chip computes it fast, float32 where it must be: the dtype choice (with the CPU's detection mocked),
inference in bf16 with float32 adapters, stage 1 with the frozen LM held in bf16 and its attention in float32."""

import json

import pytest
import torch
from safetensors.torch import load_file

from modeling_elm import inference
from modeling_elm.scripts import train
from modeling_elm.training import precision
from helpers.elm import build_tiny_corpus, run_train, tiny_train_args, write_tiny_base_model

AMX_CPU = {"amx_bf16": True, "amx_tile": True, "avx512_bf16": True, "avx2": True}
ZEN4_CPU = {"amx_bf16": False, "avx512_bf16": True, "avx2": True}
OLD_CPU = {"amx_bf16": False, "avx512_bf16": False, "avx2": True}


@pytest.fixture
def cpu(monkeypatch):
    """Pretend to be a CPU with the given capabilities (as torch reports them) and no GPU."""
    def become(capabilities: dict):
        monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: dict(capabilities))
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    return become


@pytest.mark.parametrize("capabilities, expected", [(AMX_CPU, torch.bfloat16), (ZEN4_CPU, torch.bfloat16),
                                                    (OLD_CPU, torch.float32)], ids=["amx", "avx512-bf16", "neither"])
def test_inference_runs_in_bf16_only_on_cpus_with_bf16_units(cpu, capabilities, expected):
    cpu(capabilities)
    assert inference.inference_dtype(torch.device("cpu")) == expected
    assert inference.inference_dtype(torch.device("cpu"), "auto") == expected
    # asked for, a dtype is taken as it is, whatever the chip
    assert inference.inference_dtype(torch.device("cpu"), "float32") == torch.float32
    assert inference.inference_dtype(torch.device("cpu"), "bfloat16") == torch.bfloat16
    assert inference.inference_dtype(torch.device("mps")) == torch.float32


def test_an_unknown_dtype_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="auto, float32 or bfloat16"):
        inference.inference_dtype(torch.device("cpu"), "float8")


@pytest.mark.parametrize("capabilities, bf16", [(ZEN4_CPU, "true"), (OLD_CPU, "false")], ids=["bf16-units", "none"])
def test_training_on_a_cpu_defaults_to_bf16_only_where_it_has_the_units(cpu, capabilities, bf16):
    cpu(capabilities)
    argv = train.with_cpu_defaults(["--config", "recipes/quick.yaml"])
    assert argv[argv.index("--use_cpu") + 1] == "true" and argv[argv.index("--bf16") + 1] == bf16
    # the user's own choice wins, on any chip
    argv = train.with_cpu_defaults(["--config", "recipes/quick.yaml", "--bf16", "false"])
    assert argv.count("--bf16") == 1 and argv[argv.index("--bf16") + 1] == "false"


def test_a_bf16_elm_keeps_its_adapters_in_float32_and_answers_like_float32(tmp_path):
    from helpers.elm import assemble

    model, processor = assemble("llama")
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    bf16 = inference.load_elm(str(tmp_path), "cpu", "bfloat16")
    float32 = inference.load_elm(str(tmp_path), "cpu", "float32")
    assert bf16.dtype == torch.bfloat16 and bf16.lm_head.weight.dtype == torch.bfloat16
    assert {p.dtype for p in bf16.model.adapters.parameters()} == {torch.float32}
    assert {b.dtype for b in bf16.model.adapters.buffers()} == {torch.float32}
    batch = processor(text="describe <movie> .", vectors=torch.randn(8))
    logits = {name: m(**batch).logits[0, -1].float() for name, m in (("bf16", bf16), ("float32", float32))}
    assert torch.allclose(logits["bf16"], logits["float32"], atol=0.1, rtol=0.05)


def test_float32_attention_runs_inside_a_bf16_lm_on_the_cpu_and_is_undone_after(monkeypatch):
    from helpers.elm import assemble

    model, processor = assemble("llama")
    reference = model(**processor(text="describe <movie> .", vectors=torch.ones(8))).logits
    model.to(torch.bfloat16)
    seen = []
    original = inference._sdpa_in_float32

    def spy(module, query, *args, **kwargs):
        seen.append(query.dtype)
        output, weights = original(module, query, *args, **kwargs)
        seen.append(output.dtype)
        return output, weights

    monkeypatch.setattr(inference, "_sdpa_in_float32", spy)
    batch = processor(text="describe <movie> .", vectors=torch.ones(8))
    with inference.float32_attention(model):
        inside = model(**batch).logits
    assert seen and set(seen[::2]) == {torch.bfloat16} and set(seen[1::2]) == {torch.bfloat16}
    assert model.config.get_text_config()._attn_implementation == "sdpa"
    calls = len(seen)
    model(**batch)
    assert len(seen) == calls  # outside the context, the LM's own attention again
    assert torch.allclose(inside.float(), reference, atol=0.15)


def test_stage1_in_bf16_holds_the_frozen_lm_in_bf16_and_saves_its_float32_weights(tmp_path, monkeypatch):
    from accelerate.state import AcceleratorState

    base, corpus = write_tiny_base_model(tmp_path / "base"), build_tiny_corpus(tmp_path)
    held = []
    original = precision.hold_frozen_lm

    def spy(model, dtype):
        original(model, dtype)
        held.append({name: p.dtype for name, p in model.named_parameters()})

    monkeypatch.setattr("modeling_elm.training.stages.hold_frozen_lm", spy)
    AcceleratorState._reset_state()  # as a fresh train.py process: this run's mixed precision, not an earlier test's
    out = run_train(tiny_train_args(base, corpus, tmp_path / "out", bf16="true", stage2="none"))
    AcceleratorState._reset_state()
    (dtypes,) = held
    assert {d for n, d in dtypes.items() if ".adapters." in f".{n}"} == {torch.float32}
    assert {d for n, d in dtypes.items() if ".adapters." not in f".{n}"} == {torch.bfloat16}
    stage0, final = load_file(str(out / "stage0" / "model.safetensors")), load_file(str(out / "model.safetensors"))
    lm = [k for k in stage0 if ".adapters." not in f".{k}"]
    assert all(final[k].dtype == torch.float32 and torch.equal(final[k], stage0[k]) for k in lm)
    adapters = [k for k in stage0 if ".adapters." in f".{k}" and k.endswith(("weight", "bias"))]
    assert all(final[k].dtype == torch.float32 for k in adapters)
    assert any(not torch.equal(final[k], stage0[k]) for k in adapters)
    marker = json.loads((out / "elm_stage.json").read_text())
    assert marker["stages"]["stage1"]["lm_dtype"] == "bfloat16"


@pytest.mark.parametrize("setting, bf16, environ, expected", [
    ("auto", True, {}, torch.bfloat16), ("auto", False, {}, None), ("float32", True, {}, None),
    ("bfloat16", False, {}, torch.bfloat16), ("auto", True, {"ACCELERATE_USE_FSDP": "true"}, None),
])
def test_stage1_holds_the_lm_in_bf16_when_the_run_is_bf16_and_not_sharded(monkeypatch, setting, bf16, environ,
                                                                           expected):
    from types import SimpleNamespace

    for key in ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED"):
        monkeypatch.delenv(key, raising=False)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    config = SimpleNamespace(bf16=bf16, fsdp="", deepspeed=None)
    assert precision.frozen_lm_dtype(setting, config) == expected


def test_generation_in_bf16_on_the_cpu_runs_attention_in_float32_and_float32_models_do_not(monkeypatch):
    from helpers.elm import assemble

    model, processor = assemble("llama")
    calls = []
    original = inference._sdpa_in_float32
    monkeypatch.setattr(inference, "_sdpa_in_float32", lambda *a, **k: calls.append(1) or original(*a, **k))
    vectors = [{"movie": [torch.ones(8).numpy()]}]
    inference.generate_texts(model, processor, ["describe <movie> ."], vectors, max_new_tokens=2)
    assert calls == []  # float32: the LM's own attention
    answer = inference.generate_texts(model.to(torch.bfloat16), processor, ["describe <movie> ."], vectors,
                                      max_new_tokens=2)
    assert calls and isinstance(answer[0], str)
    assert model.config.get_text_config()._attn_implementation == "sdpa"
