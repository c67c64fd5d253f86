"""Wrapping a causal LM into an ELM with `ElmForCausalLM.from_language_model`: the soft tokens come out at the scale
of the words the LM's embedding module outputs, whatever the family; a mixture-of-experts LM keeps its experts
implementation and its router loss; and placeholders are checked so that each marks one embedding slot only, one
that is not already a word or token, not inside another placeholder, and reused rather than refused when the same
tokenizer is wrapped twice."""

import re

import pytest
import torch
from transformers import AutoModelForCausalLM

from helpers.elm import build_language_model, build_tokenizer

TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            head_dim=8, pad_token_id=0, bos_token_id=2, eos_token_id=3)


@pytest.mark.parametrize("family", ["llama", "qwen2", "gpt2", "gemma2", "gemma3"])
def test_soft_tokens_sit_at_the_scale_of_what_the_embedding_module_outputs(family):
    from modeling_elm import ElmForCausalLM

    tokenizer = build_tokenizer()
    model, _ = ElmForCausalLM.from_language_model(build_language_model(family, len(tokenizer)), {"movie": {"dim": 8}},
                                                  tokenizer=tokenizer)
    embeddings = model.get_input_embeddings()
    placeholder = model.config.embedding_spaces["movie"]["placeholder_token_id"]
    words = torch.tensor([i for i in range(len(tokenizer)) if i != placeholder])
    with torch.no_grad():
        word_rms = embeddings(words).pow(2).mean().sqrt()
        soft_rms = model.model.adapters["movie"](torch.randn(64, 8)).pow(2).mean().sqrt()
    assert 0.8 < float(soft_rms / word_rms) < 1.25, (family, float(soft_rms / word_rms))  # Gemma was ~0.05


def test_a_mixture_of_experts_lm_keeps_its_experts_implementation():
    from transformers import MixtralConfig

    from modeling_elm import ElmForCausalLM

    tokenizer = build_tokenizer()
    config = MixtralConfig(vocab_size=len(tokenizer), num_local_experts=4, num_experts_per_tok=2,
                           **{k: v for k, v in TINY.items() if k != "head_dim"})
    mixtral = AutoModelForCausalLM.from_config(config, experts_implementation="eager")
    chosen = mixtral.config._experts_implementation
    assert chosen is not None
    model, _ = ElmForCausalLM.from_language_model(mixtral, {"movie": {"dim": 8}}, tokenizer=tokenizer)
    assert model.config.text_config._experts_implementation == chosen
    assert model.model.language_model.config._experts_implementation == chosen


def test_a_mixture_of_experts_lm_keeps_its_router_loss():
    from transformers import MixtralConfig

    from modeling_elm import ElmForCausalLM

    tokenizer = build_tokenizer()
    config = MixtralConfig(vocab_size=len(tokenizer), num_local_experts=4, num_experts_per_tok=2,
                           router_aux_loss_coef=0.5, **{k: v for k, v in TINY.items() if k != "head_dim"})
    torch.manual_seed(0)
    mixtral = AutoModelForCausalLM.from_config(config).eval()
    ids = torch.randint(4, len(tokenizer) - 1, (2, 12))
    with torch.no_grad():
        expected = mixtral(input_ids=ids, labels=ids, output_router_logits=True)
    model, _ = ElmForCausalLM.from_language_model(mixtral, {"movie": {"dim": 8}}, tokenizer=tokenizer)
    with torch.no_grad():
        got = model.eval()(input_ids=ids, labels=ids, output_router_logits=True)
    assert got.aux_loss is not None
    torch.testing.assert_close(got.aux_loss, expected.aux_loss)
    # the ELM's vocabulary has one more token (the placeholder), so its cross-entropy is its own
    cross_entropy = torch.nn.functional.cross_entropy(got.logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
    torch.testing.assert_close(got.loss, cross_entropy + 0.5 * expected.aux_loss)


@pytest.mark.parametrize("placeholder", ["movie", "the", "<|im_end|>"])
def test_a_placeholder_that_is_already_a_word_or_token_is_refused(placeholder):
    from modeling_elm import ElmForCausalLM

    tokenizer = build_tokenizer()
    with pytest.raises(ValueError, match=f"Placeholder {placeholder!r} is already a token or a word"):
        ElmForCausalLM.from_language_model(build_language_model("llama", len(tokenizer)),
                                           {"movie": {"dim": 8, "placeholder": placeholder}}, tokenizer=tokenizer)


def test_wrapping_twice_with_the_same_tokenizer_reuses_its_own_placeholder_and_suggests_a_free_one():
    """A notebook cell run twice: the first call added '<movie>' to the caller's tokenizer; the second must accept
    it, not refuse it and then suggest the very marker it refused."""
    from modeling_elm import ElmForCausalLM

    tokenizer = build_tokenizer()
    first, _ = ElmForCausalLM.from_language_model(build_language_model("llama", len(tokenizer)), {"movie": {"dim": 8}},
                                                  tokenizer=tokenizer)
    size = len(tokenizer)
    second, processor = ElmForCausalLM.from_language_model(build_language_model("llama", size), {"movie": {"dim": 8}},
                                                           tokenizer=tokenizer)
    assert len(tokenizer) == size  # nothing added twice
    assert (second.config.embedding_spaces["movie"]["placeholder_token_id"]
            == first.config.embedding_spaces["movie"]["placeholder_token_id"])
    assert processor(text="<movie>", vectors=torch.zeros(8))["input_ids"].numel() > 0
    with pytest.raises(ValueError) as refused:
        ElmForCausalLM.from_language_model(build_language_model("llama", size),
                                           {"movie": {"dim": 8, "placeholder": "<|im_end|>"}}, tokenizer=tokenizer)
    suggestion = re.search(r"such as '([^']+)'", str(refused.value)).group(1)
    assert suggestion != "<|im_end|>" and suggestion not in tokenizer.get_vocab()


def test_a_placeholder_inside_another_is_refused():
    from modeling_elm import ElmConfig

    with pytest.raises(ValueError, match="Placeholder '<m>' occurs inside '<m><u>'"):
        ElmConfig(text_config={"model_type": "llama"},
                  embedding_spaces={"movie": {"dim": 4, "placeholder": "<m>"},
                                    "user": {"dim": 4, "placeholder": "<m><u>"}})
