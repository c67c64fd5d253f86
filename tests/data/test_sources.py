"""One way to name training data (`data/sources.py`): `data: {movielens: {...}}`, `data: {spaces: ..., texts: ...}` or
a built `--corpus_path`, each one object that training asks for its placeholders, its prompts and its folder; the
older top-level MovieLens options still work, and both forms together are refused with the line to move."""

import json
from dataclasses import replace

import pytest

from modeling_elm.data.movielens.build import MovieLensConfig
from modeling_elm.data.sources import Built, MovieLens, OwnFiles, training_data
from modeling_elm.training.arguments import ElmArguments, data_source


def test_each_kind_of_data_is_one_object_with_its_placeholders_and_prompts(tmp_path):
    movielens = training_data({"movielens": {"tasks": ["what_kind"], "detail": "brief"}}, None, MovieLensConfig())
    assert isinstance(movielens, MovieLens) and movielens.config.tasks == ["what_kind"]
    assert movielens.config.detail == "brief" and movielens.placeholders() == ["<movie>", "<user>"]
    assert list(movielens.prompts()) == ["task 'what_kind'"] and "<movie>" in movielens.prompts()["task 'what_kind'"]
    # the older form, MovieLens' options at the recipe's top level, is the same object
    older = training_data(None, None, replace(MovieLensConfig(), tasks=["what_kind"], detail="brief"))
    assert isinstance(older, MovieLens) and older.config == movielens.config

    own = training_data({"spaces": {"item": {"path": "items.parquet", "placeholder": "<item>"}},
                         "templates": [{"task": "name", "prompt": "Name <item>.", "target": "{name}"}]}, None,
                        MovieLensConfig())
    assert isinstance(own, OwnFiles) and own.own_placeholders and own.placeholders() == ["<item>"]
    assert own.prompts() == {"template 'name'": "Name <item>."}

    folder = tmp_path / "built"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"spaces": {"word": 8}, "placeholders": {"word": "<w>"},
                                                      "prompts": {"define": "Define <w>."}, "kind": "byo"}))
    built = training_data(None, str(folder), MovieLensConfig())
    assert isinstance(built, Built) and built.build() == folder
    assert built.placeholders() == ["<w>"] and built.prompts() == {"task 'define'": "Define <w>."}
    assert "describe" not in built.ask(folder) and "describe" in movielens.ask(folder)


def test_both_forms_of_movielens_options_together_are_refused_with_the_line_to_move():
    with pytest.raises(ValueError, match=r"given twice: tasks at the recipe's top level .* `  tasks: \['summary'\]`"):
        training_data({"movielens": {"detail": "brief"}}, None, replace(MovieLensConfig(), tasks=["summary"]))
    with pytest.raises(ValueError, match="data.movielens has no option 'task'; MovieLens' options: .*tasks"):
        training_data({"movielens": {"task": ["what_kind"]}}, None, MovieLensConfig())
    with pytest.raises(ValueError, match="data: holds movielens: and spaces"):
        training_data({"movielens": {}, "spaces": {}}, None, MovieLensConfig())


def test_a_data_movielens_section_builds_the_corpus_the_top_level_options_build(tmp_path):
    from helpers.movielens import write_ml25m_folder

    release = tmp_path / "ml-25m"
    release.mkdir()
    write_ml25m_folder(release, n_users=40, n_movies=24, seed=3)
    options = dict(source=str(release), min_movie_ratings=3, min_user_ratings=3, als_dim=8, als_iterations=2,
                   evaluate_embeddings=False, tasks=["what_kind"], detail="brief", corpus_dir=str(tmp_path / "c"))
    section = data_source(ElmArguments(data={"movielens": options})).build()
    older = data_source(ElmArguments(), MovieLensConfig(**options)).build()
    assert section == older and (section / "manifest.json").is_file()
