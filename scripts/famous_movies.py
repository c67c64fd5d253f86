"""What a trained ELM says about ten well-known movies, with each stated genre and decade marked right or wrong.

    .venv/bin/python scripts/famous_movies.py --model checkpoints/elm-quick            # Markdown table on stdout

The model reads only each movie's vector; the title is used here to look the vector up. Whether a movie was held
out from training (never seen) is marked, so a reader can tell recall from reading.
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FAMOUS = ["Pulp Fiction", "Toy Story", "The Matrix", "Titanic", "Heat", "The Godfather",
          "Star Wars: Episode IV - A New Hope", "The Shawshank Redemption", "Jurassic Park", "Casablanca"]


def main(argv=None) -> int:
    from modeling_elm.scripts import command_parser

    parser = command_parser(__doc__, "famous_movies", prog="scripts/famous_movies.py")
    parser.add_argument("--model", default="checkpoints/elm-quick", help="trained ELM folder")
    parser.add_argument("--corpus", default=None, help="corpus folder (default: the one the model trained on)")
    parser.add_argument("--task", default=None, help="task to ask (default: the first one-movie task trained)")
    parser.add_argument("--movies", nargs="+", default=FAMOUS, help="exact corpus titles")
    args = parser.parse_args(argv)

    from modeling_elm.data.corpus import load_corpus
    from modeling_elm import ElmProcessor
    from modeling_elm.inference import generate_texts, load_elm
    from modeling_elm.evaluation.metrics import stated_decade, stated_genres
    from modeling_elm.data.movielens.tasks import TASKS, get_tasks
    from modeling_elm.checkpoints import trained_corpus

    corpus = load_corpus(trained_corpus(args.model, args.corpus))
    model = load_elm(args.model, "cpu")
    processor = ElmProcessor.from_pretrained(args.model)
    task = args.task or next(t.name for t in get_tasks(corpus.manifest["config"]["tasks"]) if t.kind == "one-movie")
    movies = corpus.entities["movie"]
    table_vectors = corpus.entity_vectors("movie")  # the table the model's <movie> placeholder reads
    chosen = []
    for title in args.movies:
        rows = np.flatnonzero(movies["title"].to_numpy() == title)
        if not len(rows):
            raise SystemExit(f"No movie titled {title!r} in {corpus.folder}; pass exact corpus titles with --movies.")
        chosen.append(int(rows[np.argmax(movies["n_ratings"].to_numpy()[rows])]))
    vectors = [{"movie": np.asarray(table_vectors[i], np.float32)[None]} for i in chosen]
    answers = generate_texts(model, processor, [TASKS[task].prompt] * len(chosen), vectors, desc="famous movies")
    print(f"Task `{task}`: “{TASKS[task].prompt}”\n")
    print("| movie | held out | the model says | genres right / wrong | decade |")
    print("| --- | --- | --- | --- | --- |")
    for i, answer in zip(chosen, answers):
        movie = movies.iloc[i]
        truth = set(movie["genres"])
        said = stated_genres(answer)
        right, wrong = sorted(said & truth), sorted(said - truth)
        decade = stated_decade(answer)
        true_decade = f"{int(movie['year']) // 10 * 10}s" if movie["year"] == movie["year"] else None
        mark = "–" if decade is None else ("✓ " if decade == true_decade else "✗ ") + decade
        print(f"| {movie['title']} ({int(movie['year'])}), {', '.join(sorted(truth))} | "
              f"{'yes' if movie['split'] == 'test' else 'no'} | {answer} | "
              f"{', '.join(right) or '–'} / {', '.join(wrong) or '–'} | {mark} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
