"""Ask a trained ELM about a movie or a user of its corpus, from the command line.

    python -m modeling_elm.describe --model checkpoints/elm-quick                  # a movie it never trained on
    python -m modeling_elm.describe --model checkpoints/elm-quick --movie "toy story"
    python -m modeling_elm.describe --model checkpoints/elm-quick --movie heat --task positive_review
    python -m modeling_elm.describe --model checkpoints/elm-quick --movie "toy story" --mix "alien" --alpha 0.5

The model reads only the movie's vector, never its title: the title is used here to look the vector up.
"""

import argparse
import sys

import numpy as np

from .corpus import load_corpus
from .generation import generate_texts, load_elm
from .modeling_elm import ElmProcessor
from .tasks import TASKS, get_tasks
from .training import read_marker


def find_movie(movies, query: str) -> int:
    titles = movies["title"].astype(str).str.lower()
    exact = np.flatnonzero(titles == query.lower())
    hits = exact if len(exact) else np.flatnonzero(titles.str.contains(query.lower(), regex=False))
    if not len(hits):
        raise SystemExit(f"No movie in the corpus matches {query!r}; try part of its title.")
    return int(hits[np.argmax(movies["n_ratings"].to_numpy()[hits])])  # the best-known of the matches


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modeling_elm.describe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="checkpoints/elm-quick", help="trained ELM folder (or Hub id)")
    parser.add_argument("--corpus", default=None, help="corpus folder (default: the one the model trained on)")
    parser.add_argument("--movie", help="title (or part of it) of a corpus movie; default: the most rated held-out one")
    parser.add_argument("--mix", help="a second movie: describe the mix of the two vectors")
    parser.add_argument("--alpha", type=float, default=0.5, help="share of --mix in the mixed vector")
    parser.add_argument("--user", help="a corpus user id (behavioural models)")
    parser.add_argument("--task", default=None, help=f"task prompt to use, one of: {', '.join(TASKS)}")
    parser.add_argument("--max-new-tokens", type=int, default=60)
    parser.add_argument("--device", default=None, help=(
        "cuda, mps or cpu (default: the GPU when there is one, in bf16; else the CPU, float32)"))
    args = parser.parse_args(argv)
    marker = read_marker(args.model) or {}
    corpus = load_corpus(args.corpus or marker.get("corpus") or parser.error("pass --corpus"))
    model = load_elm(args.model, args.device)
    processor = ElmProcessor.from_pretrained(args.model)
    space = "semantic" if corpus.manifest["config"].get("movie_space", "semantic") == "semantic" else "behavioural"
    if args.user:
        users = corpus.users
        row = users.index[users["user_id"].astype(str) == args.user]
        if not len(row):
            raise SystemExit(f"No user {args.user!r} in the corpus.")
        vectors, task, about = {"user": users.loc[row[0], "behavioural"][None]}, args.task or "user_profile", f"user {args.user}"
    elif args.movie:
        movies = corpus.movies
        first = find_movie(movies, args.movie)
        vector, about = movies.iloc[first][space], str(movies.iloc[first]["title"])
        if args.mix:
            second = find_movie(movies, args.mix)
            vector = (1 - args.alpha) * vector + args.alpha * movies.iloc[second][space]
            about = f"{1 - args.alpha:.2f} x {about} + {args.alpha:.2f} x {movies.iloc[second]['title']}"
        vectors, task = {"movie": np.asarray(vector, np.float32)[None]}, args.task or "summary"
    else:  # the best-known movie the model never saw in training
        movies = corpus.movies
        test = np.flatnonzero(movies["split"].to_numpy() == "test")
        first = int(test[np.argmax(movies["n_ratings"].to_numpy()[test])])
        vectors, task = {"movie": np.asarray(movies.iloc[first][space], np.float32)[None]}, args.task or "summary"
        about = f"{movies.iloc[first]['title']}, held out from training"
    if task == "summary" and args.task is None:  # by default, a task the model was trained on
        trained = [t for t in get_tasks(corpus.manifest["config"].get("tasks")) if t.kind == "one-movie"]
        task = trained[0].name if trained else task
    prompt = TASKS[task].prompt if task in TASKS else task
    if prompt.count("<movie>") > 1:
        raise SystemExit(f"Task {task!r} takes two movies; use a one-movie task (or --mix for a blend).")
    answer = generate_texts(model, processor, [prompt], [vectors], marker.get("system_prompt"),
                            max_new_tokens=args.max_new_tokens)[0]
    print(f"[{about}] {prompt}\n{answer}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
