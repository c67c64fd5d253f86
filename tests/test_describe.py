"""`python -m modeling_elm.scripts.describe`, which asks a trained ELM about a movie or a user from the command line: it
finds a movie by the label the Space shows or by part of a title and says which of several it picked, refuses a
query that names no title or a year no match has, warns when --alpha extrapolates, refuses a user the model cannot
read and a --model folder that holds no trained ELM, lists the tasks for a mistyped one, shows its defaults in
--help, and imports its heavy parts only once the arguments are known to be good, so --help and argument errors
answer at once."""

import json
import subprocess
import sys

import pytest

from helpers.elm import ROOT


def test_describe_accepts_the_spaces_labels_and_says_which_of_several_it_picked():
    from modeling_elm.scripts.describe import find_entity

    labels = ["Titanic (1953)", "Titanic (1997)", "Toy Story (1995)", "Titanic Town (1998)"]
    names, popularity = ["Titanic", "Titanic", "Toy Story", "Titanic Town"], [10, 100, 50, 5]
    find = lambda query: find_entity(labels, names, popularity, query)  # noqa: E731
    assert find("Titanic (1953)") == (0, [])  # the Space's own label, year and all
    assert find("titanic") == (1, ["Titanic (1953)"])  # the best-known exact title; the other named
    assert find("tita") == (1, ["Titanic (1953)", "Titanic Town (1998)"])
    with pytest.raises(SystemExit, match="No movie in the corpus matches 'heat'"):
        find("heat")
    # a year no match has is not silently swapped for another year's movie, nor an empty query for the default one
    with pytest.raises(SystemExit, match=r"No movie 'Titanic' from 1887 .* Titanic \(1997\)"):
        find("Titanic (1887)")
    for empty in ("", "  ", "(1997)"):
        with pytest.raises(SystemExit, match="names nothing"):
            find(empty)
    # your own data: a word is found by its name, whatever the label adds
    assert find_entity(["dog [n1]", "dog [n2]", "cat [n3]"], ["dog", "dog", "cat"], [0, 0, 0], "cat", "word") == (2, [])


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
    assert "(default: checkpoints/elm-quick)" in help_text and "(default: 60)" in help_text
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
