"""Facts about movies and users, computed from the ratings at MovieLens-25M scale with sparse matrix products.

These feed the grounded writer (every statement true of the entity), the teacher's prompts, and the evaluation's
fact checks. Everything here is vectorised: 25M ratings take seconds, not a Python loop per user.
"""

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .release import LIKED
from .writers.grounded import MovieFacts, UserFacts



def genre_matrix(movies: pd.DataFrame) -> tuple[sp.csr_matrix, list[str]]:
    """Movies x genres multi-hot matrix (rows in `movies` order) and the genre names."""
    names = sorted({g for genres in movies["genres"] for g in genres})
    column = {g: i for i, g in enumerate(names)}
    rows = np.repeat(np.arange(len(movies)), [len(g) for g in movies["genres"]])
    cols = np.fromiter((column[g] for genres in movies["genres"] for g in genres), dtype=np.int64, count=len(rows))
    matrix = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(movies), len(names)))
    return matrix, names


def _rating_matrix(ratings: pd.DataFrame, user_index: pd.Index, movie_index: pd.Index, liked_only: bool):
    chosen = ratings[ratings["rating"] >= LIKED] if liked_only else ratings
    rows = user_index.get_indexer(chosen["user_id"])
    cols = movie_index.get_indexer(chosen["movie_id"])
    keep = (rows >= 0) & (cols >= 0)
    values = np.ones(int(keep.sum()), dtype=np.float32)
    return sp.csr_matrix((values, (rows[keep], cols[keep])), shape=(len(user_index), len(movie_index)))


def movie_tags(movie_ids: np.ndarray, tags: pd.DataFrame | None, genome_scores=None, genome_tags=None, limit=5):
    """The most telling tags per movie: the tag genome's most relevant when the release has it, else the tags users
    applied most often. Returns a list of tag lists in `movie_ids` order."""
    found: dict[int, list[str]] = {}
    if genome_scores is not None and genome_tags is not None and len(genome_scores):
        top = genome_scores[genome_scores["relevance"] >= 0.5].sort_values(
            ["movie_id", "relevance"], ascending=[True, False])
        top = top.groupby("movie_id").head(limit).merge(genome_tags, on="tag_id")
        top = top.sort_values(["movie_id", "relevance"], ascending=[True, False])
        found = top.groupby("movie_id")["tag"].agg(list).to_dict()
    elif tags is not None and len(tags):
        cleaned = tags.assign(tag=tags["tag"].astype(str).str.strip().str.lower())
        cleaned = cleaned[cleaned["tag"].str.len().between(2, 40)]
        counts = cleaned.groupby(["movie_id", "tag"]).size().rename("n").reset_index()
        counts = (counts.sort_values(["movie_id", "n", "tag"], ascending=[True, False, True])
                  .groupby("movie_id").head(limit))
        found = counts.groupby("movie_id")["tag"].agg(list).to_dict()
    return [found.get(int(m), []) for m in movie_ids]


