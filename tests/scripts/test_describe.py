"""`python -m modeling_elm.scripts.describe`, which asks a trained ELM about a movie or a user from the command line: it
finds a movie by the label the Space shows, by part of a title or by MovieLens' own title form ("Matrix, The") and
says which of several it picked, refuses a query that names no title or a year no match has, warns when --alpha or
--strength extrapolates, refuses empty options, options it would ignore, values that are not finite or overflow, a
user the model cannot read, a --model folder that holds no trained ELM or damaged weights and a device the machine
lacks (each in one line), lists the tasks for a mistyped one, shows its defaults in --help, and imports its heavy
parts only once the arguments are known to be good, so --help and argument errors answer at once."""

import json
import subprocess
import sys
import warnings

import pytest

from helpers.elm import ROOT


def test_describe_says_when_it_extrapolates_and_refuses_what_the_model_cannot_read(trained, capsys, monkeypatch,
                                                                                   tmp_path):
    from modeling_elm.scripts import describe
    from modeling_elm import inference

    monkeypatch.setattr(inference, "generate_texts", lambda *args, **kwargs: ["an answer"])
    model, corpus = trained
    assert describe.main(["--model", str(model), "--movie", "Movie 1", "--mix", "Movie 2", "--alpha", "2"]) == 0
    assert "--alpha 2 is outside [0, 1], so the vector extrapolates" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        describe.main(["--model", str(model), "--mix", "Movie 2"])
    assert "--mix mixes a second entity into --movie / --entity" in capsys.readouterr().err
    no_users = json.loads((model / "config.json").read_text())
    if "user" in no_users["embedding_spaces"]:  # the tiny model reads users: check the refusal on a copy without
        import shutil

        copy = tmp_path / "movies-only"
        shutil.copytree(model, copy)
        del no_users["embedding_spaces"]["user"]
        (copy / "config.json").write_text(json.dumps(no_users))
        model = copy
    with pytest.raises(SystemExit, match=r"reads no user vectors \(its spaces: movie\).*quick-users.yaml"):
        describe.main(["--model", str(model), "--corpus", str(corpus), "--user", "7"])


def test_describe_lists_the_tasks_for_a_mistyped_one_and_shows_defaults(trained, capsys):
    from modeling_elm.scripts.describe import main

    with pytest.raises(SystemExit) as stop:
        main(["--model", str(trained[0]), "--task", "summry"])
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert "unknown task 'summry'; choose one of: " in error and " summary," in error  # the corpus' own tasks
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "(default: checkpoints/elm-quick)" in help_text and "the checkpoint's own decoding length" in help_text
    assert "(default: None)" not in help_text


def test_describe_imports_its_heavy_parts_only_after_the_arguments():
    script = ("import sys, modeling_elm.scripts.describe as d\n"
              "heavy = ('datasets', 'pandas', 'modeling_elm.data.corpus', 'modeling_elm.data.movielens.build',\n"
              "         'modeling_elm.inference')\n"
              "print(sorted(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stderr[-1000:]


def test_describe_names_a_wrong_model_too(tmp_path):
    from modeling_elm.scripts import describe

    with pytest.raises(SystemExit, match="No folder at"):
        describe.main(["--model", str(tmp_path / "missing")])


def test_describe_refuses_a_task_the_model_never_learnt_with_the_ones_it_did(trained, tmp_path, capsys):
    import shutil

    from modeling_elm.scripts import describe

    model = tmp_path / "elm"
    shutil.copytree(trained[0], model)
    marker = json.loads((model / "elm_stage.json").read_text())
    marker["tasks"] = ["similarities", "user_profile"]  # as if trained without summaries
    (model / "elm_stage.json").write_text(json.dumps(marker))
    with pytest.raises(SystemExit, match="not trained on task 'summary'.*trained on: similarities, user_profile"):
        describe.main(["--model", str(model), "--task", "summary"])
    with pytest.raises(SystemExit, match="learnt no task that reads one movie vector"):
        describe.main(["--model", str(model)])  # no default either: similarities reads two movies
    # a prompt of one's own stays open
    assert describe.main(["--model", str(model), "--task", "Tell me about <movie>.", "--max-new-tokens", "2"]) == 0
    assert "Tell me about" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--movie", ""], "--movie / --entity is empty"),
    (["--movie", "heat", "--mix", " "], "--mix is empty"),
    (["--movie", "heat", "--concept", ""], "--concept is empty"),
    (["--strength", "2"], "--strength says how far to move along --concept: pass --concept too"),
    (["--movie", "heat", "--alpha", "0.3"], "--alpha is the share of --mix in the mixed vector: pass --mix too"),
    (["--movie", "heat", "--concept", "Comedy", "--strength", "nan"], "--strength must be a finite number, got nan"),
    (["--movie", "heat", "--concept", "Comedy", "--strength", "inf"], "--strength must be a finite number, got inf"),
    (["--movie", "heat", "--mix", "alien", "--alpha", "nan"], "--alpha must be a finite number, got nan"),
])
def test_describe_refuses_options_it_would_ignore_or_crash_on(argv, message, capsys):
    from modeling_elm.scripts.describe import main

    with pytest.raises(SystemExit) as stop:
        main(argv)  # refused before any model or corpus is looked at
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


