"""Shared fixtures: tiny random causal LMs of several families and a word-level tokenizer, all built offline."""

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, LlamaConfig, PreTrainedTokenizerFast, Qwen2Config, AutoModelForCausalLM

WORDS = (
    "the a an of and to in is it that for on with as this movie film user about story love war space funny sad "
    "scary drama comedy action thriller horror romance crime family music old new good bad great best worst like "
    "likes liked watch watched describe summarize review what does mean vector who why how one two three year "
    "years genre genres fan fans people many few very more less than his her their is are was were be".split()
)
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }} {{ m['content'] }}<|im_end|> {% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant {% endif %}"
)
FAMILIES = ["llama", "llama-untied", "qwen2", "gpt2"]


def build_tokenizer() -> PreTrainedTokenizerFast:
    specials = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>"]
    vocab = {token: i for i, token in enumerate(specials + sorted(set(WORDS)) + list(".,!?"))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", eos_token="<|im_end|>", bos_token="<|im_start|>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_language_model(family: str, vocab_size: int, seed: int = 0):
    torch.manual_seed(seed)
    common = dict(vocab_size=vocab_size, pad_token_id=0, bos_token_id=2, eos_token_id=3)
    if family in ("llama", "llama-untied"):
        config = LlamaConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            tie_word_embeddings=family == "llama", **common,
        )
    elif family == "qwen2":
        config = Qwen2Config(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            tie_word_embeddings=False, **common,
        )
    elif family == "gpt2":
        config = GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=128, tie_word_embeddings=True, **common)
    else:
        raise ValueError(family)
    return AutoModelForCausalLM.from_config(config).eval()


@pytest.fixture
def tokenizer():
    return build_tokenizer()


def assemble(family: str = "llama", spaces=None, seed: int = 0):
    """A tiny ELM around a random LM: (model, processor)."""
    from modeling_elm import ElmForCausalLM

    tokenizer = build_tokenizer()
    lm = build_language_model(family, len(tokenizer), seed=seed)
    spaces = spaces or {"movie": {"dim": 8}}
    model, processor = ElmForCausalLM.from_language_model(lm, spaces, tokenizer=tokenizer)
    torch.manual_seed(seed + 1)
    # A random adapter on a random LM: give it weights large enough that the vector visibly changes the output.
    for adapter in model.model.adapters.values():
        torch.nn.init.normal_(adapter.fc1.weight, std=0.5)
        torch.nn.init.normal_(adapter.fc2.weight, std=0.5)
    return model.eval(), processor


@pytest.fixture
def tiny_elm():
    return assemble("llama")
