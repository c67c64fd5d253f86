"""Entity tables of the MovieLens corpus: who is in it, their vectors, their facts, their split, their concepts."""

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import facts as F
from ..concepts import concept_directions, save_concepts
from .labels import genre_labels
from ..embeddings import load_encoder, semantic_embeddings
from .behavioural import behavioural_embeddings, evaluate_behavioural, movie_text
from .writers.grounded import MovieFacts, UserFacts
from .release import load_movielens
from ..corpus import ENTITIES_DIR
from ..vector_table import VECTORS_DIR, VectorTable

logger = logging.getLogger(__name__)
VECTOR_COLUMNS = ("semantic", "behavioural")  # vectors/movie_<kind>.parquet, vectors/user_behavioural.parquet


@dataclass
class EntityTables:
    release: str
    movies: pd.DataFrame  # one row per kept movie, with a "split" column
    users: pd.DataFrame  # one row per kept user, with a "split" column
    movie_vectors: np.ndarray  # what the `movie` placeholder carries (semantic or behavioural), rows = movies
    user_vectors: np.ndarray  # behavioural, rows = users
    movie_facts: list[MovieFacts]
    user_facts: list[UserFacts]
    neighbours: np.ndarray  # (n_movies, 3): nearest movies of the same split in the movie space
    quality: dict


def _timed(timings: dict, key: str, start: float) -> float:
    now = time.perf_counter()
    timings[key] = round(now - start, 1)
    return now


def _select(config, ratings: pd.DataFrame) -> pd.DataFrame:
    """Keep movies and users with enough ratings (and the most active ones when capped)."""
    movie_counts = ratings["movie_id"].value_counts()
    movies = movie_counts[movie_counts >= config.min_movie_ratings]
    if config.max_movies:
        movies = movies.head(config.max_movies)
    ratings = ratings[ratings["movie_id"].isin(movies.index)]
    user_counts = ratings["user_id"].value_counts()
    users = user_counts[user_counts >= config.min_user_ratings]
    if config.max_users:
        users = users.head(config.max_users)
    if movies.empty or users.empty:
        raise ValueError(
            f"No movie has >= {config.min_movie_ratings} ratings or no user has >= {config.min_user_ratings}; "
            "lower min_movie_ratings / min_user_ratings."
        )
    return ratings[ratings["user_id"].isin(users.index)]


def _split(n: int, n_test: int, rng: np.random.Generator) -> np.ndarray:
    split = np.full(n, "train", dtype=object)
    split[rng.choice(n, size=n_test, replace=False)] = "test"
    return split


def _neighbours_within_split(vectors: np.ndarray, split: np.ndarray) -> np.ndarray:
    """Nearest movies of the same split, so a training row never mentions a held-out movie."""
    result = np.empty((len(vectors), 3), dtype=np.int64)
    for name in ("train", "test"):
        members = np.flatnonzero(split == name)
        if len(members) <= 3:
            raise ValueError(f"The {name} split has {len(members)} movies; two-movie tasks need at least 4.")
        result[members] = members[F.nearest_neighbours(vectors[members], np.arange(len(members)), k=3)]
    return result


