"""Hypothetical vectors, the paper's two kinds: interpolations between two held-out movies, and held-out movies moved
along a genre's concept direction (CAV). The model describes each; the description is re-embedded and scored."""

import numpy as np

from ..data.explore import mix
from .metrics import bootstrap_ci, fact_scores, semantic_consistency, stated_decade, stated_genres

ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
STRENGTHS = (0.0, 0.5, 1.0, 2.0, 3.0)  # in the concept's own units: 1 = the difference of its class means


def learnt_prompts(ev) -> dict[str, str]:
    """The one-movie prompts of the tasks the model learnt (all the corpus' for a model that records none)."""
    from ..checkpoints import trained_prompts

    learnt = trained_prompts(getattr(ev, "marker", None), ev.corpus.prompts)
    single = {task: prompt for task, prompt in ev.corpus.single_prompts("movie").items() if task in learnt}
    return single or ev.corpus.single_prompts("movie")


def describe_prompt(ev) -> str:
    """The first one-movie prompt the model learnt: what a hypothetical movie is asked by default."""
    return next(iter(learnt_prompts(ev).values()))


def interpolation_prompt(ev) -> tuple[str, str]:
    """(task, prompt) the interpolation curve asks: the paper's interpolation task when the model learnt it (its
    placeholder reads the blend), else the default description."""
    prompts = learnt_prompts(ev)
    if "interpolation" in prompts:
        return "interpolation", prompts["interpolation"]
    return next(iter(prompts.items()))


def concept_prompts(ev) -> dict[str, str]:
    """The tasks concept moves are scored on: the default description, and a review when the model learnt one (does
    "positive review" of a movie moved toward Comedy talk about comedy?)."""
    prompts = learnt_prompts(ev)
    chosen = dict([next(iter(prompts.items()))])
    review = next((task for task in ("positive_review", "neutral_review", "negative_review") if task in prompts), None)
    if review:
        chosen[review] = prompts[review]
    return chosen


def _movie_space_is_semantic(ev) -> bool:
    return ev.corpus.manifest["config"].get("movie_space", "semantic") == "semantic"


def _vectors(ev):
    return ev.scorer.semantic if _movie_space_is_semantic(ev) else ev.scorer.behavioural


def _genres_and_year(ev, index: int) -> tuple[list[str], int | None]:
    from .metrics import year_of

    movie = ev.scorer.movies.iloc[index]
    return list(movie["genres"]), year_of(movie["year"])


def interpolation_curve(ev) -> dict:
    """SC of the description of (1 - a) * A + a * B to A and to B, for a from 0 to 1: the two should cross; and the
    genre F1 of what it states against A's genres and against B's, which should trade places the same way."""
    test = np.flatnonzero(ev.scorer.movies["split"].to_numpy() == "test")
    rng = np.random.default_rng(ev.args.seed + 7)
    pairs = (rng.choice(test, size=(ev.args.curve_examples, 2), replace=False)
             if len(test) >= 2 * ev.args.curve_examples else rng.choice(test, size=(ev.args.curve_examples, 2)))
    vectors = _vectors(ev)
    task, prompt = interpolation_prompt(ev)
    curve = {"task": task, "alpha": list(ALPHAS), "sc_to_a": [], "sc_to_b": [], "genre_f1_to_a": [],
             "genre_f1_to_b": []}
    facts = {i: _genres_and_year(ev, i) for i in set(pairs.ravel().tolist())}
    for alpha in ALPHAS:
        mixed = [{"movie": mix(vectors[a], vectors[b], alpha)[None]} for a, b in pairs]
        texts = ev.generate(ev.model, [prompt] * len(pairs), mixed, f"interpolation a={alpha}")
        embedded = ev.embed(texts)
        curve["sc_to_a"].append(bootstrap_ci(semantic_consistency(embedded, ev.scorer.semantic[pairs[:, 0]]),
                                             seed=ev.args.seed))
        curve["sc_to_b"].append(bootstrap_ci(semantic_consistency(embedded, ev.scorer.semantic[pairs[:, 1]]),
                                             seed=ev.args.seed))
        for side, column in (("a", 0), ("b", 1)):
            f1 = [fact_scores(t, facts[int(i)][0], None)["genre_f1"] for t, i in zip(texts, pairs[:, column])]
            curve[f"genre_f1_to_{side}"].append(bootstrap_ci(f1, seed=ev.args.seed))
        if alpha == 0.5:
            curve["example_midpoint"] = {"a": str(ev.scorer.movies.iloc[pairs[0, 0]]["title"]),
                                         "b": str(ev.scorer.movies.iloc[pairs[0, 1]]["title"]), "text": texts[0]}
    return curve


def concept_curves(ev, top: int | None = 3, concepts: dict | None = None, prompt: str | None = None) -> dict:
    """For the `top` most accurate genre directions (`concepts`, default the corpus'; None: all of them): held-out
    movies without the genre, moved by s of the concept's steps (the difference of its class means), asked `prompt`
    (default: the first one-movie task the model learnt). The concept's classifier score of the re-embedded answer
    should rise with s, the answer should come to name the genre, and it should keep the movie's decade (a move along
    a genre is not a move in time)."""
    prompt = prompt or describe_prompt(ev)
    from ..data.concepts import concept_score, load_concepts, move_along

    concepts = concepts or ev.corpus.concepts("movie")  # fitted in the vectors the model reads
    text_concepts = load_concepts(ev.corpus.folder / "concepts" / "movie_semantic")  # scores the re-embedded text
    # IMAX is a screen format, not something a description can state
    chosen = sorted((c for c in concepts.values() if c.name in text_concepts and c.name != "IMAX"),
                    key=lambda c: -c.accuracy)[:top]  # [:None] keeps all
    movies, vectors = ev.scorer.movies, _vectors(ev)
    test = np.flatnonzero(movies["split"].to_numpy() == "test")
    out = {"strength": list(STRENGTHS), "concepts": {}}
    for concept in chosen:
        genre = concept.name.split(":", 1)[-1]
        without = [i for i in test if genre not in list(movies.iloc[i]["genres"])][: ev.args.curve_examples]
        if not without:
            continue
        scores, named, kept, both, examples = [], [], [], [], []
        decades = [_genres_and_year(ev, i)[1] for i in without]
        for strength in STRENGTHS:
            moved = [{"movie": move_along(vectors[i], concept, strength)[None]} for i in without]
            texts = ev.generate(ev.model, [prompt] * len(without), moved, f"{concept.name} s={strength}")
            scores.append(bootstrap_ci(concept_score(ev.embed(texts), text_concepts[concept.name], probability=True),
                                       seed=ev.args.seed))
            # the plainest reading of a move: does the answer now say the genre?
            names = [float(genre in stated_genres(t)) for t in texts]
            keeps = [float(year is not None and stated_decade(t) == f"{year // 10 * 10}s")
                     for t, year in zip(texts, decades)]
            named.append(bootstrap_ci(names, seed=ev.args.seed))
            kept.append(bootstrap_ci(keeps, seed=ev.args.seed))
            both.append(bootstrap_ci([n * k for n, k in zip(names, keeps)], seed=ev.args.seed))
            examples.append(texts[0])
        out["concepts"][concept.name] = {"accuracy": concept.accuracy, "step_size": concept.step_size,
                                         "score": scores, "names_genre": named, "keeps_decade": kept,
                                         "names_genre_keeps_decade": both,
                                         "n": len(without), "example": {"movie": str(movies.iloc[without[0]]["title"]),
                                                                         "texts": examples}}
    return out
