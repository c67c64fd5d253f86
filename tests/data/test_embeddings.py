"""Behavioural and semantic embeddings on synthetic ratings from a planted taste model, so the truth is known."""

import numpy as np
import pandas as pd
import pytest

from modeling_elm.data.concepts import concept_directions
from modeling_elm.data.embeddings import load_encoder, semantic_embeddings
from modeling_elm.data.movielens.behavioural import (
    _ranking_metrics, behavioural_embeddings, confidence_values, evaluate_behavioural, movie_text,
)

N_GENRES = 5


def planted_ratings(n_users=800, n_movies=300, per_user=30, seed=0):
    """Each movie has one latent genre and a popularity; each user loves one genre. Users mostly rate popular
    movies, more often from their genre, and rate their genre high (about 4.5) and the rest low (about 2).
    Ids are sparse and shuffled relative to the latent rows, so a mix-up of ids and rows shows."""
    rng = np.random.default_rng(seed)
    genre = rng.integers(N_GENRES, size=n_movies)
    popularity = rng.permutation(1.0 / np.arange(1, n_movies + 1) ** 0.8)
    taste = rng.integers(N_GENRES, size=n_users)
    user_ids = rng.permutation(n_users) * 3 + 7
    movie_ids = rng.permutation(n_movies) * 5 + 11
    frames = []
    for user in range(n_users):
        loved = genre == taste[user]
        weights = popularity * np.where(loved, 3.0, 1.0)
        movies = rng.choice(n_movies, size=per_user, replace=False, p=weights / weights.sum())
        score = 2.0 + 2.5 * loved[movies] + rng.normal(0, 0.7, per_user)
        frames.append(pd.DataFrame({
            "user_id": np.int64(user_ids[user]), "movie_id": movie_ids[movies].astype(np.int64),
            "rating": np.clip(np.round(score * 2) / 2, 0.5, 5.0).astype(np.float32),
            "timestamp": rng.integers(10**9, 2 * 10**9, per_user),
        }))
    ratings = pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    truth = {"genre": dict(zip(movie_ids, genre)), "taste": dict(zip(user_ids, taste))}
    return ratings, truth


@pytest.fixture(scope="module")
def planted():
    return planted_ratings()


@pytest.fixture(scope="module")
def fitted(planted):
    ratings, _ = planted
    return behavioural_embeddings(ratings, dim=8, progress=False)


def test_shapes_dtypes_and_sorted_ids(planted, fitted):
    ratings, _ = planted
    assert np.array_equal(fitted.user_ids, np.sort(ratings["user_id"].unique()))
    assert np.array_equal(fitted.movie_ids, np.sort(ratings["movie_id"].unique()))
    assert fitted.user_vectors.shape == (800, 8) and fitted.user_vectors.dtype == np.float32
    assert fitted.movie_vectors.shape == (300, 8) and fitted.movie_vectors.dtype == np.float32
    assert fitted.settings()["dim"] == 8 and fitted.settings()["weighting"] == "signed"


def test_rows_belong_to_their_ids(planted, fitted):
    """Each user's vector scores the movies of the user's planted genre above the others: only true when row i
    really is user_ids[i] and movie row j really is movie_ids[j]."""
    _, truth = planted
    movie_genre = np.array([truth["genre"][m] for m in fitted.movie_ids])
    user_taste = np.array([truth["taste"][u] for u in fitted.user_ids])
    scores = fitted.user_vectors @ fitted.movie_vectors.T
    loved = movie_genre[None, :] == user_taste[:, None]
    gap = np.where(loved, scores, 0).sum(1) / loved.sum(1) - np.where(~loved, scores, 0).sum(1) / (~loved).sum(1)
    assert (gap > 0).mean() > 0.95


def test_deterministic_for_a_seed_at_any_thread_count(planted, fitted):
    ratings, _ = planted
    again = behavioural_embeddings(ratings, dim=8, progress=False, num_threads=1)
    assert np.array_equal(fitted.user_vectors, again.user_vectors)
    assert np.array_equal(fitted.movie_vectors, again.movie_vectors)
    other_seed = behavioural_embeddings(ratings, dim=8, progress=False, seed=1)
    assert not np.allclose(fitted.movie_vectors, other_seed.movie_vectors)


def test_row_order_of_the_input_does_not_matter(planted, fitted):
    ratings, _ = planted
    shuffled = behavioural_embeddings(ratings.iloc[::-1], dim=8, progress=False)
    assert np.array_equal(fitted.movie_vectors, shuffled.movie_vectors)


def test_als_beats_popularity_on_held_out_liked_movies(planted):
    ratings, _ = planted
    report = evaluate_behavioural(ratings, test_fraction=0.2, k=10, max_users=300, dim=8, progress=False)
    assert report["users_evaluated"] == 300
    assert 0 < report["popularity_recall@10"] < 1
    assert report["als_recall@10"] > report["popularity_recall@10"] + 0.1
    assert report["als_ndcg@10"] > report["popularity_ndcg@10"] + 0.1
    assert report == evaluate_behavioural(ratings, test_fraction=0.2, k=10, max_users=300, dim=8,
                                          progress=False) | {"fit_seconds": report["fit_seconds"]}


