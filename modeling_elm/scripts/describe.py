"""Ask a trained ELM about a movie or a user of its corpus, from the command line.

    python -m modeling_elm.scripts.describe --model checkpoints/elm-quick                  # a movie it never trained on
    python -m modeling_elm.scripts.describe --model checkpoints/elm-quick --movie "toy story"
    python -m modeling_elm.scripts.describe --movie "Titanic (1997)" --task positive_review   # the default model
    python -m modeling_elm.scripts.describe --model checkpoints/elm-quick --movie "toy story" --mix "alien" --alpha 0.5
    python -m modeling_elm.scripts.describe --model checkpoints/elm-quick --movie "heat" --concept Comedy --strength 1

The model reads only the movie's vector, never its title: the title is used here to look the vector up.
"""

import argparse
import re
import sys

# Only the standard library at import time: --help and argument errors answer at once; numpy, torch and transformers
# load once the arguments are known to be good.


def find_movie(movies, query: str) -> tuple[int, list[str]]:
    """The row of the movie `query` names, and the other titles it could have meant.

    Accepts a title, part of one, or a label with its year ("Titanic (1997)"); among several matches the exact title
    (and year, when given) wins, then the best-known movie.
    """
    import numpy as np

    match = re.fullmatch(r"\s*(.*?)\s*\((\d{4})\)\s*", query)
    title, year = (match.group(1), int(match.group(2))) if match else (query.strip(), None)
    if not title:
        raise SystemExit(f"--movie {query!r} names no title; give a title, part of one, or 'Title (year)'.")
    titles = movies["title"].astype(str).str.lower()
    exact = titles == title.lower()
    hits = np.flatnonzero(exact) if exact.any() else np.flatnonzero(titles.str.contains(title.lower(), regex=False))
    if year is not None and len(hits):
        same_year = hits[movies["year"].to_numpy()[hits] == year]
        if not len(same_year):  # another year's movie would be a silent substitution
            found = "; ".join(label(movies.iloc[i]) for i in hits[:5])
            raise SystemExit(f"No movie {title!r} from {year} in the corpus; it has: {found}. Pass one of these.")
        hits = same_year
    if not len(hits):
        raise SystemExit(f"No movie in the corpus matches {query!r}; try part of its title.")
    ranked = hits[np.argsort(-movies["n_ratings"].to_numpy()[hits], kind="stable")]
    return int(ranked[0]), [label(movies.iloc[i]) for i in ranked[1:6]]


def move_concept(corpus, space: str, vector, name: str, strength: float):
    """`vector` moved along the corpus' concept `name` (in `space`) by `strength` of the concept's own steps."""
    from ..data.concepts import move_along

    concepts = corpus.concepts(space)
    if name not in concepts:
        close = [c for c in concepts if c.lower() == name.lower()]
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise SystemExit(f"No concept {name!r} in the corpus' {space} space.{hint} "
                         f"Known: {', '.join(sorted(concepts))}.")
    return move_along(vector, concepts[name], strength)


def read_config_spaces(model: str) -> dict | None:
    """The embedding spaces a local checkpoint declares in its config.json (None when it is not a local folder)."""
    import json
    from pathlib import Path

    config = Path(model) / "config.json"
    return json.loads(config.read_text()).get("embedding_spaces") if config.is_file() else None


def label(movie) -> str:
    import pandas as pd

    return f"{movie['title']} ({int(movie['year'])})" if pd.notna(movie["year"]) else str(movie["title"])


