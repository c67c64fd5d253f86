"""The reading benchmark chooses on validation entities carved out of the training ones, never on the test split."""

import json
from pathlib import Path

import pandas as pd
import pytest

from helpers.benchmarks import load_benchmark

ROOT = Path(__file__).resolve().parents[1]


def bench():
    return load_benchmark("bench_reading")


def test_validation_movies_and_users_come_from_training_and_leave_its_rows(trained, tmp_path):
    from modeling_elm.data.corpus import load_task_splits

    corpus = trained[1]
    out = bench().carve_validation(corpus, {"movie": 3, "user": 2}, seed=0, out=tmp_path / "validation")
    movies, users = (pd.read_parquet(out / "entities" / "movie.parquet"),
                     pd.read_parquet(out / "entities" / "user.parquet"))
    original_movies, original_users = (pd.read_parquet(corpus / "entities" / "movie.parquet"),
                                       pd.read_parquet(corpus / "entities" / "user.parquet"))
    for carved, original, n in ((movies, original_movies, 3), (users, original_users, 2)):
        chosen = carved["split"] == "test"
        assert chosen.sum() == n and (original.loc[chosen.to_numpy(), "split"] == "train").all()
        assert ((carved["split"] == "heldout") == (original["split"] == "test")).all()  # the real test stays unseen
    splits = load_task_splits(out)
    val_movies = set(movies.loc[movies["split"] == "test", "id"])
    val_users = set(users.loc[users["split"] == "test", "id"])
    for row in splits["train"]:
        assert not set(row["movie_ids"]) & val_movies and not set(row["user_ids"]) & val_users
    tasks = set(splits["test"]["task"])
    assert "user_profile" in tasks and tasks - {"user_profile"}
    for row in splits["test"]:
        assert set(row["movie_ids"]) & val_movies or set(row["user_ids"]) & val_users
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["validation_of"] == str(corpus)
    assert manifest["counts"]["rows"] == {"train": len(splits["train"]), "test": len(splits["test"])}


def test_every_candidate_names_what_it_changes_and_a_recipe_that_exists():
    module = bench()
    for name, candidate in module.CANDIDATES.items():
        assert candidate["help"] and isinstance(candidate["train"], list), name
        assert (ROOT / candidate.get("recipe", "recipes/quick.yaml")).is_file(), name
    assert module._recipe_corpus("recipes/quick-users.yaml") == {"titles": False}
    assert module.movielens_options(module._recipe("recipes/quick-users.yaml"))["tasks"] == ["user_profile"]


def test_a_curriculum_candidate_needs_its_first_step_and_points_train_at_its_model(tmp_path):
    import argparse

    module = bench()
    args = argparse.Namespace(workdir=str(tmp_path), final=False, evaluate_only=None)
    with pytest.raises(RuntimeError, match="run --candidates k16-std --seeds 3 first"):
        module.bench_one("paper-curriculum", 3, args)
    assert not (tmp_path / "paper-curriculum-s3").exists()  # refused before anything was set up
    train = [o.format(workdir="/w", seed=3) for o in module.CANDIDATES["paper-curriculum"]["train"]]
    assert train[train.index("--init_from") + 1] == "/w/k16-std-s3/model"
    assert module.CANDIDATES["paper-curriculum"]["requires"] in module.CANDIDATES


def test_candidates_are_data_and_the_main_jobs_candidate_reads_its_recipe(tmp_path):
    module = bench()
    assert module.CANDIDATES == module.read_candidates(ROOT / "benchmarks" / "candidates.yaml")
    main_job = module.CANDIDATES["main-job"]
    assert main_job["from_recipe"] and module.train_options(main_job, "/w", 0) == []  # no copy of quick.yaml's levers
    assert module._recipe("recipes/quick.yaml")["stage1_max_steps"] > 0  # its steps come from the recipe
    copy = tmp_path / "candidates.yaml"
    copy.write_text((ROOT / "benchmarks" / "candidates.yaml").read_text().replace("help: two soft tokens per vector",
                                                                                  "help: ''"))
    with pytest.raises(SystemExit, match="candidate 'k2' has no help line"):
        module.read_candidates(copy)


def test_rows_measured_before_the_learning_rate_moved_keep_theirs():
    module = bench()
    k16 = module.train_options(module.CANDIDATES["k16-std"], "/w", 0)
    assert k16[k16.index("--stage1_learning_rate") + 1] == "2e-3"
    winner = module.train_options(module.CANDIDATES["k16-std-lr4e-3"], "/w", 0)
    assert winner.count("--stage1_learning_rate") == 1 and winner[winner.index("--stage1_learning_rate") + 1] == "4e-3"


def test_your_own_data_is_benchmarked_on_synsets_carved_from_training_through_a_recipe_without_its_data(tmp_path):
    """A `data:` recipe: the corpus train.py would build, validation entities of its first space carved out of the
    training ones, and a copy of the recipe that trains on the carved folder instead of rebuilding the data."""
    import argparse

    import numpy as np
    import yaml

    from modeling_elm.data.corpus import load_task_splits

    rng = np.random.default_rng(0)
    pd.DataFrame({"id": [f"w{i}" for i in range(40)], "vector": list(rng.standard_normal((40, 4)).astype("float32")),
                  "word": [f"word {i}" for i in range(40)]}).to_parquet(tmp_path / "words.parquet")
    recipe = {"base_model": "unused", "num_tokens": 2, "data": {
        "spaces": {"word": {"path": str(tmp_path / "words.parquet")}},
        "templates": [{"task": "name", "prompt": "Name <word>.", "target": "{word}."}],
        "test_fraction": 0.25, "output_dir": str(tmp_path / "corpus")}}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    module = bench()
    where = tmp_path / "run"
    where.mkdir()
    args = argparse.Namespace(final=False, validation_entities=6)
    corpus, trained_recipe = module.training_corpus({"train": []}, str(tmp_path / "recipe.yaml"), where, args)
    assert corpus.name == "corpus-validation-6"
    words = pd.read_parquet(corpus / "entities" / "word.parquet")
    original = pd.read_parquet(tmp_path / "corpus" / "entities" / "word.parquet")
    carved = words["split"] == "test"
    assert carved.sum() == 6 and (original.loc[carved.to_numpy(), "split"] == "train").all()
    assert ((words["split"] == "heldout") == (original["split"] == "test")).all()
    splits = load_task_splits(corpus)
    assert {i for ids in splits["test"]["word_ids"] for i in ids} == set(words.loc[carved, "id"])
    assert not {i for ids in splits["train"]["word_ids"] for i in ids} & set(words.loc[carved, "id"])
    settings = yaml.safe_load(Path(trained_recipe).read_text())
    assert "data" not in settings and settings["corpus_path"] == str(corpus) and settings["num_tokens"] == 2
    final, _ = module.training_corpus({"train": []}, str(tmp_path / "recipe.yaml"), where,
                                      argparse.Namespace(final=True, validation_entities=6))
    assert final == tmp_path / "corpus"  # --final scores on the data's own test split
