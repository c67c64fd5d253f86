"""Behavioural vectors of MovieLens users and movies (weighted ALS of the ratings), and the text a movie's semantic
vector encodes.

    from modeling_elm.data.movielens.behavioural import behavioural_embeddings, evaluate_behavioural, movie_text

    behaviour = behavioural_embeddings(ratings, dim=64)          # ratings: user_id, movie_id, rating[, timestamp]
    behaviour.user_vectors.shape, behaviour.movie_vectors.shape  # (n_users, 64), (n_movies, 64), float32
    evaluate_behavioural(ratings)                                # recall@10 / NDCG@10 of ALS against popularity
    movie_text("Toy Story", 1995, ["Animation", "Children"])     # "Toy Story (1995). Genres: Animation, Children."

Rows follow the sorted ids (`user_ids`, `movie_ids`), so two runs on the same input line up row for row.
"""

import logging
import time
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .release import LIKED, NO_GENRES

logger = logging.getLogger(__name__)

# Between the half-star ratings 2.5 and 3, so no MovieLens rating is neutral: 3 stars is a weak "yes".
NEUTRAL_RATING = 2.75
WEIGHTINGS = ("signed", "confidence")


@dataclass
class BehaviouralEmbeddings:
    """Weighted-ALS factors of a ratings table; row i of `user_vectors` belongs to `user_ids[i]`."""

    user_ids: np.ndarray
    user_vectors: np.ndarray
    movie_ids: np.ndarray
    movie_vectors: np.ndarray
    dim: int
    regularization: float
    iterations: int
    alpha: float
    weighting: str
    seed: int
    seconds: float = 0.0

    def settings(self) -> dict:
        """The settings that made these vectors, for a model card or a cache key."""
        return {k: v for k, v in asdict(self).items() if not isinstance(v, np.ndarray) and k != "seconds"}


def _check_ratings(ratings: pd.DataFrame) -> None:
    missing = [c for c in ("user_id", "movie_id", "rating") if c not in ratings.columns]
    if missing:
        raise ValueError(
            f"ratings lacks the column(s) {missing}; it needs user_id, movie_id and rating "
            f"(it has {list(ratings.columns)}). Rename yours, e.g. ratings.rename(columns={{'item_id': 'movie_id'}})."
        )
    if len(ratings) == 0:
        raise ValueError("ratings is empty; behavioural embeddings need at least one rating per user and movie.")
    for column in ("user_id", "movie_id"):
        if ratings[column].isna().any():
            missing = int(ratings[column].isna().sum())
            raise ValueError(f"ratings['{column}'] has {missing} missing ids; drop those rows.")
        if not pd.api.types.is_integer_dtype(ratings[column].dtype):
            raise ValueError(f"ratings['{column}'] is {ratings[column].dtype}, not integer ids; "
                             f"map your ids to integers first, e.g. pd.factorize(ratings['{column}'])[0].")
    if ratings["rating"].isna().any():
        missing = int(ratings["rating"].isna().sum())
        raise ValueError(f"ratings['rating'] has {missing} missing values; drop those rows.")


