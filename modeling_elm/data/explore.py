"""Exploring an embedding space with a trained ELM: find an entity by what a person types, take its vector, mix two,
move one along a concept. What `describe` and the Space both do, one way, with the same matching and the same errors
(ValueErrors a command prints as one line and the Space shows as a message).

    corpus = load_corpus(trained_corpus("checkpoints/elm-quick"))
    row, label, others = pick(corpus, corpus.anchor, "heat")
    moved = move(corpus.concepts(corpus.anchor), row_vector(corpus, corpus.anchor, row), "Comedy", 1.0)
"""

import re

import numpy as np

# MovieLens' own title form puts a leading article last, before the year: "Matrix, The (1999)".
_ARTICLE_LAST = re.compile(r"(?P<rest>.+?),\s*(?P<article>the|an?)(?P<tail>\s*\([^()]*\))?", re.IGNORECASE)
DEFAULT_ALPHA, DEFAULT_STRENGTH = 0.5, 1.0
# The largest strength the concept curves measure (evaluation.curves.STRENGTHS) and the Space's slider offers.
MEASURED_STRENGTH = 3.0


def article_first(title: str) -> str:
    """'Matrix, The (1999)' -> 'The Matrix (1999)'; any other title as it is."""
    found = _ARTICLE_LAST.fullmatch(title.strip())
    return f"{found['article']} {found['rest']}{found['tail'] or ''}" if found else title.strip()


def find_entity(labels: list[str], names: list[str], popularity, query: str, kind: str = "movie") -> tuple[int, list]:
    """The row of the entity `query` names, and the other labels it could have meant.

    Accepts a label as the Space shows it ("Titanic (1997)"), a name ("titanic") or part of one, with a leading
    article in front or last as MovieLens writes it ("Matrix, The"); among several matches an exact name wins, then
    the best-known entity (highest `popularity`, e.g. MovieLens' rating counts). A label whose name matches but whose
    qualifier does not ("Titanic (1887)") is refused, not swapped for another.
    """
    query = article_first(str(query))
    lowered = [article_first(label).lower() for label in labels]
    if query.lower() in lowered:
        return lowered.index(query.lower()), []
    qualified = re.fullmatch(r"(.*?)\s*\((.+)\)", query)
    name = qualified.group(1) if qualified else query
    if not name:
        raise ValueError(f"{query!r} names nothing; give a name, part of one, or a label such as the Space shows.")
    names = np.asarray([article_first(n).lower() for n in names])
    exact = names == name.lower()
    hits = np.flatnonzero(exact) if exact.any() else np.flatnonzero([name.lower() in n for n in names])
    if qualified and len(hits):  # "Titanic (1887)": the name is there, the qualifier is not
        found = "; ".join(labels[i] for i in hits[:5])
        raise ValueError(f"No {kind} {name!r} from {qualified.group(2)} in the corpus; it has: {found}. "
                         "Pass one of these.")
    if not len(hits):
        import difflib

        close = difflib.get_close_matches(query, labels, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else " Try part of its name."
        raise ValueError(f"No {kind} in the corpus matches {query!r}.{hint}")
    ranked = hits[np.argsort(-np.asarray(popularity)[hits], kind="stable")]
    return int(ranked[0]), [labels[i] for i in ranked[1:6]]


def popularity(corpus, space: str) -> np.ndarray:
    """How well known each entity is (MovieLens' rating counts), zeros where the corpus says nothing."""
    table = corpus.entities[space]
    return table["n_ratings"].to_numpy() if "n_ratings" in table.columns else np.zeros(len(table))


def pick(corpus, space: str, query: str) -> tuple[int, str, list[str]]:
    """(row, label, other labels it could have meant) of the entity of `space` that `query` names."""
    labels = corpus.labels(space)
    row, others = find_entity(labels, corpus.names(space) or labels, popularity(corpus, space), query, space)
    return row, labels[row], others


def row_vector(corpus, space: str, row: int) -> np.ndarray:
    return np.asarray(corpus.vectors[space].lookup([corpus.entities[space]["id"].iloc[row]])[0], np.float32)


def best_known_held_out(corpus, space: str) -> int:
    """The row of the best-known entity the model never saw in training (the first test one where none is known)."""
    test = np.flatnonzero(corpus.entities[space]["split"].to_numpy() == "test")
    if not len(test):
        raise ValueError(f"The corpus holds no held-out {space}; name one.")
    return int(test[np.argmax(popularity(corpus, space)[test])])


def mix(first: np.ndarray, second: np.ndarray, alpha: float) -> np.ndarray:
    """(1 - alpha) first + alpha second, in the vectors' own precision: alpha in [0, 1] mixes, outside it extrapolates
    past either."""
    return (1 - alpha) * np.asarray(first) + alpha * np.asarray(second)


def move(concepts: dict, vector: np.ndarray, concept: str, strength: float, space: str = "") -> np.ndarray:
    """`vector` moved along `concepts[concept]` (a corpus' `concepts(space)`) by `strength` of the concept's own
    steps."""
    from .concepts import move_along  # scikit-learn behind it: loaded when a move is asked

    if concept not in concepts:
        close = [c for c in concepts if c.lower() == str(concept).lower()]
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"No concept {concept!r} in the corpus' {space or 'first'} space.{hint} "
                         f"Known: {', '.join(sorted(concepts)) or 'none'}.")
    return move_along(vector, concepts[concept], strength)