def test_ranking_metrics_by_hand():
    """User 0 saw movie 0 (the best-scored), so the top 2 are movies 1 and 2; only movie 2 is held out: recall 1/1,
    NDCG (1/log2(3)) / 1. User 1 has held-out movies 3 and 4 and gets movie 4 first: recall 1/2,
    NDCG 1 / (1 + 1/log2(3))."""
    import scipy.sparse as sp

    scores = np.array([[9.0, 8.0, 7.0, 1.0, 0.0], [0.0, 1.0, 5.0, 2.0, 6.0]], dtype=np.float32)
    seen = sp.csr_matrix(np.array([[1, 0, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=np.float32))
    relevant = sp.csr_matrix(np.array([[0, 0, 1, 0, 0], [0, 0, 0, 1, 1]], dtype=np.float32))
    recall, ndcg = _ranking_metrics(scores, seen, relevant, k=2)
    assert np.allclose(recall, [1.0, 0.5])
    assert np.allclose(ndcg, [1 / np.log2(3), 1 / (1 + 1 / np.log2(3))])
    assert scores[0, 0] == 9.0  # the caller's scores are left alone


def test_untrained_vectors_do_no_better_than_chance(planted):
    """The metric itself must not flatter: a one-iteration, near-random fit loses to popularity."""
    ratings, _ = planted
    report = evaluate_behavioural(ratings, test_fraction=0.2, max_users=300, dim=8, iterations=0, progress=False)
    assert report["als_recall@10"] < report["popularity_recall@10"]


def test_behavioural_movie_vectors_carry_the_planted_genres(planted, fitted):
    _, truth = planted
    movie_genre = np.array([truth["genre"][m] for m in fitted.movie_ids])
    labels = {f"genre{g}": movie_genre == g for g in range(N_GENRES)}
    concepts = concept_directions(fitted.movie_vectors, labels, space="behavioural", min_positive=10)
    assert len(concepts) == N_GENRES
    assert min(c.accuracy for c in concepts.values()) > 0.8


def test_weightings():
    signed = confidence_values(np.array([0.5, 2.5, 3.0, 5.0]), "signed", alpha=2.0)
    assert np.allclose(signed, [-(1 + 2 * 2.25), -(1 + 2 * 0.25), 1 + 2 * 0.25, 1 + 2 * 2.25])
    assert np.allclose(confidence_values(np.array([1.0, 5.0]), "confidence", alpha=2.0), [3.0, 11.0])
    with pytest.raises(ValueError, match="weighting"):
        confidence_values(np.array([1.0]), "bm25")


def test_bad_ratings_are_refused_with_the_reason(planted):
    ratings, _ = planted
    with pytest.raises(ValueError, match="movie_id"):
        behavioural_embeddings(ratings.rename(columns={"movie_id": "item"}), progress=False)
    with pytest.raises(ValueError, match="repeated"):
        behavioural_embeddings(pd.concat([ratings, ratings.head(3)]), dim=4, progress=False)
    with pytest.raises(ValueError, match="missing values"):
        behavioural_embeddings(ratings.assign(rating=ratings["rating"].where(ratings.index != 5)), progress=False)
    with pytest.raises(ValueError, match="missing ids"):
        behavioural_embeddings(ratings.assign(user_id=ratings["user_id"].astype("Int64").where(ratings.index != 3)),
                               progress=False)
    with pytest.raises(ValueError, match="integer"):
        behavioural_embeddings(ratings.assign(user_id=ratings["user_id"].astype(str)), progress=False)


def test_huge_ids_take_the_factorize_path(planted):
    ratings, _ = planted
    small = behavioural_embeddings(ratings, dim=4, iterations=3, progress=False)
    shifted = ratings.assign(movie_id=ratings["movie_id"] + 10**12)
    huge = behavioural_embeddings(shifted, dim=4, iterations=3, progress=False)
    assert np.array_equal(huge.movie_ids, small.movie_ids + 10**12)
    assert np.array_equal(huge.movie_vectors, small.movie_vectors)


def test_movie_text():
    assert movie_text("Toy Story", 1995, ["Adventure", "Animation", "Children"], ["pixar", "fun"]) == (
        "Toy Story (1995). Genres: Adventure, Animation, Children. Tags: pixar, fun.")
    assert movie_text("Heat", None, ["Action"]) == "Heat. Genres: Action."
    assert movie_text("Heat", pd.NA, ["Action"], []) == "Heat. Genres: Action."
    assert movie_text("Nothing", 2001, ["(no genres listed)"]) == "Nothing (2001)."
    assert movie_text("Nothing", 2001, np.array(["Drama"]), np.array(["slow"])) == (
        "Nothing (2001). Genres: Drama. Tags: slow.")


def test_semantic_embeddings_with_the_packaged_minilm():
    texts = ["A cat sits on the mat.", "There is a cat sitting on a mat.", "Quarterly tax filings are due in April."]
    vectors = semantic_embeddings(texts, progress=False)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3
    assert semantic_embeddings([], progress=False).shape == (0, 384)
    with pytest.raises(TypeError, match="strings"):
        semantic_embeddings([None], progress=False)


class RawEncoder:
    """Any encoder that does not normalise its output (many sentence-transformers models do not)."""

    def encode(self, texts, **kwargs):
        return np.array([[3.0, 4.0] if len(t) > 1 else [0.0, 0.0] for t in texts])


def test_semantic_embeddings_are_normalised_whatever_the_encoder():
    assert np.allclose(semantic_embeddings(["ab", "abc"], encoder=RawEncoder()), [[0.6, 0.8], [0.6, 0.8]])
    with pytest.raises(ValueError, match="zero or non-finite"):
        semantic_embeddings(["ab", "a"], encoder=RawEncoder())


def test_encoder_is_loaded_once_per_name():
    names = [None, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"]
    assert len({id(load_encoder(name)) for name in names}) == 1
