"""The whole corpus build at MovieLens-25M scale, with the grounded writer: how long, how much memory?

    .venv/bin/python benchmarks/bench_corpus.py             # 25,000,095 ratings, 162,541 users, 62,423 movies
    .venv/bin/python benchmarks/bench_corpus.py --quick     # 1M ratings

Writes a synthetic release in ML-25M's file layout (ratings.csv, movies.csv, tags.csv; same shape as the real
one, see bench_embeddings.synthetic_ratings) to a scratch folder, then runs `build_corpus` on it exactly as
`python -m modeling_elm.scripts.corpus --source <folder> --tasks all` would: loading, WALS, MiniLM over every movie,
facts, the 24 movie tasks for every movie and profiles for every user, saving. Prints the stage timings that the
corpus manifest records, the total and the peak memory (ru_maxrss of this process).
"""

import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

sys.path.insert(0, str(Path(__file__).parent))
from bench_embeddings import FULL, GENRES, QUICK, TAGS, WORDS, synthetic_ratings  # noqa: E402


def write_release(folder: Path, shape: dict, seed: int = 0) -> None:
    ratings = synthetic_ratings(shape["ratings"], shape["users"], shape["movies"], seed=seed)
    rng = np.random.default_rng(seed)
    movie_ids = np.unique(ratings["movie_id"])
    titles = [" ".join(rng.choice(WORDS, rng.integers(1, 5))).title() + f" ({rng.integers(1920, 2020)})"
              for _ in movie_ids]
    genres = ["|".join(rng.choice(GENRES, rng.integers(1, 4), replace=False)) for _ in movie_ids]
    pacsv.write_csv(pa.table({"userId": ratings["user_id"], "movieId": ratings["movie_id"],
                              "rating": ratings["rating"], "timestamp": ratings["timestamp"]}), folder / "ratings.csv")
    pacsv.write_csv(pa.table({"movieId": movie_ids, "title": titles, "genres": genres}), folder / "movies.csv")
    n_tags = len(ratings["rating"]) // 25  # ML-25M has ~1.1M tags for 25M ratings
    picks = rng.choice(len(ratings["rating"]), size=n_tags, replace=False)
    pacsv.write_csv(pa.table({"userId": ratings["user_id"][picks], "movieId": ratings["movie_id"][picks],
                              "tag": rng.choice(list(TAGS), n_tags), "timestamp": ratings["timestamp"][picks]}),
                    folder / "tags.csv")


def main() -> None:
    from modeling_elm.scripts import command_parser

    parser = command_parser(__doc__, "bench_corpus", prog="benchmarks/bench_corpus.py")
    parser.add_argument("--quick", action="store_true", help="1M ratings instead of 25M")
    parser.add_argument("--scratch", type=Path, default=None, help="where to write the synthetic release")
    args = parser.parse_args()
    shape = QUICK if args.quick else FULL

    from modeling_elm.data.movielens.build import MovieLensConfig, build_corpus

    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="elm-bench-corpus-"))
    release = scratch / "ml-25m-synthetic"
    release.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if not (release / "ratings.csv").is_file():
        write_release(release, shape)
    written = time.perf_counter() - start
    config = MovieLensConfig(source=str(release), tasks=["all"], corpus_dir=str(scratch / "corpus"))
    start = time.perf_counter()
    folder = build_corpus(config, rebuild=True)
    total = time.perf_counter() - start
    manifest = json.loads((folder / "manifest.json").read_text())
    size = {part: sum(p.stat().st_size for p in (folder / part).rglob("*") if p.is_file())
            for part in ("tasks", "vectors")}
    size["whole folder"] = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())

    print(f"\nmachine: {platform.machine()}, 2-core dev VM; command: .venv/bin/python benchmarks/bench_corpus.py"
          f"{' --quick' if args.quick else ''}")
    print(f"input: {shape['ratings']:,} ratings, {shape['users']:,} users, {shape['movies']:,} movies "
          f"(synthetic release written in {written:.0f} s, not counted)")
    print("| stage | seconds |\n| --- | --- |")
    for stage, seconds in manifest["timings"].items():
        print(f"| {stage} | {seconds} |")
    print(f"| **build_corpus wall time** | **{total:.0f}** |")
    print(f"rows: {manifest['counts']['rows']}; on disk: "
          + ", ".join(f"{part} {bytes_ / 2**30:.2f} GiB" for part, bytes_ in size.items()) + "; "
          f"peak memory (ru_maxrss): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB")


if __name__ == "__main__":
    main()