def _index_ids(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted unique ids, row of each id). A lookup table when ids are small non-negative integers, as MovieLens
    ids are: 25M ids take 0.1 s this way against 3.6 s for np.unique, which sorts them all."""
    ids = np.asarray(ids)
    low, high = int(ids.min()), int(ids.max())
    if low >= 0 and high <= max(4 * len(ids), 1 << 24):
        present = np.zeros(high + 1, dtype=bool)
        present[ids] = True
        unique = np.flatnonzero(present)
        table = np.full(high + 1, -1, dtype=np.int32)
        table[unique] = np.arange(len(unique), dtype=np.int32)
        return unique.astype(ids.dtype, copy=False), table[ids]
    rows, unique = pd.factorize(ids, sort=True)
    return np.asarray(unique), rows.astype(np.int32, copy=False)


def confidence_values(rating: np.ndarray, weighting: str = "signed", alpha: float = 1.0,
                      neutral: float = NEUTRAL_RATING) -> np.ndarray:
    """The value `implicit` reads per rating: its size is the confidence c, its sign the preference p.

    - "signed" (default): p = 1 above `neutral`, p = 0 below, c = 1 + alpha * |rating - neutral|. A 1-star rating
      is then a confident "no" rather than a watch, so user vectors say what users like, not only what they saw.
    - "confidence": Hu, Koren & Volinsky's p = 1 for every rating, c = 1 + alpha * rating (a watch is a "yes").
    Unrated pairs are p = 0 with c = 1 in both, which is what makes this weighted (not plain) ALS.
    """
    rating = np.asarray(rating, dtype=np.float32)
    if weighting == "signed":
        offset = rating - np.float32(neutral)
        return np.where(offset >= 0, 1 + alpha * offset, -(1 - alpha * offset)).astype(np.float32)
    if weighting == "confidence":
        return (1 + alpha * rating).astype(np.float32)
    raise ValueError(f"weighting={weighting!r} is not one of {WEIGHTINGS}.")


def _coordinates(ratings: pd.DataFrame, weighting: str, alpha: float):
    """(row of each rating, column of each rating, confidence values, sorted user ids, sorted movie ids)."""
    user_ids, rows = _index_ids(ratings["user_id"].to_numpy())
    movie_ids, cols = _index_ids(ratings["movie_id"].to_numpy())
    return rows, cols, confidence_values(ratings["rating"].to_numpy(), weighting, alpha), user_ids, movie_ids


def _csr(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    matrix = sp.csr_matrix((values, (rows, cols)), shape=shape)
    if matrix.nnz != len(values):  # the COO -> CSR conversion sums repeated (user, movie) pairs
        raise ValueError(
            f"ratings has {len(values) - matrix.nnz} repeated (user_id, movie_id) pairs; keep one rating per pair, "
            "e.g. ratings.sort_values('timestamp').drop_duplicates(['user_id', 'movie_id'], keep='last')."
        )
    return matrix


def fit_als(matrix: sp.csr_matrix, dim: int = 64, regularization: float = 0.05, iterations: int = 15,
            seed: int = 0, progress: bool = True, num_threads: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(user factors, item factors) of `implicit`'s conjugate-gradient ALS on a users x items confidence matrix.

    Deterministic for a given seed at any `num_threads`: each row's solve is independent of the others and the
    Gram matrix is one BLAS call. BLAS runs single-threaded, as `implicit` asks, since its threads fight ours.
    """
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):
        # alpha=1: `matrix` already holds the confidences, so implicit must not rescale them.
        model = AlternatingLeastSquares(factors=dim, regularization=regularization, alpha=1.0, iterations=iterations,
                                        random_state=seed, num_threads=num_threads)
        model.fit(matrix, show_progress=progress)
    return np.asarray(model.user_factors, dtype=np.float32), np.asarray(model.item_factors, dtype=np.float32)


def behavioural_embeddings(ratings: pd.DataFrame, dim: int = 64, regularization: float = 0.05, iterations: int = 15,
                           alpha: float = 1.0, seed: int = 0, progress: bool = True, num_threads: int = 0,
                           weighting: str = "signed") -> BehaviouralEmbeddings:
    """User and movie vectors from weighted ALS of the ratings (the paper's behavioural embeddings).

    See `confidence_values` for the weighting. `num_threads=0` uses every core; the vectors are the same at any
    thread count for the same seed. Every user and movie in `ratings` gets a row, in sorted id order.
    """
    _check_ratings(ratings)
    start = time.perf_counter()
    rows, cols, values, user_ids, movie_ids = _coordinates(ratings, weighting, alpha)
    matrix = _csr(rows, cols, values, (len(user_ids), len(movie_ids)))
    del rows, cols, values
    logger.info("Weighted ALS: %d users x %d movies, %d ratings, dim %d", *matrix.shape, matrix.nnz, dim)
    user_vectors, movie_vectors = fit_als(matrix, dim, regularization, iterations, seed, progress, num_threads)
    return BehaviouralEmbeddings(user_ids, user_vectors, movie_ids, movie_vectors, dim, regularization, iterations,
                                 alpha, weighting, seed, seconds=time.perf_counter() - start)


def _ranking_metrics(scores: np.ndarray, seen: sp.csr_matrix, relevant: sp.csr_matrix, k: int):
    """Per-user recall@k and NDCG@k of `scores` (users x movies), never recommending a movie seen in training."""
    scores = np.array(scores, dtype=np.float32)  # a writable copy: the caller's may be a broadcast view
    scores[seen.nonzero()] = -np.inf
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(scores, top, axis=1).argsort(axis=1)[:, ::-1]
    top = np.take_along_axis(top, order, axis=1)
    hits = np.take_along_axis(relevant.toarray() > 0, top, axis=1)
    n_relevant = np.diff(relevant.indptr)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discounts)[np.minimum(n_relevant, k) - 1]
    recall = hits.sum(axis=1) / np.minimum(n_relevant, k)
    ndcg = (hits * discounts).sum(axis=1) / ideal
    return recall, ndcg


