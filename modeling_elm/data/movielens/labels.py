"""Which MovieLens movies have a concept: genres and frequent tags as boolean labels, for `concept_directions`.

    from modeling_elm.data.movielens.labels import genre_labels, tag_labels

    genre_labels(movies, movie_ids)          # {"Comedy": bool array aligned with movie_ids, ...}
"""

import numpy as np
import pandas as pd

from .release import NO_GENRES


def genre_labels(movies: pd.DataFrame, movie_ids: np.ndarray) -> dict[str, np.ndarray]:
    """{genre: bool array aligned with `movie_ids`} from `movies` (movie_id, genres as a list per row).

    Movies absent from `movies` have no genre; "(no genres listed)" is not a concept.
    """
    for column in ("movie_id", "genres"):
        if column not in movies.columns:
            raise ValueError(f"movies lacks the column {column!r}; genre_labels needs movie_id and genres.")
    rows = pd.Index(np.asarray(movie_ids)).get_indexer(movies["movie_id"].to_numpy())
    labels: dict[str, np.ndarray] = {}
    for row, genres in zip(rows, movies["genres"]):
        if row < 0 or genres is None:
            continue
        for genre in genres:
            if genre and genre != NO_GENRES:
                labels.setdefault(genre, np.zeros(len(movie_ids), dtype=bool))[row] = True
    return dict(sorted(labels.items()))


def tag_labels(movie_ids: np.ndarray, tags: pd.DataFrame | None = None, genome_scores: pd.DataFrame | None = None,
               genome_tags: pd.DataFrame | None = None, relevance: float = 0.5, min_users: int = 2,
               max_tags: int = 100) -> dict[str, np.ndarray]:
    """{tag: bool array aligned with `movie_ids`} for up to `max_tags` frequent tags.

    With the tag genome (genome_scores: movie_id, tag_id, relevance; genome_tags: tag_id, tag) a movie has a tag
    when its relevance is >= `relevance`. Otherwise, from user tags (user_id, movie_id, tag), a movie has a tag
    when at least `min_users` users applied it (case and spaces ignored), so one user's private labels do not count.
    Either way the tags kept are those true of the most movies.
    """
    movie_ids = np.asarray(movie_ids)
    if genome_scores is not None and genome_tags is not None and len(genome_scores):
        strong = genome_scores[genome_scores["relevance"] >= relevance]
        names = genome_tags.set_index("tag_id")["tag"]
        pairs = pd.DataFrame({"movie_id": strong["movie_id"].to_numpy(),
                              "tag": names.reindex(strong["tag_id"].to_numpy()).to_numpy()}).dropna()
    elif tags is not None and len(tags):
        clean = tags.assign(tag=tags["tag"].astype(str).str.strip().str.lower())
        clean = clean[clean["tag"] != ""]
        users = clean.groupby(["movie_id", "tag"])["user_id"].nunique()
        pairs = users[users >= min_users].reset_index()[["movie_id", "tag"]]
    else:
        raise ValueError("tag_labels needs either tags (user_id, movie_id, tag) or genome_scores with genome_tags.")
    rows = pd.Index(movie_ids).get_indexer(pairs["movie_id"].to_numpy())
    pairs = pairs.assign(row=rows)[rows >= 0].drop_duplicates(["row", "tag"])
    frequent = pairs["tag"].value_counts().sort_index().sort_values(ascending=False, kind="stable").index[:max_tags]
    labels = {}
    for tag in sorted(frequent):
        label = np.zeros(len(movie_ids), dtype=bool)
        label[pairs.loc[pairs["tag"] == tag, "row"].to_numpy()] = True
        labels[tag] = label
    return labels