class _Defaults(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default where there is one; 'None' says nothing the help text does not."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def parser() -> argparse.ArgumentParser:
    from ..data.movielens.tasks import TASKS

    p = argparse.ArgumentParser(prog="python -m modeling_elm.scripts.describe", description=__doc__.split("\n\n")[0],
                                formatter_class=_Defaults)
    p.add_argument("--model", default="checkpoints/elm-quick", help="trained ELM folder (or Hub id)")
    p.add_argument("--corpus", default=None, help="corpus folder (default: the one the model trained on)")
    p.add_argument("--movie", help=("title, part of one, or 'Title (year)' of a corpus movie (default: the best-known "
                                    "held-out one)"))
    p.add_argument("--mix", help="a second movie: describe the mix of the two vectors")
    p.add_argument("--alpha", type=float, default=0.5, help="share of --mix in the mixed vector")
    p.add_argument("--concept", help=("a concept of the corpus (a genre such as Comedy): describe the movie moved "
                                      "along its direction"))
    p.add_argument("--strength", type=float, default=1.0, help=(
        "how far to move along --concept, in the concept's own steps: 1 moves the movie as far as the typical movie "
        "with the genre lies from one without it; negative moves away"))
    p.add_argument("--user", help="a corpus user id (models with a user space)")
    p.add_argument("--task", default=None, help=(
        f"a task name ({', '.join(TASKS)}) or your own prompt with <movie> (default: the first one-movie task the "
        "model trained on)"))
    p.add_argument("--max_new_tokens", "--max-new-tokens", type=int, default=60, help="tokens to generate")
    p.add_argument("--device", default=None, help=(
        "cuda, mps or cpu (default: the GPU when there is one, in bf16; else the CPU, float32)"))
    p.add_argument("--server", default=None, metavar="URL", help=(
        "a vLLM server serving this model's export (python -m modeling_elm.scripts.export, then "
        "python -m modeling_elm.scripts.serve): the answer is generated there from the prompt embeddings made here"))
    return p


def main(argv=None) -> int:
    from ..data.movielens.tasks import TASKS

    p = parser()
    args = p.parse_args(argv)
    if args.task is not None and args.task not in TASKS and "<" not in args.task:
        p.error(f"unknown task {args.task!r}; choose one of: {', '.join(TASKS)} (or write a prompt with <movie>)")

    import numpy as np

    from ..data.corpus import load_corpus
    from ..inference import generate_texts, load_elm, load_processor
    from ..data.movielens.tasks import get_tasks
    from ..checkpoints import check_trained_elm, read_marker

    try:
        check_trained_elm(args.model)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    marker = read_marker(args.model) or {}
    corpus = load_corpus(args.corpus or marker.get("corpus") or p.error("pass --corpus"))
    def movie_vector(row: int) -> np.ndarray:  # what the model's movie placeholder reads, from the corpus' table
        return corpus.vectors["movie"].lookup([str(movies.iloc[row]["movie_id"])])[0]

    movies = corpus.movies
    if args.mix and not args.movie:
        p.error("--mix mixes a second movie into --movie: pass --movie too")
    if not 0 <= args.alpha <= 1:
        print(f"Note: --alpha {args.alpha:g} is outside [0, 1], so the vector extrapolates beyond the two movies "
              "instead of mixing them; models are trained on real vectors only.", file=sys.stderr)
    if args.user:
        spaces = (read_config_spaces(args.model) or {})
        if spaces and "user" not in spaces:
            raise SystemExit(f"{args.model} reads no user vectors (its spaces: {', '.join(spaces)}); describe a movie, "
                             "or train a model with user profiles (recipes/quick-users.yaml) and pass that one.")
        users = corpus.users
        row = users.index[users["user_id"].astype(str) == args.user]
        if not len(row):
            raise SystemExit(f"No user {args.user!r} in the corpus.")
        vectors, task, about = ({"user": users.loc[row[0], "behavioural"][None]}, args.task or "user_profile",
                                f"user {args.user}")
    elif args.movie:
        first, others = find_movie(movies, args.movie)
        vector, about = movie_vector(first), label(movies.iloc[first])
        if others:
            print(f"{args.movie!r} matches several movies: picked {about}; others: {'; '.join(others)}",
                  file=sys.stderr)
        if args.mix:
            second, _ = find_movie(movies, args.mix)
            vector = (1 - args.alpha) * vector + args.alpha * movie_vector(second)
            about = f"{1 - args.alpha:.2f} x {about} + {args.alpha:.2f} x {label(movies.iloc[second])}"
        vectors, task = {"movie": np.asarray(vector, np.float32)[None]}, args.task or "summary"
    else:  # the best-known movie the model never saw in training
        test = np.flatnonzero(movies["split"].to_numpy() == "test")
        first = int(test[np.argmax(movies["n_ratings"].to_numpy()[test])])
        vectors, task = {"movie": np.asarray(movie_vector(first), np.float32)[None]}, args.task or "summary"
        about = f"{label(movies.iloc[first])}, held out from training"
    if args.concept:
        if "movie" not in vectors:
            p.error("--concept moves a movie's vector: pass --movie (or nothing, for the default movie), not --user")
        vectors["movie"] = move_concept(corpus, "movie", vectors["movie"][0], args.concept, args.strength)[None]
        about = f"{about}, moved along {args.concept} by {args.strength:g} of its steps"
    if task == "summary" and args.task is None:  # by default, a task the model was trained on
        trained = [t for t in get_tasks(corpus.manifest["config"].get("tasks")) if t.kind == "one-movie"]
        task = trained[0].name if trained else task
    prompt = TASKS[task].prompt if task in TASKS else task
    if prompt.count("<movie>") > 1:
        raise SystemExit(f"Task {task!r} takes two movies; use a one-movie task (or --mix for a blend).")
    model, processor = load_elm(args.model, args.device), load_processor(args.model, marker)
    if args.server:
        from ..serving import ElmServingClient, ServerError

        try:
            answer = ElmServingClient(model, processor, args.server).generate_texts(
                [prompt], [vectors], max_new_tokens=args.max_new_tokens)[0]
        except ServerError as error:
            raise SystemExit(str(error)) from None
    else:
        answer = generate_texts(model, processor, [prompt], [vectors], max_new_tokens=args.max_new_tokens)[0]
    print(f"[{about}] {prompt}\n{answer}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
