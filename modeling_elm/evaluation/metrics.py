"""The numbers of an ELM evaluation, as pure functions on arrays and strings: semantic consistency, retrieval
rank, behavioural consistency, stated facts, bootstrap intervals and constant-guess baselines."""

import re
from collections import Counter

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from ..data.movielens.writers.grounded import GENRE_WORDS, genre_phrase

# Words that state a genre in generated text; "children's" also as "children", "sci-fi" as science fiction.
_GENRE_PATTERNS = {genre: re.compile(rf"\b{re.escape(word.split(chr(39))[0].lower())}", re.IGNORECASE)
                   for genre, word in GENRE_WORDS.items() if genre != "IMAX"}
_GENRE_PATTERNS["Sci-Fi"] = re.compile(r"\b(science fiction|sci-fi)\b", re.IGNORECASE)
_GENRE_PATTERNS["Animation"] = re.compile(r"\banimat", re.IGNORECASE)
_DECADE = re.compile(r"\b(1[89]\d0|20\d0)s\b")
_YEAR = re.compile(r"\b(1[89]\d\d|20[0-3]\d)\b")


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def semantic_consistency(text_vectors: np.ndarray, source_vectors: np.ndarray) -> np.ndarray:
    """Per row, the cosine between the re-embedded text and the vector it was generated from (the paper's SC)."""
    return np.sum(unit(text_vectors) * unit(source_vectors), axis=-1)


def retrieval_ranks(text_vectors: np.ndarray, candidates: np.ndarray, true_index: np.ndarray) -> np.ndarray:
    """Per row, the 1-based rank of the true entity among all candidates by cosine with the text (ties count
    against the truth, so a constant text cannot look good)."""
    scores = unit(text_vectors) @ unit(candidates).T
    true = scores[np.arange(len(true_index)), true_index]
    return (scores >= true[:, None]).sum(axis=1)


def rank_metrics(ranks: np.ndarray, ks=(1, 10)) -> dict[str, np.ndarray]:
    """Per row, from the rank of the true item (1 = first): hits@k (0 or 1) for each k, and the reciprocal rank."""
    ranks = np.asarray(ranks)
    return {**{f"hits@{k}": (ranks <= k).astype(float) for k in ks}, "mrr": 1.0 / ranks}


def behavioural_consistency(profile_vector: np.ndarray, movie_semantic: np.ndarray, user_vector: np.ndarray,
                            movie_behavioural: np.ndarray) -> float:
    """Spearman correlation between two rankings of the same movies: by the generated profile (dual-encoder
    similarity of profile text and movie text) and by the user's behavioural vector (dot product with the movies'
    behavioural vectors). 1: the profile ranks movies as the user's vector does; -1: reversed."""
    by_profile = unit(movie_semantic) @ unit(profile_vector)
    by_user = np.asarray(movie_behavioural) @ np.asarray(user_vector)
    if np.ptp(by_profile) == 0 or np.ptp(by_user) == 0:
        return 0.0
    return float(spearmanr(by_profile, by_user).statistic)


def stated_genres(text: str) -> set[str]:
    return {genre for genre, pattern in _GENRE_PATTERNS.items() if pattern.search(text)}


def stated_decade(text: str) -> str | None:
    decade = _DECADE.search(text)
    if decade:
        return f"{decade.group(1)}s"
    year = _YEAR.search(text)
    return f"{int(year.group(1)) // 10 * 10}s" if year else None


def fact_scores(text: str, genres: list[str], year: int | None) -> dict:
    """Genre precision / recall of what the text states against the entity's genres, and whether its decade is
    right (None when the text names no decade or year)."""
    true = {g for g in genres if g in _GENRE_PATTERNS}
    said = stated_genres(text)
    decade = stated_decade(text)
    return {
        "genre_precision": len(said & true) / len(said) if said else 0.0,
        "genre_recall": len(said & true) / len(true) if true else 0.0,
        "genre_f1": 2 * len(said & true) / (len(said) + len(true)) if said or true else 0.0,
        "decade_accuracy": float(decade == f"{year // 10 * 10}s") if year else 0.0,
    }


def taste_scores(text: str, favourite_genres: list[str], favourite_decades: list[str]) -> dict:
    """What a user profile says against the user's own favourites: genre precision / recall / F1 of the genres it
    names against the user's favourite genres, and whether the first decade it names is the user's favourite. A user
    with no favourite genre (eclectic tastes) or decade scores NaN there: nothing to be right about, left out of
    the means."""
    scores = fact_scores(text, favourite_genres, None)
    if not favourite_genres:
        scores = {key: float("nan") for key in scores}
    decade = stated_decade(text)
    scores["decade_accuracy"] = float(decade == favourite_decades[0]) if favourite_decades else float("nan")
    return scores


