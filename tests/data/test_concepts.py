"""Concept directions on planted vectors: genres are known directions, the space is shifted and stretched."""

import json
import logging

import numpy as np
import pandas as pd
import pytest

from modeling_elm.data.concepts import concept_directions, concept_score, load_concepts, move_along, save_concepts
from modeling_elm.data.movielens.labels import genre_labels, tag_labels

DIM, N = 16, 2000


@pytest.fixture(scope="module")
def planted():
    """Vectors = sum of the planted directions of their genres + isotropic noise, then shifted and stretched per
    dimension. In the stretched space the best linear separator is stretch^-1 * planted direction, so a CAV that is
    not mapped back to the original space correctly points elsewhere."""
    rng = np.random.default_rng(0)
    # Orthonormal, so the other genres add no variance along a genre's own separator.
    directions = np.linalg.qr(rng.normal(size=(DIM, 3)))[0].T
    has = rng.random((N, 3)) < np.array([0.3, 0.2, 0.1])
    latent = has @ (2.0 * directions) + rng.normal(0, 0.7, (N, DIM))
    stretch = np.geomspace(0.2, 5.0, DIM)
    vectors = (latent * stretch + 3.0).astype(np.float32)
    labels = {"Comedy": has[:, 0], "Drama": has[:, 1], "Western": has[:, 2],
              "Coin flip": rng.random(N) < 0.5, "Rare": np.arange(N) < 12}
    expected = directions / stretch
    return vectors, labels, expected / np.linalg.norm(expected, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def concepts(planted):
    vectors, labels, _ = planted
    return concept_directions(vectors, labels, space="behavioural", seed=0)


def test_planted_concepts_are_found_and_noise_is_not(concepts, planted):
    _, _, expected = planted
    for i, name in enumerate(["Comedy", "Drama", "Western"]):
        concept = concepts[name]
        assert concept.accuracy > 0.85, name
        assert concept.direction.dtype == np.float32
        assert abs(np.linalg.norm(concept.direction) - 1) < 1e-6
        assert concept.direction @ expected[i] > 0.93, name  # unmapped weights reach at most 0.85 here
        assert concept.space == "behavioural"
    assert 0.4 < concepts["Coin flip"].accuracy < 0.6  # held out: an unlearnable label stays at chance


def test_counts(concepts, planted):
    _, labels, _ = planted
    for name in ("Comedy", "Drama", "Western", "Coin flip"):
        assert concepts[name].n_positive == labels[name].sum()
        assert concepts[name].n_negative == N - labels[name].sum()


def test_score_is_the_classifier_in_the_original_space(concepts, planted):
    vectors, labels, _ = planted
    for name in ("Comedy", "Drama", "Western"):
        predicted = concept_score(vectors, concepts[name]) > 0
        positive = labels[name]
        balanced = (predicted[positive].mean() + (~predicted[~positive]).mean()) / 2
        assert balanced > 0.85
        assert abs(balanced - concepts[name].accuracy) < 0.06  # training-set fit close to the held-out estimate
        probability = concept_score(vectors, concepts[name], probability=True)
        assert np.array_equal(probability > 0.5, predicted)


def test_moving_along_a_concept_raises_its_score_monotonically(concepts, planted):
    vectors, labels, _ = planted
    concept = concepts["Western"]
    strengths = [-1.0, -0.5, -0.1, 0.0, 0.1, 0.5, 1.0, 2.0]
    starts = vectors[~labels["Western"]][:20]
    scores = np.array([concept_score(move_along(starts, concept, s), concept) for s in strengths])
    assert (np.diff(scores, axis=0) > 0).all()
    # strength is in the concept's own units: s adds s differences of the class means to every vector
    assert np.allclose(move_along(starts, concept, 0.5) - starts, 0.5 * concept.step, atol=1e-5)
    assert np.allclose(scores[-1] - scores[3], 2.0 * concept.step @ concept.direction, rtol=1e-4)
    single = move_along(starts[0], concept, 0.5)
    assert single.shape == (DIM,) and np.allclose(single, move_along(starts, concept, 0.5)[0])


def test_one_step_of_a_concept_takes_the_typical_negative_to_the_typical_positive(concepts, planted):
    """Strength 1 is the difference of the class means, measured on the fitted vectors: the vectors without the
    concept, moved by 1, have the mean of those with it, in every coordinate and so on every classifier score."""
    vectors, labels, _ = planted
    for name in ("Comedy", "Drama", "Western"):
        concept, has = concepts[name], labels[name]
        moved = move_along(vectors[~has], concept, 1.0)
        assert np.allclose(moved.mean(axis=0), vectors[has].mean(axis=0), atol=1e-4)
        assert np.isclose(concept_score(moved, concept).mean(), concept_score(vectors[has], concept).mean(),
                          atol=1e-3)
        assert concept.step_size > 0


def test_concepts_saved_without_a_step_refuse_to_move_with_the_fix(concepts, tmp_path):
    from safetensors.numpy import load_file, save_file

    path = save_concepts({"Comedy": concepts["Comedy"]}, tmp_path / "semantic")
    save_file({"concept.0": load_file(str(path))["concept.0"]}, str(path))  # as concepts format 2 wrote them
    concept = load_concepts(path)["Comedy"]
    assert concept.step is None and concept.step_size is None
    with pytest.raises(ValueError, match="rebuild the corpus"):
        move_along(np.zeros(DIM, np.float32), concept, 1.0)
    with pytest.raises(ValueError, match="finite"):
        move_along(np.zeros(DIM, np.float32), concepts["Comedy"], float("nan"))


def test_dimensions_constant_up_to_rounding_never_carry_a_concept(planted):
    """Sentence encoders have dead coordinates (MiniLM: a spread of ~1e-33). Standardised, their rounding noise
    looked like signal and, mapped back through 1 / spread, owned the whole direction (seen: Comedy's CAV was 0.78
    on one dead coordinate, its class gap 5e-32), so every move only pushed that coordinate."""
    vectors, labels, expected = planted
    rng = np.random.default_rng(5)
    dead = rng.normal(0, 1e-33, (len(vectors), 2)).astype(np.float32)
    dead[:, 1] = 0.0  # exactly constant too
    with_dead = np.hstack([vectors, dead])
    concepts = concept_directions(with_dead, labels, space="semantic", seed=0)
    for i, name in enumerate(["Comedy", "Drama", "Western"]):
        direction = concepts[name].direction
        assert np.all(direction[-2:] == 0), name
        assert direction[:-2] @ expected[i] > 0.93, name
        assert np.all(concepts[name].step[-2:] == 0) and concepts[name].step_size > 0.1, name


def test_too_few_positives_are_skipped_and_reported(planted, caplog):
    vectors, labels, _ = planted
    with caplog.at_level(logging.WARNING, logger="modeling_elm.data.concepts"):
        concepts = concept_directions(vectors, labels, space="semantic", min_positive=20)
    assert "Rare" not in concepts and "Comedy" in concepts
    assert "Rare (12+/1988-)" in caplog.text
    with caplog.at_level(logging.WARNING, logger="modeling_elm.data.concepts"):
        concepts = concept_directions(vectors, {"Rare": labels["Rare"]}, space="semantic", min_positive=10)
    assert "Rare" in concepts


def test_save_load_round_trip_is_exact(concepts, tmp_path):
    path = save_concepts(concepts, tmp_path / "concepts" / "behavioural")
    assert path.name == "behavioural.safetensors" and (tmp_path / "concepts" / "behavioural.json").is_file()
    sidecar = json.loads((tmp_path / "concepts" / "behavioural.json").read_text())
    assert [c["name"] for c in sidecar["concepts"]] == list(concepts)
    for loaded in (load_concepts(tmp_path / "concepts" / "behavioural"), load_concepts(path)):
        assert list(loaded) == list(concepts)
        for name, concept in concepts.items():
            assert np.array_equal(loaded[name].direction, concept.direction)
            assert np.array_equal(loaded[name].step, concept.step)
            assert loaded[name].direction.dtype == loaded[name].step.dtype == np.float32
            for field in ("name", "space", "bias", "accuracy", "n_positive", "n_negative", "scale", "norm_scale"):
                assert getattr(loaded[name], field) == getattr(concept, field), field
    with pytest.raises(FileNotFoundError, match="missing"):
        load_concepts(tmp_path / "nowhere")


def test_bad_inputs_are_refused(planted):
    vectors, labels, _ = planted
    broken = vectors.copy()
    broken[7, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        concept_directions(broken, labels, space="x")
    with pytest.raises(ValueError, match="one bool per vector"):
        concept_directions(vectors, {"Comedy": labels["Comedy"][:-1]}, space="x")
    concept = concept_directions(vectors, {"Comedy": labels["Comedy"]}, space="x")["Comedy"]
    with pytest.raises(ValueError, match="16-d x space"):
        concept_score(np.zeros((2, 8)), concept)
    with pytest.raises(ValueError, match="NaN"):
        move_along(broken[7], concept, 1.0)


def test_genre_labels_follow_the_requested_order():
    movies = pd.DataFrame({"movie_id": [10, 20, 30, 40], "genres": [["Comedy", "Drama"], ["Drama"],
                                                                   ["(no genres listed)"], []]})
    labels = genre_labels(movies, np.array([40, 30, 20, 10, 99]))
    assert list(labels) == ["Comedy", "Drama"]
    assert labels["Comedy"].tolist() == [False, False, False, True, False]
    assert labels["Drama"].tolist() == [False, False, True, True, False]
    with pytest.raises(ValueError, match="genres"):
        genre_labels(movies.drop(columns="genres"), np.array([10]))


def test_tag_labels_from_user_tags_and_from_the_genome():
    tags = pd.DataFrame({
        "user_id": [1, 2, 3, 1, 1, 2, 4],
        "movie_id": [10, 10, 20, 20, 30, 30, 99],
        "tag": ["Pixar", "pixar ", "pixar", "funny", "dark", "Dark", "pixar"],
        "timestamp": 0,
    })
    labels = tag_labels(np.array([30, 20, 10]), tags=tags, min_users=2)
    assert list(labels) == ["dark", "pixar"]  # "funny": one user only
    assert labels["pixar"].tolist() == [False, False, True]  # movie 20 had pixar from one user only
    assert labels["dark"].tolist() == [True, False, False]
    scores = pd.DataFrame({"movie_id": [10, 10, 20, 30], "tag_id": [1, 2, 1, 2], "relevance": [0.9, 0.2, 0.5, 0.7]})
    names = pd.DataFrame({"tag_id": [1, 2], "tag": ["pixar", "dark"]})
    labels = tag_labels(np.array([10, 20, 30]), genome_scores=scores, genome_tags=names, max_tags=1)
    assert list(labels) == ["pixar"] and labels["pixar"].tolist() == [True, True, False]
    with pytest.raises(ValueError, match="genome"):
        tag_labels(np.array([10]))
