"""The checkpoint's no-repeat-n-gram rule as the engine applies it (engine_plugins/elm_logits.py), checked here
against transformers' own processor without vLLM; and the client switching it on per request with the prompt's ids."""

import importlib.util
import sys
import types

import numpy as np
import pytest
import torch

from modeling_elm.serving.engine import PLUGINS


@pytest.fixture(scope="module")
def plugin():
    """The plugin module, loaded with a stand-in for vLLM's base class (vLLM lives in its own environment)."""
    stand_in = types.ModuleType("vllm.v1.sample.logits_processor")
    stand_in.AdapterLogitsProcessor = type("AdapterLogitsProcessor", (), {})
    modules = {name: types.ModuleType(name) for name in ("vllm", "vllm.v1", "vllm.v1.sample")}
    saved = {name: sys.modules.get(name) for name in [*modules, stand_in.__name__]}
    sys.modules.update(modules | {stand_in.__name__: stand_in})
    try:
        spec = importlib.util.spec_from_file_location("elm_logits", PLUGINS / "elm_logits.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
    return module


def test_the_engines_rule_bans_what_transformers_bans(plugin):
    from transformers.generation.logits_process import NoRepeatNGramLogitsProcessor

    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 4, 5):
        for _ in range(40):
            tokens = rng.integers(0, 6, size=int(rng.integers(0, 30))).tolist()  # few ids: many repeats
            scores = torch.zeros(1, 6)
            expected = NoRepeatNGramLogitsProcessor(n)(torch.tensor([tokens], dtype=torch.long), scores.clone())
            assert plugin.banned_tokens(tokens, n) == torch.isinf(expected[0]).nonzero().flatten().tolist()


def test_a_request_asks_for_the_rule_with_its_prompt_ids_and_bad_arguments_are_refused(plugin):
    processor = plugin.NoRepeatNGram.__new__(plugin.NoRepeatNGram)

    def params(**extra):
        return types.SimpleNamespace(extra_args=extra)

    assert processor.new_req_logits_processor(params()) is None  # no n asked: the request is left alone
    assert processor.new_req_logits_processor(params(no_repeat_ngram_size=0)) is None
    ban = processor.new_req_logits_processor(params(no_repeat_ngram_size=3, elm_prompt_ids=[7, 8, 9]))
    logits = ban([1, 7, 8], torch.zeros(12))  # "7 8" was followed by 9 in the prompt
    assert torch.isinf(logits).nonzero().flatten().tolist() == [9]
    assert not torch.isinf(ban([1, 2], torch.zeros(12))).any()
    assert processor.is_argmax_invariant() is False  # vLLM must run it under greedy decoding
    for bad in (params(no_repeat_ngram_size="4"), params(no_repeat_ngram_size=-1),
                params(no_repeat_ngram_size=4, elm_prompt_ids="1,2")):
        with pytest.raises(ValueError, match="vllm_xargs"):
            plugin.NoRepeatNGram.validate_params(bad)


def test_the_client_sends_the_checkpoints_n_and_each_prompts_ids(tmp_path):
    from modeling_elm.serving import ElmServingClient, export_for_serving
    from modeling_elm.serving.engine import engine_command
    from test_export import fake_venv, tiny_trained_elm

    export = export_for_serving(str(tiny_trained_elm(tmp_path / "elm", "llama")), tmp_path / "export")
    command = engine_command(export, 8000, venv=fake_venv(tmp_path))
    assert command[command.index("--logits-processors") + 1] == "elm_logits:NoRepeatNGram"
    assert (PLUGINS / "elm_logits.py").is_file()
    client = ElmServingClient.from_export(export, "http://127.0.0.1:9", served_model="m")
    settings = client.sampling()
    assert settings["vllm_xargs"] == {"no_repeat_ngram_size": 4}  # the checkpoint's generation_config
    sent = []
    client._request = lambda method, path, json: sent.append(json) or {"choices": [{"text": " fine"}]}
    inputs = client.prompt_inputs(["Describe <movie>.", "Is <movie> good?"], [{"movie": [np.ones(8)]}] * 2)
    assert client.generate_texts(["Describe <movie>.", "Is <movie> good?"], [{"movie": [np.ones(8)]}] * 2) == \
        ["fine", "fine"]
    by_prompt = sorted(body["vllm_xargs"]["elm_prompt_ids"] for body in sent)
    assert by_prompt == sorted(ids for ids, _ in inputs) and by_prompt[0] != by_prompt[1]
    assert all(body["vllm_xargs"]["no_repeat_ngram_size"] == 4 for body in sent)
    client.generation_config.no_repeat_ngram_size = 0  # a checkpoint without the rule asks for none
    assert "vllm_xargs" not in client.sampling()
