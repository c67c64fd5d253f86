"""Checking that a --model folder holds a trained ELM before anything else is loaded: a missing folder, a stage-1
checkpoint, an unfinished training run, an empty folder and a plain base model are each named for what they are,
with what to pass instead, by check_trained_elm and by the evaluation before it looks for the corpus; a Hub id is
left to from_pretrained, and a missing base model is named the same way."""

import pytest


def test_a_wrong_model_says_what_is_there_and_what_to_pass(trained, tmp_path):
    from modeling_elm.base_models import resolve_base_model
    from modeling_elm.checkpoints import check_trained_elm
    from modeling_elm.evaluation.evaluate import EvalArguments, Evaluation

    model, corpus = trained
    stage1 = tmp_path / "run" / "stage1" / "final"
    stage1.mkdir(parents=True)
    (stage1 / "elm_adapters.safetensors").write_bytes(b"")
    (tmp_path / "run" / "stage0").mkdir()
    (tmp_path / "empty").mkdir()
    cases = {
        str(tmp_path / "nope"): "No folder at .*nope: pass the output_dir of a finished train.py run",
        str(stage1): r"is a stage-1 checkpoint: it holds the adapters alone.*\(.*run\)",
        str(tmp_path / "run"): "a training run that has not finished .* run the same train.py command again",
        str(tmp_path / "empty"): "is a folder but holds no model",
        str(model / "stage0" / ".." / ".." / "base"): "holds a llama model, not a trained ELM: train one on it",
    }
    for path, message in cases.items():
        with pytest.raises(ValueError, match=message):
            check_trained_elm(path)
        with pytest.raises(ValueError, match=message):  # before the corpus is looked for: --corpus is not the fix
            Evaluation(EvalArguments(model=path, corpus=str(corpus), output_dir=str(tmp_path / "eval")))
    check_trained_elm(str(model))
    check_trained_elm("someone/elm-movielens")  # a Hub id: from_pretrained checks it
    with pytest.raises(ValueError, match="No folder at /nope: pass a folder holding a causal LM"):
        resolve_base_model("/nope")
