"""`python -m modeling_elm.scripts.assemble`: wraps an LM once into train.py's stage 0, saves it loadable, and answers
with the checkpoint's own decoding settings (generate_texts), not a copy of them."""

from helpers.elm import write_tiny_base_model


def test_assemble_saves_a_loadable_elm_and_answers_with_its_decoding_defaults(tmp_path, capsys, monkeypatch):
    from modeling_elm import ElmForCausalLM, inference
    from modeling_elm.checkpoints import read_marker
    from modeling_elm.scripts import assemble

    calls = []
    real = inference.generate_texts
    monkeypatch.setattr(inference, "generate_texts", lambda *a, **k: calls.append(k) or real(*a, **k))
    base = write_tiny_base_model(tmp_path / "base")
    assert assemble.main(["--base_model", str(base), "--spaces", "movie:8:2", "--output", str(tmp_path / "elm")]) == 0
    assert "Q: Summarize in one sentence what <movie> is." in capsys.readouterr().out
    model = ElmForCausalLM.from_pretrained(tmp_path / "elm")
    assert model.config.embedding_spaces["movie"]["num_tokens"] == 2
    assert calls and not {"no_repeat_ngram_size", "max_new_tokens"} & set(calls[0])  # decoding: the checkpoint's
    assert read_marker(tmp_path / "elm")["stage"] == 0  # the same stage 0 train.py writes and starts from
    assert model.generation_config.no_repeat_ngram_size == 4