def evaluate_behavioural(ratings: pd.DataFrame, test_fraction: float = 0.1, k: int = 10, seed: int = 0,
                         max_users: int = 2000, progress: bool = True, **als_kwargs) -> dict:
    """Do the ALS vectors mean anything? Hold out liked movies, fit on the rest, and rank.

    Protocol: each rating >= 4 is held out with probability `test_fraction` (random, not by time: this asks
    whether the vectors capture taste, not whether they forecast the future). ALS is fitted on everything else
    with `als_kwargs` (as for `behavioural_embeddings`). For up to `max_users` sampled users with a held-out movie,
    all movies they did not rate in training are ranked by user . movie, and by training rating count for the
    popularity baseline. Recall@k is hits / min(k, held-out count), so 1.0 is reachable; NDCG@k uses binary gains.
    Movies rated only in the held-out part have no training signal, which costs both methods alike.
    """
    _check_ratings(ratings)
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction={test_fraction} must lie strictly between 0 and 1.")
    rng = np.random.default_rng(seed)
    held_out = (ratings["rating"].to_numpy() >= LIKED) & (rng.random(len(ratings)) < test_fraction)
    if not held_out.any():
        raise ValueError(f"No rating >= {LIKED} was held out; evaluation needs liked movies (or a larger fraction).")
    als_kwargs.setdefault("seed", seed)
    weighting, alpha = als_kwargs.pop("weighting", "signed"), als_kwargs.pop("alpha", 1.0)
    # One id space for both parts, so held-out rows and columns line up with the training factors.
    rows, cols, values, user_ids, movie_ids = _coordinates(ratings, weighting, alpha)
    shape = (len(user_ids), len(movie_ids))
    train = _csr(rows[~held_out], cols[~held_out], values[~held_out], shape)
    test = _csr(rows[held_out], cols[held_out], np.ones(int(held_out.sum()), np.float32), shape)
    del rows, cols, values
    start = time.perf_counter()
    user_vectors, movie_vectors = fit_als(train, progress=progress, **als_kwargs)
    fit_seconds = time.perf_counter() - start

    candidates = np.flatnonzero(np.diff(test.indptr) > 0)
    users = np.sort(rng.choice(candidates, size=min(max_users, len(candidates)), replace=False))
    popularity = np.bincount(train.indices, minlength=train.shape[1]).astype(np.float32)  # ratings per movie
    results = {"als": ([], []), "popularity": ([], [])}
    for begin in range(0, len(users), 256):  # 256 x 62k float32 scores at a time: 64 MB, not 500 MB
        batch = users[begin:begin + 256]
        for name, scores in (("als", user_vectors[batch] @ movie_vectors.T),
                             ("popularity", np.broadcast_to(popularity, (len(batch), len(popularity))))):
            recall, ndcg = _ranking_metrics(scores, train[batch], test[batch], k)
            results[name][0].append(recall), results[name][1].append(ndcg)
    report = {"k": k, "users_evaluated": int(len(users)), "held_out_ratings": int(held_out.sum()),
              "fit_seconds": round(fit_seconds, 2)}
    for name, (recall, ndcg) in results.items():
        report[f"{name}_recall@{k}"] = float(np.concatenate(recall).mean())
        report[f"{name}_ndcg@{k}"] = float(np.concatenate(ndcg).mean())
    logger.info("Behavioural embeddings, held-out liked movies: %s", report)
    return report


def movie_text(title: str, year: int | None = None, genres=None, tags=None) -> str:
    """The text a movie's semantic vector encodes: "Toy Story (1995). Genres: Animation, Children. Tags: pixar."."""
    text = f"{title} ({year})." if year is not None and not pd.isna(year) else f"{title}."
    genres = [g for g in (genres if genres is not None else []) if g and g != NO_GENRES]
    if genres:
        text += " Genres: " + ", ".join(genres) + "."
    tags = list(tags) if tags is not None else []
    if tags:
        text += " Tags: " + ", ".join(tags) + "."
    return text