def user_favourites(ratings: pd.DataFrame, movies: pd.DataFrame, user_ids: np.ndarray) -> dict:
    """Per user (in `user_ids` order): genres ranked by lift over the catalogue, least favourite genre,
    favourite decades, loved titles, rating statistics and style."""
    user_index, movie_index = pd.Index(user_ids), pd.Index(movies["movie_id"])
    liked = _rating_matrix(ratings, user_index, movie_index, liked_only=True)
    rated = _rating_matrix(ratings, user_index, movie_index, liked_only=False)
    genres, genre_names = genre_matrix(movies)
    decade_codes = (movies["year"].astype("Float64") // 10 * 10).fillna(-1).astype(int).to_numpy()
    decade_names = sorted(d for d in set(decade_codes) if d > 0)
    decade_matrix = sp.csr_matrix(
        (np.ones(int((decade_codes > 0).sum()), dtype=np.float32),
         (np.flatnonzero(decade_codes > 0), [decade_names.index(d) for d in decade_codes[decade_codes > 0]])),
        shape=(len(movies), len(decade_names)),
    )
    # Lift: how much more often the user likes a genre than the catalogue's likes would predict. Raw counts would
    # call everyone a drama fan, because most movies are dramas.
    liked_genre = np.asarray((liked @ genres).todense())
    base = liked_genre.sum(axis=0) / max(liked_genre.sum(), 1)
    share = liked_genre / np.maximum(liked_genre.sum(axis=1, keepdims=True), 1)
    # A favourite also needs weight in the user's own likes: three liked film noirs out of 200 likes is a
    # curiosity, not a taste, however rare film noir is in the catalogue.
    lift = np.where((liked_genre >= 3) & (share >= 0.1), share / np.maximum(base, 1e-9), 0.0)
    rated_genre = np.asarray((rated @ genres).todense())
    liked_ratio = liked_genre / np.maximum(rated_genre, 1)
    least = np.where(rated_genre >= 3, liked_ratio, np.inf).argmin(axis=1)
    liked_decade = np.asarray((liked @ decade_matrix).todense())

    stats = ratings.groupby("user_id")["rating"].agg(["count", "mean"]).reindex(user_ids)
    z = (stats["mean"] - stats["mean"].mean()) / max(stats["mean"].std(), 1e-9)
    style = np.where(z > 0.5, "generous", np.where(z < -0.5, "demanding", "balanced"))
    top = ratings[ratings["user_id"].isin(user_index)].sort_values(
        ["user_id", "rating", "timestamp"], ascending=[True, False, False]
    ).groupby("user_id").head(3)
    titles = movies.set_index("movie_id")["title"]
    loved = top.assign(title=titles.reindex(top["movie_id"]).to_numpy()).groupby("user_id")["title"].agg(list)

    favourite_genres, favourite_decades, least_favourite = [], [], []
    for row in range(len(user_ids)):
        order = np.argsort(-lift[row], kind="stable")
        favourite_genres.append([genre_names[i] for i in order[:3] if lift[row, i] > 1.0])
        decades = np.argsort(-liked_decade[row], kind="stable")
        favourite_decades.append([f"{decade_names[i]}s" for i in decades[:2] if liked_decade[row, i] > 0])
        has_least = np.isfinite(np.where(rated_genre[row] >= 3, liked_ratio[row], np.inf)[least[row]])
        least_favourite.append(
            genre_names[least[row]] if has_least and genre_names[least[row]] not in favourite_genres[-1] else None
        )
    return {
        "favourite_genres": favourite_genres,
        "least_favourite_genre": least_favourite,
        "favourite_decades": favourite_decades,
        "loved_movies": [loved.get(u, []) for u in user_ids],
        "n_ratings": stats["count"].fillna(0).astype(int).to_numpy(),
        "mean_rating": stats["mean"].fillna(0.0).to_numpy(),
        "rating_style": style,
        "favourite_genre_index": np.where(lift.max(axis=1) > 1.0, lift.argmax(axis=1), -1),
        "genre_names": genre_names,
    }


def movie_statistics(ratings: pd.DataFrame, movies: pd.DataFrame, favourites: dict, user_ids: np.ndarray) -> dict:
    """Per movie (in `movies` order): rating count and mean, popularity percentile, and the favourite genre of the
    users who liked it most often (its 'fans')."""
    stats = ratings.groupby("movie_id")["rating"].agg(["count", "mean"]).reindex(movies["movie_id"])
    counts = stats["count"].fillna(0).to_numpy()
    popularity = pd.Series(counts).rank(pct=True).to_numpy()
    user_index, movie_index = pd.Index(user_ids), pd.Index(movies["movie_id"])
    liked = _rating_matrix(ratings, user_index, movie_index, liked_only=True)
    fav = favourites["favourite_genre_index"]
    has = fav >= 0
    fan_onehot = sp.csr_matrix(
        (np.ones(int(has.sum()), dtype=np.float32), (np.flatnonzero(has), fav[has])),
        shape=(len(user_ids), len(favourites["genre_names"])),
    )
    fan_counts = np.asarray((liked.T @ fan_onehot).todense())
    fan_genre = [favourites["genre_names"][i] if fan_counts[row, i] >= 2 else None
                 for row, i in enumerate(fan_counts.argmax(axis=1))]
    return {"n_ratings": counts.astype(int), "mean_rating": stats["mean"].to_numpy(), "popularity": popularity,
            "fan_genre": fan_genre}


def nearest_neighbours(vectors: np.ndarray, candidates: np.ndarray, k: int = 3, chunk: int = 2048) -> np.ndarray:
    """For every row of `vectors`, the indices of its k most cosine-similar rows among `candidates` (itself
    excluded), in chunks so that 62k x 62k never sits in memory at once."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    pool = unit[candidates]
    result = np.empty((len(vectors), k), dtype=np.int64)
    for start in range(0, len(vectors), chunk):
        scores = unit[start:start + chunk] @ pool.T
        own = np.flatnonzero(np.isin(candidates, np.arange(start, min(start + chunk, len(vectors)))))
        scores[candidates[own] - start, own] = -np.inf
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.take_along_axis(scores, top, axis=1).argsort(axis=1)[:, ::-1]
        result[start:start + chunk] = candidates[np.take_along_axis(top, order, axis=1)]
    return result


def build_movie_facts(movies: pd.DataFrame, stats: dict, tags: list[list[str]],
                      neighbours: np.ndarray) -> list[MovieFacts]:
    titles = movies["title"].tolist()
    years = [None if pd.isna(y) else int(y) for y in movies["year"]]
    facts = []
    for row, (movie_id, genres) in enumerate(zip(movies["movie_id"], movies["genres"])):
        mean = stats["mean_rating"][row]
        facts.append(MovieFacts(
            id=str(movie_id), title=titles[row], year=years[row], genres=list(genres), tags=tags[row],
            mean_rating=None if np.isnan(mean) else float(mean), n_ratings=int(stats["n_ratings"][row]),
            popularity=float(stats["popularity"][row]), fan_genre=stats["fan_genre"][row],
            neighbours=[titles[i] for i in neighbours[row]],
        ))
    return facts


def build_user_facts(user_ids: np.ndarray, favourites: dict) -> list[UserFacts]:
    return [
        UserFacts(
            id=str(user_id), n_ratings=int(favourites["n_ratings"][row]),
            mean_rating=float(favourites["mean_rating"][row]),
            favourite_genres=favourites["favourite_genres"][row],
            least_favourite_genre=favourites["least_favourite_genre"][row],
            favourite_decades=favourites["favourite_decades"][row], loved_movies=favourites["loved_movies"][row],
            rating_style=str(favourites["rating_style"][row]),
        )
        for row, user_id in enumerate(user_ids)
    ]
