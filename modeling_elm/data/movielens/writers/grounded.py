"""The grounded writer: task targets written from the data, so every statement is true of the entity.

Offline and deterministic: the phrasing varies with a hash of (entity, task), never with a global random state.
Each task has its own wording (a review is not a summary) and two levels of detail: `brief` (one sentence, about
20 tokens: what a small model can learn in minutes on a CPU) and `full` (several sentences).
Genre words appear in a target only when they are true of the entities the row is about, so the facts metric of
the evaluation can score outputs against them.
"""

import dataclasses
import hashlib
import re
from dataclasses import dataclass, field

from ..behavioural import movie_text
from ..tasks import Task

# MovieLens genre -> the words a sentence uses for it.
GENRE_WORDS = {
    "Action": "action", "Adventure": "adventure", "Animation": "animated", "Children": "children's",
    "Comedy": "comedy", "Crime": "crime", "Documentary": "documentary", "Drama": "drama", "Fantasy": "fantasy",
    "Film-Noir": "noir", "Horror": "horror", "IMAX": "IMAX", "Musical": "musical", "Mystery": "mystery",
    "Romance": "romance", "Sci-Fi": "science fiction", "Thriller": "thriller", "War": "war", "Western": "western",
}


@dataclass
class MovieFacts:
    id: str
    title: str
    year: int | None
    genres: list[str]
    tags: list[str] = field(default_factory=list)  # most relevant first
    mean_rating: float | None = None
    n_ratings: int = 0
    popularity: float = 0.0  # percentile of the number of ratings among all movies, 0..1
    fan_genre: str | None = None  # the genre its high raters favour most
    neighbours: list[str] = field(default_factory=list)  # titles of the nearest movies in the vector space
    anonymous: bool = False  # `title` is a stand-in ("this movie"): never state a year next to it

    @property
    def decade(self) -> str | None:
        return f"{self.year // 10 * 10}s" if self.year else None

    @property
    def named(self) -> str:
        return f"{self.title} ({self.year})" if self.year and not self.anonymous else self.title


@dataclass
class UserFacts:
    id: str
    n_ratings: int
    mean_rating: float
    favourite_genres: list[str]  # by how much more the user rates them highly than the catalogue would suggest
    least_favourite_genre: str | None
    favourite_decades: list[str]
    loved_movies: list[str]  # titles the user rated highest
    rating_style: str  # "generous", "demanding" or "balanced", relative to all users


def genre_phrase(genres: list[str], limit: int = 3) -> str:
    words = [GENRE_WORDS.get(g, g.lower()) for g in genres if g != "IMAX"][:limit]
    return _join(words) if words else "genre-defying"


def _join(items: list[str], conjunction: str = "and") -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {conjunction} " + items[-1]


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _pick(options: list[str], *keys) -> str:
    digest = hashlib.sha256("|".join(map(str, keys)).encode()).digest()
    return options[digest[0] % len(options)]


def _reception(movie: MovieFacts) -> str:
    if movie.mean_rating is None or movie.n_ratings == 0:
        return "rarely rated"
    if movie.mean_rating >= 4.0:
        verdict = "highly rated"
    elif movie.mean_rating >= 3.5:
        verdict = "well liked"
    elif movie.mean_rating >= 3.0:
        verdict = "met with mixed feelings"
    else:
        verdict = "poorly rated"
    return f"{verdict} ({movie.mean_rating:.1f}/5 from {movie.n_ratings} ratings)"


def _reach(movie: MovieFacts) -> str:
    if movie.popularity >= 0.9:
        return "one of the most watched movies in the catalogue"
    if movie.popularity >= 0.5:
        return "a widely watched movie"
    return "a lesser-known movie"


def _kind(movie: MovieFacts) -> str:
    phrase = genre_phrase(movie.genres)
    era = f" from the {movie.decade}" if movie.decade else ""
    return f"{_article(phrase)} {phrase} film{era}"


def _tags(movie: MovieFacts, limit: int = 3) -> str:
    return _join([f'"{t}"' for t in movie.tags[:limit]])