@pytest.fixture
def corpus_with_a_concept(trained, tmp_path):
    """A copy of the trained model's corpus with a Comedy concept (the tiny corpus has too few movies per genre for
    a real one): (corpus folder, a movie title)."""
    import shutil

    import numpy as np

    from modeling_elm.data.concepts import concept_directions, save_concepts
    from modeling_elm.data.corpus import load_corpus
    from modeling_elm.data.movielens.tables import movielens_tables

    corpus = tmp_path / "corpus"
    shutil.copytree(trained[1], corpus)
    movies, _ = movielens_tables(load_corpus(corpus))
    funny = np.arange(len(movies)) % 2 == 0
    concepts = concept_directions(np.stack(movies["semantic"].to_numpy()), {"Comedy": funny}, space="semantic",
                                  min_positive=2, test_fraction=0.4)
    save_concepts(concepts, corpus / "concepts" / "movie_semantic")
    return corpus, str(movies.iloc[0]["title"])


def test_describe_notes_a_strength_beyond_the_measured_range_and_refuses_one_that_overflows(
        trained, corpus_with_a_concept, capsys, monkeypatch):
    from modeling_elm import inference
    from modeling_elm.evaluation.curves import STRENGTHS
    from modeling_elm.scripts import describe

    monkeypatch.setattr(inference, "generate_texts", lambda *args, **kwargs: ["an answer"])
    corpus, title = corpus_with_a_concept
    ask = ["--model", str(trained[0]), "--corpus", str(corpus), "--movie", title, "--concept", "Comedy"]
    assert describe.MEASURED_STRENGTH == max(abs(s) for s in STRENGTHS)
    assert describe.main([*ask, "--strength", "-2"]) == 0
    assert "Note:" not in capsys.readouterr().err
    assert describe.main([*ask, "--strength", "1e6"]) == 0
    assert "--strength 1e+06 is outside [-3, 3], the range the concept curves measure" in capsys.readouterr().err
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # one line, no numpy overflow warnings before it
        with pytest.raises(SystemExit, match=r"^--strength 1e\+40: the vector leaves the range of float32 numbers"):
            describe.main([*ask, "--strength", "1e40"])
        with pytest.raises(SystemExit, match=r"^--alpha 1e\+40: the vector leaves the range of float32 numbers"):
            describe.main(["--model", str(trained[0]), "--corpus", str(corpus), "--movie", title, "--mix", title,
                           "--alpha", "1e40"])


def copy_of_model(trained, folder):
    import shutil

    shutil.copytree(trained[0], folder, ignore=shutil.ignore_patterns("stage*", "checkpoint-*"))
    return folder


def test_describe_says_in_one_line_what_is_wrong_with_the_model_folder_or_the_device(trained, tmp_path,
                                                                                     monkeypatch):
    import torch

    from modeling_elm.scripts import describe

    config_only = tmp_path / "config-only"
    config_only.mkdir()
    (config_only / "config.json").write_text((trained[0] / "config.json").read_text())
    with pytest.raises(SystemExit) as stop:
        describe.main(["--model", str(config_only)])
    assert "holds no trained ELM: no weights (model.safetensors) nor the record of a train.py run" in str(
        stop.value.code) and "--corpus" not in str(stop.value.code)

    cut = copy_of_model(trained, tmp_path / "cut")
    weights = cut / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a download or save cut short
    with pytest.raises(SystemExit) as stop:
        describe.main(["--model", str(cut), "--device", "cpu"])
    assert str(stop.value.code).startswith(f"{weights} is damaged (")
    assert "download it again, or re-run the train.py command that wrote it" in str(stop.value.code)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as stop:
        describe.main(["--model", str(trained[0]), "--device", "cuda"])
    assert str(stop.value.code) == "--device cuda: no GPU is available on this machine; use --device cpu."