def constant_taste(favourite_genres: list[list[str]], favourite_decades: list[list[str]]) -> dict:
    """The best single profile without reading any user vector: the genres most often among users' favourites (as
    many as a user typically has) and the decade most often their first favourite."""
    counts = Counter(g for gs in favourite_genres for g in gs if g in _GENRE_PATTERNS)
    typical = max(1, int(np.median([len(gs) for gs in favourite_genres]))) if favourite_genres else 1
    genres = [g for g, _ in counts.most_common(typical)]
    decades = Counter(ds[0] for ds in favourite_decades if len(ds))
    decade = decades.most_common(1)[0][0] if decades else ""
    return {"genres": genres, "decade": decade, "text": f"This user loves {genre_phrase(genres)} movies"
            + (f", especially movies from the {decade}." if decade else ".")}


# Words that may repeat in a one-sentence answer without it reading as a loop.
_FUNCTION_WORDS = frozenset(
    "a an the and or but of to in on at by for with from as is are was were be it its this that who whom which "
    "film films movie movies".split())
_WORD = re.compile(r"[a-z][a-z'-]+")
# "Title (1994)": how the targets state a movie's title; an answer stating one about a held-out movie states a fact.
_TITLE_WITH_YEAR = re.compile(r"([A-Z0-9][^.!?:;()\n]{0,80}?)\s*\((1[89]\d\d|20\d\d)\)")


def repeats_content_word(text: str) -> bool:
    """Whether a content word occurs twice in the text ("An animated, animated comedy"): the loop a small model falls
    into when it cannot read what comes next. Meant for one-sentence answers; long ones repeat words by nature."""
    words = [w for w in _WORD.findall(text.lower()) if w not in _FUNCTION_WORDS]
    return len(words) != len(set(words))


def invents_title(text: str, true_title: str) -> bool:
    """Whether the text states a "Title (year)" that is not the movie's own: a made-up title stated as fact."""
    truth = _normalise_title(true_title)
    return any(_normalise_title(found) not in (truth, "") and truth not in _normalise_title(found)
               for found, _ in _TITLE_WITH_YEAR.findall(text))


def _normalise_title(title: str) -> str:
    # MovieLens writes "Matrix, The"; answers write "The Matrix".
    title = re.sub(r",\s*(the|a|an)$", "", title.strip().lower())
    title = re.sub(r"^(the|a|an)\s+", "", title)
    return re.sub(r"[^a-z0-9]+", " ", title).strip()


def constant_guesses(train_genres: list[list[str]], train_years: list[int | None], train_texts: list[str]) -> dict:
    """The best single answer a model could give without reading any vector: the most common decade, the most
    common genres (as many as a movie typically has) and the most common target text."""
    decades = Counter(f"{y // 10 * 10}s" for y in train_years if y)
    genre_counts = Counter(g for gs in train_genres for g in gs if g in _GENRE_PATTERNS)
    typical = max(1, int(np.median([len(gs) for gs in train_genres])))
    genres = [g for g, _ in genre_counts.most_common(typical)]
    words = [GENRE_WORDS[g] for g in genres]
    decade = decades.most_common(1)[0][0] if decades else ""
    return {"decade": decade, "genres": genres, "genre_text": f"{', '.join(words)} from the {decade}",
            "text": Counter(train_texts).most_common(1)[0][0] if train_texts else ""}


def bootstrap_ci(values, n_resamples: int = 2000, level: float = 0.95, seed: int = 0) -> dict:
    """Mean with a percentile bootstrap interval. For a paired difference, pass the per-row differences."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return {"mean": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0}
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n_resamples, len(values)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return {"mean": float(values.mean()), "low": float(np.percentile(means, tail)),
            "high": float(np.percentile(means, 100 - tail)), "n": int(len(values))}


def derangement(n: int, seed: int = 0) -> np.ndarray:
    """A permutation with no fixed point: every row gets another row's vector (the shuffled control)."""
    if n < 2:
        raise ValueError("The shuffled-vector control needs at least 2 rows.")
    rng = np.random.default_rng(seed)
    return (np.arange(n) + rng.integers(1, n)) % n


def summarise(values: dict[str, list], seed: int) -> dict:
    """{metric: mean with its 95% bootstrap interval} for per-example values."""
    return {name: bootstrap_ci(v, seed=seed) for name, v in values.items()}


def year_of(value) -> int | None:
    """A table's year cell as an int; None for a missing year."""
    return None if value is None or pd.isna(value) else int(value)