class GroundedWriter:
    """Writes the target of a task from facts. `detail`: "brief" (one sentence) or "full" (several)."""

    name = "grounded"

    def __init__(self, detail: str = "full", titles: bool = True):
        if detail not in ("brief", "full"):
            raise ValueError(f"detail must be 'brief' or 'full', got {detail!r}.")
        self.detail = detail
        # titles=False: movies are "this movie" / "the first movie" in every target, and user profiles name no loved
        # titles, so a model learns to say what the vector holds (kind, decade, tags; favourite genres and decades)
        # instead of inventing titles it cannot read.
        self.titles = titles

    def write_many(self, task: Task, entity_lists: list[list]) -> list[str]:
        return [self.write(task, entities) for entities in entity_lists]

    def write(self, task: Task, entities: list) -> str:
        method = getattr(self, f"_{task.kind.replace('-', '_')}")
        if self.titles or task.kind == "user" or task.name == "reconstruct":
            return method(task.name, *entities)
        stand_ins = ["this movie"] if len(entities) == 1 else ["the first movie", "the second movie"]
        anonymous = [dataclasses.replace(e, title=name, anonymous=True) for e, name in zip(entities, stand_ins)]
        # a stand-in may open a sentence: capitalise every sentence start
        return re.sub(r"(^|[.!?]\s+)([a-z])", lambda m: m.group(1) + m.group(2).upper(), method(task.name, *anonymous))

    # --- one movie ---------------------------------------------------------------------------------------------
    def _one_movie(self, name: str, m: MovieFacts) -> str:
        kind, tags = _kind(m), _tags(m)
        tagged = f", remembered for {tags}" if tags else ""
        fans = f"fans of {GENRE_WORDS.get(m.fan_genre, m.fan_genre)} movies" if m.fan_genre else "its audience"
        near = _join(m.neighbours[:2])
        like = f" If you liked {near}, it belongs on your list." if near else ""
        brief = {
            "summary": f"{m.named} is {kind}{tagged}.",
            "positive_review": _pick([f"A treat: {m.title} is {kind} that delivers what it promises.",
                                      f"I loved {m.title}, {kind} done with confidence."], m.id, name),
            "negative_review": _pick([f"{m.title} is {kind} that never rises above its formula.",
                                      f"I was let down by {m.title}, {kind} that drags."], m.id, name),
            "neutral_review": f"{m.title} is {kind}: {_reception(m)}, neither a triumph nor a failure.",
            "five_positive_characteristics": self._numbered(self._strengths(m)),
            "five_negative_characteristics": self._numbered(self._weaknesses(m)),
            "long_description": f"{m.named} is {kind}{tagged}; it is {_reach(m)}, {_reception(m)}.",
            "funnier": (f"Make {m.title} funnier: keep its {genre_phrase(m.genres)} story "
                        "but add running gags and lighter scenes."),
            "sadder": (f"Make {m.title} sadder: keep its {genre_phrase(m.genres)} story "
                       "and give it a loss that does not heal."),
            "scarier": (f"Make {m.title} scarier: keep its {genre_phrase(m.genres)} story "
                        "and add dread, darkness and a threat that lingers."),
            "improve": (f"{m.title} would gain from a tighter script "
                        f"that trusts its {genre_phrase(m.genres)} strengths."),
            "movie_to_viewer": (f"{m.title} suits {fans} who enjoy {genre_phrase(m.genres)} films"
                                f"{' from the ' + m.decade if m.decade else ''}."),
            "pitch": (f"Picture {kind.replace(' from the', ' set in the')}: "
                      f"{m.title}{', built around ' + tags if tags else ''}."),
            "criticize": f"{m.title} leans on {genre_phrase(m.genres)} conventions more than it questions them.",
            "convince1": f"Watch {m.title}: {kind}, {_reception(m)}.",
            "convince2": f"One reason to watch {m.title} tonight: it is {kind}{tagged}.",
            "convince3": f"A friend would recommend {m.title} for its {genre_phrase(m.genres)} appeal.",
            "dissuade1": f"Skip {m.title} unless you want yet another {genre_phrase(m.genres)} film.",
            "dissuade2": f"One reason to skip {m.title}: it is {_reception(m)}.",
            "what_kind": f"{kind[0].upper()}{kind[1:]}{tagged}.",
            # the very text the semantic vector encodes (embeddings.movie_text), word for word
            "reconstruct": movie_text(m.title, m.year, m.genres, m.tags),
        }
        text = brief[name]
        if self.detail == "brief" or name.startswith("five_") or name == "reconstruct":
            return text
        extra = {
            "summary": f" It is {_reach(m)}, {_reception(m)}.{like}",
            "long_description": f" Its strongest ratings come from {fans}.{like}",
            "movie_to_viewer": f" Such viewers often also enjoy {near}." if near else "",
            "convince1": like,
            "dissuade1": f" It is {_reception(m)}.",
            "neutral_review": f" It is {_reach(m)}.",
            "dissuade2": f" It is {_reach(m)}.",
        }.get(name, f" It is {_reception(m)}.")
        return text + extra

    def _strengths(self, m: MovieFacts) -> list[str]:
        items = [f"It is a {genre_phrase([g], 1)} film through and through." for g in m.genres[:2] if g != "IMAX"]
        items += [f"It is remembered for {_tags(m, 1)}." for _ in m.tags[:1]]
        if m.decade:
            items.append(f"It captures the feel of the {m.decade}.")
        if m.mean_rating and m.mean_rating >= 3.5:
            items.append(f"Viewers rate it well ({m.mean_rating:.1f}/5).")
        if m.neighbours:
            items.append(f"It sits in good company, next to {m.neighbours[0]}.")
        items += ["It has a clear identity.", "It rewards the right audience.", "It tells its story plainly."]
        return items[:5]

    def _weaknesses(self, m: MovieFacts) -> list[str]:
        items = [f"It rarely surprises by {genre_phrase([g], 1)} standards." for g in m.genres[:2] if g != "IMAX"]
        if m.mean_rating and m.mean_rating < 3.5:
            items.append(f"Viewers are lukewarm ({m.mean_rating:.1f}/5).")
        if m.popularity < 0.5:
            items.append("Few people have seen it, so it is hard to find.")
        if m.decade:
            items.append(f"Parts of it feel dated, a product of the {m.decade}.")
        items += ["Its pacing is uneven.", "Its characters stay thin.", "It plays safe.", "It runs long."]
        return items[:5]

    @staticmethod
    def _numbered(items: list[str]) -> str:
        return " ".join(f"{i}. {item}" for i, item in enumerate(items, start=1))

    # --- two movies ----------------------------------------------------------------------------------------------
    def _two_movie(self, name: str, a: MovieFacts, b: MovieFacts) -> str:
        shared = [g for g in a.genres if g in b.genres and g != "IMAX"]
        shared_text = f"{genre_phrase(shared)} films" if shared else "films of different genres"
        same_decade = a.decade and a.decade == b.decade
        era = f" from the {a.decade}" if same_decade else ""
        texts = {
            "similarities": (f"{a.title} and {b.title} are both {shared_text}{era}."
                             if shared or same_decade else
                             f"{a.title} and {b.title} share little: one is {_kind(a)}, the other {_kind(b)}."),
            "interpolation": (f"A blend of {a.title} and {b.title}: "
                              f"{_article(genre_phrase(_union(a.genres, b.genres), 4))} "
                              f"{genre_phrase(_union(a.genres, b.genres), 4)} film"
                              f"{' from the ' + a.decade if same_decade else ''}."),
            "why_like_nn": (f"If you liked {a.title}, {b.title} offers the same {genre_phrase(shared)} appeal{era}."
                            if shared else f"{b.title} is a change from {a.title}: {_kind(b)} rather than {_kind(a)}."),
            "diff_than_nn": f"{a.title} is {_kind(a)}, while {b.title} is {_kind(b)}.",
            "common_with_nn": (f"Fans of {genre_phrase(shared)} movies would enjoy both {a.title} and {b.title}."
                               if shared else
                               f"Viewers with broad tastes, who like both {genre_phrase(a.genres)} and "
                               f"{genre_phrase(b.genres)} movies."),
        }
        text = texts[name]
        if self.detail == "full" and name != "diff_than_nn":
            text += f" {a.title} is {_reception(a)}; {b.title} is {_reception(b)}."
        return text

    # --- users ---------------------------------------------------------------------------------------------------
    def _user(self, name: str, u: UserFacts) -> str:
        decades = _join(u.favourite_decades[:2])
        taste = f"loves {genre_phrase(u.favourite_genres)} movies" if u.favourite_genres else "has eclectic tastes"
        text = f"This user {taste}" + (f", especially movies from the {decades}" if decades else "") + "."
        if u.loved_movies and self.titles:  # titles no user vector can spell out: without them, all is readable
            text += f" Favourites include {_join(u.loved_movies[:2])}."
        if self.detail == "full":
            style = {"generous": "rate generously", "demanding": "are a demanding rater",
                     "balanced": "rate like most users"}[u.rating_style]
            text += f" They {style} ({u.mean_rating:.1f}/5 on average over {u.n_ratings} movies)"
            if u.least_favourite_genre:
                text += f" and care least for {genre_phrase([u.least_favourite_genre], 1)} movies"
            text += "."
        return text


def _union(first: list[str], second: list[str]) -> list[str]:
    return list(dict.fromkeys([*first, *second]))
