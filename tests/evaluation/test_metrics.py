"""Evaluation metrics on hand-made inputs whose answers are known."""

import numpy as np
import pytest

from modeling_elm.evaluation.metrics import (
    behavioural_consistency, bootstrap_ci, constant_guesses, constant_taste, derangement, fact_scores, rank_metrics,
    retrieval_ranks, semantic_consistency, stated_decade, stated_genres, taste_scores,
)


def test_identical_text_vector_has_sc_one_and_opposite_minus_one():
    rng = np.random.default_rng(0)
    v = rng.standard_normal((5, 16))
    assert np.allclose(semantic_consistency(v, v * 3.0), 1.0)
    assert np.allclose(semantic_consistency(v, -v), -1.0)


def test_retrieval_rank_finds_the_true_row_and_ties_count_against_it():
    rng = np.random.default_rng(1)
    candidates = rng.standard_normal((50, 8))
    ranks = retrieval_ranks(candidates[[3, 7]], candidates, np.array([3, 7]))
    assert ranks.tolist() == [1, 1]
    assert {k: v.mean() for k, v in rank_metrics(ranks).items()} == {"hits@1": 1.0, "hits@10": 1.0, "mrr": 1.0}
    constant = np.ones((1, 8))
    same = np.ones((4, 8))  # every candidate identical: a constant text must not rank first
    assert retrieval_ranks(constant, same, np.array([0]))[0] == 4
    assert rank_metrics(np.array([1, 2, 4]))["mrr"].mean() == pytest.approx((1 + 0.5 + 0.25) / 3)


def test_behavioural_consistency_is_one_for_the_same_ranking_and_minus_one_reversed():
    rng = np.random.default_rng(2)
    movie_semantic = rng.standard_normal((30, 8))
    movie_behavioural = rng.standard_normal((30, 4))
    user = rng.standard_normal(4)
    by_user = movie_behavioural @ user
    # a profile vector whose similarity order equals / reverses the user's order: semantic = unit vectors along it
    profile = np.array([1.0] + [0.0] * 7)
    aligned = np.column_stack([by_user, np.full((30, 7), 100.0)])  # cosine with e1 is monotone in by_user
    assert behavioural_consistency(profile, aligned, user, movie_behavioural) == pytest.approx(1.0)
    assert behavioural_consistency(-profile, aligned, user, movie_behavioural) == pytest.approx(-1.0)
    assert abs(behavioural_consistency(profile, movie_semantic, user, movie_behavioural)) < 0.6


def test_facts_read_genres_and_decades_from_text():
    assert stated_genres("A science fiction thriller, animated and very noir.") == {"Sci-Fi", "Thriller", "Animation",
                                                                                    "Film-Noir"}
    assert stated_decade("made in the 1990s") == "1990s" and stated_decade("released 1987") == "1980s"
    assert stated_decade("no date here") is None
    perfect = fact_scores("A comedy drama from the 1990s.", ["Comedy", "Drama"], 1995)
    assert perfect == {"genre_precision": 1.0, "genre_recall": 1.0, "genre_f1": 1.0, "decade_accuracy": 1.0}
    half = fact_scores("A comedy horror from the 1980s.", ["Comedy", "Drama"], 1995)
    assert half["genre_precision"] == 0.5 and half["genre_recall"] == 0.5 and half["decade_accuracy"] == 0.0
    assert fact_scores("Nothing said.", ["Comedy"], 1995)["genre_f1"] == 0.0


def test_constant_guess_is_the_most_common_answer():
    guess = constant_guesses([["Drama"], ["Drama", "Comedy"], ["Comedy", "Drama"]], [1995, 1991, 1982],
                             ["a", "b", "b"])
    assert guess["decade"] == "1990s" and guess["genres"][0] == "Drama" and guess["text"] == "b"
    assert fact_scores(guess["genre_text"], ["Drama"], 1997)["decade_accuracy"] == 1.0


def test_a_profile_is_scored_against_the_users_own_favourites():
    favourites = (["Horror", "Thriller"], ["1980s", "1990s"])
    right = taste_scores("This user loves horror and thriller movies, especially from the 1980s.", *favourites)
    assert right == {"genre_precision": 1.0, "genre_recall": 1.0, "genre_f1": 1.0, "decade_accuracy": 1.0}
    # the second favourite decade first, one genre right of two said: what the profile leads with must be right
    half = taste_scores("This user loves horror and comedy movies from the 1990s and 1980s.", *favourites)
    assert half["genre_f1"] == 0.5 and half["decade_accuracy"] == 0.0
    assert taste_scores("The movieastes of the moviestar.", *favourites)["genre_f1"] == 0.0
    unknown = taste_scores("Loves drama from the 1980s.", [], [])  # eclectic: nothing to be right about
    assert all(np.isnan(value) for value in unknown.values())


def test_the_constant_profile_is_the_commonest_favourites_and_scores_like_any_answer():
    genres = [["Drama", "War"], ["Drama", "Comedy"], ["Comedy", "Drama"], ["Horror"]]
    decades = [["1990s"], ["1990s", "1980s"], ["1980s"], []]
    guess = constant_taste(genres, decades)
    assert guess["genres"] == ["Drama", "Comedy"] and guess["decade"] == "1990s"
    assert guess["text"] == "This user loves drama and comedy movies, especially movies from the 1990s."
    assert taste_scores(guess["text"], ["Comedy", "Drama"], ["1990s"])["genre_f1"] == 1.0


def test_bootstrap_interval_covers_the_mean_and_shrinks_with_more_data():
    rng = np.random.default_rng(3)
    small, large = bootstrap_ci(rng.normal(1.0, 1.0, 30)), bootstrap_ci(rng.normal(1.0, 1.0, 3000))
    assert small["low"] < small["mean"] < small["high"] and large["low"] < 1.0 < large["high"]
    assert large["high"] - large["low"] < (small["high"] - small["low"]) / 5
    assert bootstrap_ci([2.0, 2.0, 2.0]) == {"mean": 2.0, "low": 2.0, "high": 2.0, "n": 3}
    assert bootstrap_ci([np.nan, 1.0, 3.0])["n"] == 2


def test_derangement_moves_every_row():
    order = derangement(7, seed=4)
    assert sorted(order) == list(range(7)) and all(order != np.arange(7))
    with pytest.raises(ValueError, match="at least 2 rows"):
        derangement(1)
