"""MovieLens' behavioural movie vectors written as your own data: a domain whose vectors no text encoder made.

    from modeling_elm.data.movielens.items import write_item_files

    write_item_files("data/movielens-items")   # items.parquet: id, vector (64-d ALS), title, kind, reach

Each movie's vector is its ALS factor, learnt from who rated what, never from text; `kind` ("A comedy and romance film
from the 1990s.") and `reach` ("A widely watched movie, well liked.") are what the bring-your-own recipe's templates
teach it to say. The files go through `data:` like anyone's: nothing here was tuned for this domain.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from ..vector_table import VectorTable
from .writers.grounded import _article, genre_phrase


def _kind(genres, year) -> str:
    phrase = genre_phrase(list(genres))
    era = f" from the {int(year) // 10 * 10}s" if pd.notna(year) else ""
    return f"{_article(phrase).capitalize()} {phrase} film{era}."


def _reach(share_below: float, mean_rating: float) -> str:
    """How widely watched (the movie's rank by ratings among all movies) and how well liked."""
    reach = ("One of the most watched movies" if share_below >= 0.9 else
             "A widely watched movie" if share_below >= 0.5 else "A lesser-known movie")
    liked = ("highly rated" if mean_rating >= 4.0 else "well liked" if mean_rating >= 3.5 else
             "met with mixed feelings" if mean_rating >= 3.0 else "poorly rated")
    return f"{reach}, {liked}."


def write_item_files(output: str | Path, corpus: str | Path | None = None) -> Path:
    """items.parquet in `output` from a MovieLens corpus folder (default: ml-latest-small's, built if needed)."""
    if corpus is None:
        from .build import MovieLensConfig, build_corpus

        corpus = build_corpus(MovieLensConfig(source="ml-latest-small", tasks=["what_kind"], detail="brief",
                                           evaluate_embeddings=False))
    corpus, output = Path(corpus), Path(output)
    movies = pd.read_parquet(corpus / "entities" / "movie.parquet")
    vectors = VectorTable.load(corpus, "movie_behavioural").lookup(movies["id"])
    share_below = movies["n_ratings"].rank(pct=True, method="min").to_numpy()
    items = pd.DataFrame({
        "id": movies["id"], "vector": list(np.asarray(vectors, dtype=np.float32)), "title": movies["label"],
        "kind": [_kind(g, y) for g, y in zip(movies["genres"], movies["year"])],
        "reach": [_reach(s, r) for s, r in zip(share_below, movies["mean_rating"])]})
    output.mkdir(parents=True, exist_ok=True)
    items.to_parquet(output / "items.parquet", index=False)
    return output