def build_entity_tables(config, folder: Path, timings: dict) -> EntityTables:
    """MovieLens -> the corpus' entity tables (movies, users: ids, facts, splits), their vectors (semantic and
    behavioural, in vectors/) and concept directions, written to `folder`; `timings` gets each step's seconds. One
    function on purpose: it is the build's sequence of timed steps, each a call, read top to bottom."""
    start = time.perf_counter()
    data = load_movielens(config.source)
    start = _timed(timings, "load_s", start)
    ratings = _select(config, data.ratings)
    movies = data.movies[data.movies["movie_id"].isin(ratings["movie_id"].unique())]
    movies = movies.sort_values("movie_id").reset_index(drop=True)
    user_ids = np.sort(ratings["user_id"].unique())
    logger.info("%s: %d ratings of %d movies by %d users kept", data.name, len(ratings), len(movies), len(user_ids))

    behaviour = behavioural_embeddings(
        ratings, dim=config.als_dim, regularization=config.als_regularization,
        iterations=config.als_iterations, seed=config.corpus_seed,
    )
    behaviour_movies = _align(behaviour.movie_ids, behaviour.movie_vectors, movies["movie_id"].to_numpy())
    user_vectors = _align(behaviour.user_ids, behaviour.user_vectors, user_ids)
    start = _timed(timings, "behavioural_s", start)
    quality = {}
    if config.evaluate_embeddings:
        quality = evaluate_behavioural(
            ratings, dim=config.als_dim, regularization=config.als_regularization,
            iterations=config.als_iterations, seed=config.corpus_seed,
        )
        start = _timed(timings, "behavioural_quality_s", start)

    tags = F.movie_tags(movies["movie_id"].to_numpy(), data.tags, data.genome_scores, data.genome_tags)
    texts = [movie_text(t, None if pd.isna(y) else int(y), g, tg)
             for t, y, g, tg in zip(movies["title"], movies["year"], movies["genres"], tags)]
    semantic = semantic_embeddings(texts, encoder=load_encoder(config.encoder))
    start = _timed(timings, "semantic_s", start)

    rng = np.random.default_rng(config.corpus_seed)
    n_test_movies = min(config.max_test_movies, max(1, round(config.test_fraction * len(movies))))
    movie_split = _split(len(movies), n_test_movies, rng)
    user_split = _split(len(user_ids), max(1, round(config.test_fraction * len(user_ids))), rng)
    movie_vectors = semantic if config.movie_space == "semantic" else behaviour_movies
    neighbours = _neighbours_within_split(movie_vectors, movie_split)

    favourites = F.user_favourites(ratings, movies, user_ids)
    stats = F.movie_statistics(ratings, movies, favourites, user_ids)
    movie_facts = F.build_movie_facts(movies, stats, tags, neighbours)
    user_facts = F.build_user_facts(user_ids, favourites)
    start = _timed(timings, "facts_s", start)

    movies = movies.assign(
        text=texts, tags=tags, split=movie_split, n_ratings=stats["n_ratings"], mean_rating=stats["mean_rating"],
    )
    rated = (ratings.groupby("user_id").agg(rated_movie_ids=("movie_id", list), ratings=("rating", list))
             .reindex(user_ids))
    users = pd.DataFrame({
        "user_id": user_ids, "split": user_split,
        "n_ratings": favourites["n_ratings"], "mean_rating": favourites["mean_rating"],
        "favourite_genres": favourites["favourite_genres"], "favourite_decades": favourites["favourite_decades"],
        "rated_movie_ids": rated["rated_movie_ids"].to_numpy(), "ratings": rated["ratings"].to_numpy(),
    })
    save_entities(folder, movies, users)
    save_vectors_and_concepts(folder, movies, movie_split, semantic, behaviour_movies, user_ids, user_vectors,
                              config.corpus_seed)
    _timed(timings, "concepts_s", start)
    return EntityTables(data.name, movies, users, movie_vectors, user_vectors, movie_facts, user_facts, neighbours,
                        quality)


def save_vectors_and_concepts(folder: Path, movies: pd.DataFrame, movie_split: np.ndarray, semantic: np.ndarray,
                              behavioural: np.ndarray, user_ids: np.ndarray, user_vectors: np.ndarray,
                              seed: int) -> None:
    """Every vector once, in vectors/ (the entity tables and the task rows name ids), and the genre concept
    directions of both movie tables (concepts/<vector table>, as `Corpus.concepts` finds them), fitted on
    training movies only: evaluation moves held-out movies along them."""
    movie_keys = movies["movie_id"].astype(str).to_numpy()
    for name, ids, vectors in ((f"movie_{VECTOR_COLUMNS[0]}", movie_keys, semantic),
                               (f"movie_{VECTOR_COLUMNS[1]}", movie_keys, behavioural),
                               (f"user_{VECTOR_COLUMNS[1]}", user_ids.astype(str), user_vectors)):
        VectorTable(ids, vectors, name).save(folder)
    train = movie_split == "train"
    labels = genre_labels(movies[train], movies["movie_id"].to_numpy()[train])
    for space, vectors in (("semantic", semantic), ("behavioural", behavioural)):
        concepts = concept_directions(vectors[train], labels, space=space, seed=seed)
        save_concepts(concepts, folder / "concepts" / f"movie_{space}")


def _align(ids: np.ndarray, vectors: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    rows = pd.Index(ids).get_indexer(wanted)
    if (rows < 0).any():
        raise ValueError(f"{int((rows < 0).sum())} entities have no vector; the embedding input lost them.")
    return np.ascontiguousarray(vectors[rows], dtype=np.float32)


def save_entities(folder: Path, movies: pd.DataFrame, users: pd.DataFrame) -> None:
    """entities/movie.parquet and entities/user.parquet, as every corpus writes its entities: `id` (the string the
    vector tables and rows use) and `label` (how a person names it) first, then MovieLens' own columns."""
    (folder / ENTITIES_DIR).mkdir(parents=True, exist_ok=True)
    labels = [f"{t} ({int(y)})" if pd.notna(y) else str(t) for t, y in zip(movies["title"], movies["year"])]
    for kind, table, key, label in (("movie", movies, "movie_id", labels),
                                    ("user", users, "user_id", [f"user {u}" for u in users["user_id"]])):
        table.insert(0, "label", label)
        table.insert(0, "id", table[key].astype(str))
        table.to_parquet(folder / ENTITIES_DIR / f"{kind}.parquet", index=False)


def movielens_tables(corpus) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The corpus' movies and users with their vectors joined back from vectors/ as columns `semantic` /
    `behavioural`: what the MovieLens metrics compare answers with."""
    movies, users = corpus.entities["movie"].copy(), corpus.entities["user"].copy()
    for table, kind in ((movies, "movie"), (users, "user")):
        for column in VECTOR_COLUMNS:
            if (corpus.folder / VECTORS_DIR / f"{kind}_{column}.parquet").is_file():
                table[column] = list(VectorTable.load(corpus.folder, f"{kind}_{column}").lookup(table["id"]))
    return movies, users
