"""The decoding defaults an ELM checkpoint carries in its generation_config: greedy decoding, no repeated 4-grams
and the placeholder tokens suppressed so that an answer never samples one. The 4-gram limit is loose enough for a
tokenizer that writes numbers digit by digit to name two decades in one answer, which a trigram limit forbids."""

import json

import torch

from helpers.elm import assemble


def test_a_saved_checkpoint_carries_its_decoding_defaults_and_never_samples_a_placeholder(tmp_path):
    """The defaults live in generation_config.json, where every loader finds them: ElmForCausalLM, the Auto class and
    the Hub's remote code read the file, nothing completes it after loading."""
    from transformers import AutoModelForCausalLM

    from modeling_elm import ElmForCausalLM

    model, _ = assemble("llama")
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "generation_config.json").read_text())
    placeholder = model.config.embedding_spaces["movie"]["placeholder_token_id"]
    assert saved["no_repeat_ngram_size"] == 4 and saved["do_sample"] is False
    assert placeholder in saved["suppress_tokens"]
    for cls in (ElmForCausalLM, AutoModelForCausalLM):
        loaded = cls.from_pretrained(tmp_path)
        assert loaded.generation_config.no_repeat_ngram_size == 4 and loaded.generation_config.do_sample is False
        assert placeholder in loaded.generation_config.suppress_tokens


def test_the_decoding_defaults_let_an_answer_name_two_decades():
    """SmolLM's tokenizer writes "1990s" as " ", "1", "9", "9", "0", "s": with no repeated trigrams, " 1 9" could
    not follow " 1" a second time and "the 1990s and 1980s" came out as "the 1990s and 100s"."""
    from transformers.generation.logits_process import NoRepeatNGramLogitsProcessor

    from modeling_elm.model.modeling_elm import DECODING_DEFAULTS

    vocab = {token: i for i, token in enumerate([" the", " ", "1", "9", "0", "s", " and"])}
    written = [" the", " ", "1", "9", "9", "0", "s", " and", " ", "1"]  # next: "9", for the 1980s
    ids = torch.tensor([[vocab[t] for t in written]])
    banned = NoRepeatNGramLogitsProcessor(DECODING_DEFAULTS["no_repeat_ngram_size"])(ids, torch.zeros(1, len(vocab)))
    assert torch.isfinite(banned[0, vocab["9"]])
    trigrams = NoRepeatNGramLogitsProcessor(3)(ids, torch.zeros(1, len(vocab)))
    assert not torch.isfinite(trigrams[0, vocab["9"]])  # what the old default did


def test_wrapping_leaves_the_callers_lm_decoding_as_it_was():
    """from_language_model writes the ELM's defaults into a copy: the LM the caller passed keeps its own (sampling,
    no n-gram limit, no suppressed tokens), and its generation_config is not the ELM's object."""
    from modeling_elm import ElmForCausalLM
    from helpers.elm import build_language_model, build_tokenizer

    tokenizer = build_tokenizer()
    lm = build_language_model("llama", len(tokenizer))
    lm.generation_config.update(do_sample=True, temperature=0.7, top_p=0.9)
    before = lm.generation_config.to_dict()
    model, _ = ElmForCausalLM.from_language_model(lm, {"movie": {"dim": 8}}, tokenizer=tokenizer)
    assert model.generation_config is not lm.generation_config
    assert model.generation_config.do_sample is False and model.generation_config.no_repeat_ngram_size == 4
    assert lm.generation_config.to_dict() == before
    assert lm.generation_config.do_sample is True and lm.generation_config.temperature == 0.7
