"""The options and recipe checks of train.py that run before any work: options each stage owns (learning rate,
steps, epochs, packing, loss and end-of-sequence choices) are refused with the flag to use instead, abbreviations
are errors and --help lists the refusals; a max_length too short for a task's prompt is found before the corpus is
built; a data: section and --corpus_path together are an error rather than a silent choice; and the torch
requirement is a range that keeps a user's torch while the set-up script pins the exact wheel."""

import re

import pytest
import torch

from helpers.elm import ROOT


def _train_module():
    from modeling_elm.scripts import train

    return train


def _train(args):
    return _train_module().main(args)


@pytest.mark.parametrize("flag, value, fix", [
    ("learning_rate", "0", "--stage1_learning_rate / --stage2_learning_rate"),
    ("max_steps", "1", "--stage1_max_steps / --stage2_max_steps"),
    ("num_train_epochs", "0", "--stage1_epochs / --stage2_epochs"),
    ("packing", "true", "--padding_free true packs the rows of a step instead"),
    ("completion_only_loss", "false", "always trains on the target only"),
    ("eos_token", "</s>", "change it on the tokenizer"),
])
def test_training_options_the_stages_own_are_refused_before_any_work(tmp_path, monkeypatch, flag, value, fix):
    monkeypatch.setattr(_train_module(), "load_training_data",
                        lambda *a: pytest.fail("work started despite the option"))
    with pytest.raises(ValueError, match=rf"--{flag} .*{re.escape(fix)}"):
        _train(["--output_dir", str(tmp_path / "out"), f"--{flag}", value])


def test_abbreviated_options_are_errors_as_in_a_recipe(tmp_path, capsys):
    with pytest.raises(SystemExit):
        _train(["--output_dir", str(tmp_path / "out"), "--stage1_max_step", "3"])
    assert "unrecognized arguments: --stage1_max_step 3" in capsys.readouterr().err


def test_help_says_which_options_are_refused(capsys):
    with pytest.raises(SystemExit):
        _train(["--help"])
    out = capsys.readouterr().out
    assert "options an ELM run refuses" in out and "--learning_rate: set it per stage" in out
    # MovieLens' options are not every run's: the help points to where they live instead of listing them
    assert "--movie_space" not in out and "--min_movie_ratings" not in out and "data: movielens:" in out


def test_movielens_options_still_parse_on_the_command_line():
    from modeling_elm.scripts import train

    parser = train.command_parser(train.__doc__, "train", train.ElmArguments, train.MovieLensConfig, train.SFTConfig,
                                  parser_class=train.TrlParser, prog="train.py")
    train.hide_movielens_options(parser)
    _, movielens_config, _ = parser.parse_args_and_config(args=["--output_dir", "x", "--tasks", "summary", "--use_cpu",
                                                             "true", "--bf16", "false"])
    assert movielens_config.tasks == ["summary"]


def test_a_max_length_too_short_for_the_prompt_is_found_before_the_corpus(tmp_path, monkeypatch):
    from helpers.elm import write_tiny_base_model

    base = write_tiny_base_model(tmp_path / "base")
    monkeypatch.setattr(_train_module(), "load_training_data", lambda *a: pytest.fail("built the corpus first"))
    with pytest.raises(ValueError, match=r"max_length 12 leaves no room for a target: the prompt of task '\w+' alone"):
        _train(["--base_model", str(base), "--output_dir", str(tmp_path / "out"), "--max_length", "12",
                "--tasks", "summary"])


def test_torch_is_a_range_that_keeps_a_users_torch_while_set_up_installs_the_exact_wheel():
    import tomllib

    from packaging.requirements import Requirement

    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch_requirement = next(Requirement(d) for d in dependencies if Requirement(d).name == "torch")
    assert not any(s.operator == "==" for s in torch_requirement.specifier)
    for version in ("2.6.0", "2.11.0", torch.__version__.split("+")[0]):  # 2.11: the CUDA build a GPU run used
        assert torch_requirement.specifier.contains(version)
    assert 'pip install --quiet --progress-bar off "torch==2.13.0"' in (ROOT / "scripts" / "setup.sh").read_text()


def test_a_data_section_and_a_corpus_path_together_are_an_error_not_a_silent_choice(tmp_path):
    from modeling_elm.training.arguments import ElmArguments

    with pytest.raises(ValueError, match="Both a data: section and --corpus_path .*Keep one"):
        ElmArguments(data={"spaces": {"word": {"vectors": "words.parquet"}}}, corpus_path=str(tmp_path))
    ElmArguments(corpus_path=str(tmp_path))  # either alone is fine
    ElmArguments(data={"spaces": {}})


def test_an_output_dir_that_is_not_an_elm_run_is_refused_before_any_work(tmp_path, monkeypatch):
    from helpers.elm import write_tiny_base_model
    from modeling_elm.training.arguments import check_output_dir

    base = write_tiny_base_model(tmp_path / "base")
    before = {p.name: p.read_bytes() for p in base.iterdir()}
    monkeypatch.setattr(_train_module(), "load_training_data", lambda *a: pytest.fail("work started"))
    with pytest.raises(ValueError, match=r"--output_dir .*base is the base model's own folder .*another --output_dir"):
        _train(["--base_model", str(base), "--output_dir", str(tmp_path / "." / "base")])
    assert {p.name: p.read_bytes() for p in base.iterdir()} == before
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"notes holds files that are not an ELM training run \(todo\.txt\).*another "
                                         r"--output_dir"):
        _train(["--base_model", str(base), "--output_dir", str(tmp_path / "notes")])
    (tmp_path / "run" / "stage0").mkdir(parents=True)  # a run killed in stage 0 or later: its rerun resumes it
    (tmp_path / "empty").mkdir()
    for folder in ("run", "empty", "new"):
        check_output_dir(tmp_path / folder, str(base))


def test_a_placeholder_in_the_system_prompt_is_refused_before_the_corpus(tmp_path, monkeypatch):
    from helpers.elm import write_tiny_base_model

    base = write_tiny_base_model(tmp_path / "base")
    monkeypatch.setattr(_train_module(), "load_training_data", lambda *a: pytest.fail("built the corpus first"))
    with pytest.raises(ValueError, match=r"--system_prompt .* holds the placeholder '<movie>'.*Write it without"):
        _train(["--base_model", str(base), "--output_dir", str(tmp_path / "out"), "--system_prompt",
                "You describe <movie> and its fans."])


def test_a_placeholder_of_your_own_data_in_the_system_prompt_is_refused():
    from modeling_elm.training.arguments import ElmArguments, check_system_prompt

    data = {"spaces": {"item": {"path": "items.parquet"}},
            "templates": [{"task": "name", "prompt": "name <item> .", "target": "{name}"}]}
    with pytest.raises(ValueError, match=r"--system_prompt 'You describe <item>s\.' holds the placeholder '<item>'"):
        check_system_prompt(ElmArguments(data=data, system_prompt="You describe <item>s."))
    check_system_prompt(ElmArguments(data=data, system_prompt="You describe items."))
