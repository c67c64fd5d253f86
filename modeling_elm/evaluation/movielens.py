"""What a MovieLens corpus adds to the evaluation core: its entity tables make more metrics possible.

Per row: SC against the movie's semantic vector and retrieval by it (hits@1/10 among every movie), stated genres and
decade against the data, repetition and invented titles, BC for user profiles. Per task: the text-only baseline
(the title instead of the vector) and the constant guess. Once: interpolation and concept-move curves (curves.py).
"""

from collections import Counter

import numpy as np

from .metrics import (
    behavioural_consistency, constant_guesses, constant_taste, fact_scores, invents_title, rank_metrics,
    repeats_content_word, retrieval_ranks, semantic_consistency, summarise, taste_scores, year_of,
)

FACTS = ("genre_precision", "genre_recall", "genre_f1", "decade_accuracy")


class MovieLensScorer:
    """Scores texts about MovieLens rows; `ev` is the running Evaluation (its encoder embeds the texts)."""

    likelihood_retrieval = False  # retrieval here ranks every movie by SC (hits@1/10), not a few by likelihood

    def __init__(self, ev):
        from ..data.movielens.tables import movielens_tables

        self.ev = ev
        self.movies, self.users = movielens_tables(ev.corpus)
        self.movie_index = {m: i for i, m in enumerate(self.movies["id"])}
        self.semantic = np.stack(self.movies["semantic"].to_numpy())
        self.behavioural = np.stack(self.movies["behavioural"].to_numpy())
        self.user_index = {u: i for i, u in enumerate(self.users["id"])}

    @staticmethod
    def ids(rows: list[dict]) -> list[list[str]]:
        return [r["user_ids"] if r["kind"] == "user" else r["movie_ids"] for r in rows]

    def metrics(self, texts: list[str], rows: list[dict]) -> dict[str, list]:
        ids = self.ids(rows)
        if rows[0]["kind"] == "user":
            return self.user_metrics(texts, ids)
        return self.movie_metrics(texts, ids)

    def movie_metrics(self, texts: list[str], movie_ids: list[list[str]]) -> dict:
        """Per-row SC, retrieval ranks (one-movie rows) and stated facts, for generated or reference texts."""
        text_vectors = self.ev.embed(texts)
        rows = [[self.movie_index[m] for m in ids] for ids in movie_ids]
        sources = np.stack([self.semantic[r].mean(axis=0) for r in rows])
        values = {"sc": semantic_consistency(text_vectors, sources).tolist()}
        single = all(len(r) == 1 for r in rows)
        if single:
            ranks = retrieval_ranks(text_vectors, self.semantic, np.array([r[0] for r in rows]))
            values.update({name: v.tolist() for name, v in rank_metrics(ranks, ks=(1, 10)).items()})
        facts = [fact_scores(t, list(self.movies.iloc[r[0]]["genres"]), year_of(self.movies.iloc[r[0]]["year"]))
                 for t, r in zip(texts, rows)]
        values.update({key: [f[key] for f in facts] for key in FACTS})
        values["repeat_free"] = [float(not repeats_content_word(t)) for t in texts]
        if single:
            values["no_invented_title"] = [float(not invents_title(t, str(self.movies.iloc[r[0]]["title"])))
                                           for t, r in zip(texts, rows)]
        return values

    def user_metrics(self, texts: list[str], user_ids: list[list[str]]) -> dict:
        """BC over each user's own rated movies and over one fixed sample of movies, and what the profile says
        against the user's favourite genres and decade (corpora from version 3 on record the decades)."""
        users, args = self.users, self.ev.args
        profile_vectors = self.ev.embed(texts)
        sample = np.random.default_rng(args.seed).choice(len(self.semantic), min(args.bc_sample, len(self.semantic)),
                                                         replace=False)
        rated, sampled = [], []
        for vector, ids in zip(profile_vectors, user_ids):
            user = users.iloc[self.user_index[ids[0]]]
            own = [self.movie_index[str(m)] for m in user["rated_movie_ids"] if str(m) in self.movie_index]
            rated.append(behavioural_consistency(vector, self.semantic[own], user["behavioural"], self.behavioural[own])
                         if len(own) >= 3 else np.nan)
            sampled.append(behavioural_consistency(vector, self.semantic[sample], user["behavioural"],
                                                   self.behavioural[sample]))
        values = {"bc_rated": rated, "bc_sample": sampled}
        favourites = [self.favourites(ids[0]) for ids in user_ids]
        tastes = [taste_scores(text, genres, decades) for text, (genres, decades) in zip(texts, favourites)]
        keys = FACTS if "favourite_decades" in users.columns else FACTS[:3]
        values.update({key: [t[key] for t in tastes] for key in keys})
        return values

    def favourites(self, user_id: str) -> tuple[list[str], list[str]]:
        user = self.users.iloc[self.user_index[user_id]]
        decades = user["favourite_decades"] if "favourite_decades" in user.index else None
        return list(user["favourite_genres"]), list(decades) if decades is not None else []

    def title(self, movie_id: str) -> str:
        movie = self.movies.iloc[self.movie_index[movie_id]]
        year = year_of(movie["year"])
        return f"{movie['title']} ({year})" if year else str(movie["title"])

    def text_only_prompts(self, rows: list[dict]) -> list[str] | None:
        """One-movie rows with "Title (year)" in place of the vector: what the LM knows without reading it."""
        if rows[0]["kind"] != "one-movie":
            return None
        return [r["prompt"].replace("<movie>", self.title(r["movie_ids"][0]), 1) for r in rows]

    def movie_facts(self, movie_id: str):
        from ..data.movielens.writers.grounded import MovieFacts

        m = self.movies.iloc[self.movie_index[movie_id]]
        return MovieFacts(str(m["movie_id"]), str(m["title"]), year_of(m["year"]), list(m["genres"]),
                          tags=list(m["tags"]) if m.get("tags") is not None else [],
                          mean_rating=float(m["mean_rating"]), n_ratings=int(m["n_ratings"]))

    def judge_facts(self, rows: list[dict]) -> list | None:
        """What the judge is shown (never the vector): the movie's facts, for one-movie rows."""
        return [self.movie_facts(r["movie_ids"][0]) for r in rows] if rows[0]["kind"] == "one-movie" else None

    def constant_baseline(self, task_rows: dict[str, list[dict]]) -> dict:
        """Scores of the best vector-free answers, per task, with the same metric code as the model's."""

        train = self.movies[self.movies["split"] == "train"]
        training_rows = self.ev.corpus.tasks["train"]
        counts = Counter(zip(training_rows["task"], training_rows["target"]))  # one pass over every training target
        commonest = {}
        for (task, target), _ in counts.most_common():
            commonest.setdefault(task, target)
        guess = constant_guesses([list(g) for g in train["genres"]], [year_of(y) for y in train["year"]],
                                 [counts.most_common(1)[0][0][1]] if counts else [])
        out = {"guess": guess, "tasks": {}}
        for task, rows in task_rows.items():
            if rows[0]["kind"] == "user":
                out["tasks"][task] = self.constant_profile(rows)
                continue
            ids = [r["movie_ids"] for r in rows]
            text = commonest.get(task, guess["text"])
            values = self.movie_metrics([text] * len(rows), ids)
            facts = self.movie_metrics([guess["genre_text"]] * len(rows), ids)
            values.update({k: facts[k] for k in FACTS})
            out["tasks"][task] = {"text": text, **summarise(values, self.ev.args.seed)}
        return out

    def constant_profile(self, rows: list[dict]) -> dict:
        """The best vector-free profile (the training users' commonest favourites), scored like the model's."""
        users = self.users
        train = users[users["split"] == "train"]
        decades = train["favourite_decades"] if "favourite_decades" in train.columns else []
        taste = constant_taste([list(g) for g in train["favourite_genres"]], [list(d) for d in decades])
        values = self.user_metrics([taste["text"]] * len(rows), self.ids(rows))

        return {"text": taste["text"], **summarise(values, self.ev.args.seed)}

    def after_tasks(self, task_rows: dict, results: dict) -> None:
        """The corpus-wide parts: the constant guess and the hypothetical-vector curves."""
        results["constant_guess"] = self.constant_baseline(task_rows)
        trained_on_movies = any(r[0]["kind"] != "user" for r in task_rows.values())
        if self.ev.args.curves and trained_on_movies:  # hypothetical movies need a model that reads movies
            from .curves import concept_curves, interpolation_curve

            results["curves"] = {"interpolation": interpolation_curve(self.ev), "concepts": concept_curves(self.ev)}
