"""From ratings to both embedding tables at MovieLens-25M scale: what do they cost on this machine?

    .venv/bin/python benchmarks/bench_embeddings.py            # 25,000,095 ratings, 162,541 users, 62,423 movies
    .venv/bin/python benchmarks/bench_embeddings.py --quick    # 1M ratings, a smoke run

The ratings are synthetic with MovieLens-25M's shape: movie popularity and user activity are heavy-tailed (a few
movies get most ratings, as in the real data), ratings are half stars with MovieLens' mean, pairs are unique.
Measures, each in its own process so that ru_maxrss is that step's own peak:
(a) `behavioural_embeddings` from the ratings DataFrame (id mapping, weighting, CSR, ALS);
(b) `implicit`'s ALS called directly on the same CSR matrix, prebuilt, with the same settings;
    ours / direct is the cost of the wrapper (target <= 1.1); the runs interleave (a b a b ...) so drift hits both;
(c) MiniLM semantic embeddings of synthetic movie texts: a sample, extrapolated to every movie unless --all-texts.
"""

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FULL = dict(ratings=25_000_095, users=162_541, movies=62_423)
QUICK = dict(ratings=1_000_000, users=6_500, movies=2_500)
# MovieLens-25M's half-star distribution, 0.5 ... 5.0 (mean 3.53).
STAR_SHARE = np.array([1.6, 3.2, 1.7, 6.8, 4.9, 19.6, 12.6, 26.6, 8.5, 14.5])
WORDS = ("lost garden winter night city love war return dark star story man woman last first house river king "
         "blue road secret island summer fire ghost game heart shadow little big golden long time dream").split()
GENRES = ("Action Adventure Animation Children Comedy Crime Documentary Drama Fantasy Film-Noir Horror IMAX Musical "
          "Mystery Romance Sci-Fi Thriller War Western").split()
TAGS = ("atmospheric", "based on a book", "twist ending", "funny", "visually appealing", "dark comedy", "classic",
        "thought-provoking", "sci-fi", "great soundtrack", "pixar", "slow")


def synthetic_ratings(n_ratings: int, n_users: int, n_movies: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Unique (user, movie) pairs drawn from MovieLens-like heavy-tailed popularity and activity, sorted by user as
    ratings.csv is.

    Pairs are drawn with replacement in vectorised rounds and deduplicated until there are exactly `n_ratings`.
    At full size (about 50 s) this gives, per movie, median 12, mean 400, max 55,628 ratings, 11,015 movies rated
    once; per user, median 86, max 5,561 (heavy users saturate the popular head, so fewer than the real 32k)."""
    rng = np.random.default_rng(seed)
    # Per-movie counts in MovieLens-25M: median about 6, mean 400, the most rated 81,491 (0.33% of all ratings).
    popularity = rng.lognormal(1.8, 2.9, n_movies)
    for _ in range(3):  # cap the head at MovieLens' top share; capping shrinks the total, so repeat
        popularity = np.minimum(popularity, 0.0033 * popularity.sum())
    # Per-user counts in MovieLens-25M: at least 20, median about 70, a few users with thousands.
    activity = 20 + rng.lognormal(np.log(51), 1.39, n_users)
    movie_cdf, user_cdf = np.cumsum(popularity / popularity.sum()), np.cumsum(activity / activity.sum())

    def draw_users(size):
        return np.minimum(np.searchsorted(user_cdf, rng.random(size)), n_users - 1).astype(np.int64)

    def draw_movies(size):
        return np.minimum(np.searchsorted(movie_cdf, rng.random(size)), n_movies - 1).astype(np.int64)

    # Every movie and every user rates or is rated at least once, as in the real table: one forced pair each.
    forced = np.unique(np.concatenate([draw_users(n_movies) * n_movies + np.arange(n_movies),
                                       np.arange(n_users) * n_movies + draw_movies(n_users)]))
    keys = forced
    while len(keys) < n_ratings:  # a few rounds: redraw what deduplication removed
        draw = int((n_ratings - len(keys)) * 1.3) + 1000
        keys = np.unique(np.concatenate([keys, draw_users(draw) * n_movies + draw_movies(draw)]))
    optional = np.setdiff1d(keys, forced, assume_unique=True)
    keys = np.sort(np.concatenate([forced, rng.choice(optional, size=n_ratings - len(forced), replace=False)]))
    # MovieLens-25M's ids: users 1..162541, movies a sorted subset of 1..209171 (ids are not contiguous there).
    movie_ids = np.sort(rng.choice(np.arange(1, int(n_movies * 3.35) + 1), size=n_movies, replace=False))
    stars = np.arange(1, 11, dtype=np.float32) / 2
    return {
        "user_id": keys // n_movies + 1,
        "movie_id": movie_ids[keys % n_movies],
        "rating": rng.choice(stars, size=n_ratings, p=STAR_SHARE / STAR_SHARE.sum()).astype(np.float32),
        "timestamp": rng.integers(789_652_009, 1_574_327_703, n_ratings),
    }


def synthetic_texts(n: int, seed: int = 0) -> list[str]:
    from modeling_elm.data.movielens.behavioural import movie_text

    rng = np.random.default_rng(seed)
    return [movie_text(" ".join(rng.choice(WORDS, rng.integers(1, 5))).title(), int(rng.integers(1920, 2020)),
                       list(rng.choice(GENRES, rng.integers(1, 4), replace=False)),
                       list(rng.choice(TAGS, rng.integers(0, 6), replace=False)))
            for _ in range(n)]


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(step: str, folder: Path, settings: dict) -> dict:
    """One measured step, in this (fresh) process: seconds, and peak RSS after imports, inputs and the call."""
    if step == "prepare":
        return {"seconds": prepare(folder, settings["size"], settings)}
    if step == "ours":
        import pandas as pd

        from modeling_elm.data.movielens.behavioural import behavioural_embeddings

        imports = peak_mib()
        arrays = np.load(folder / "ratings.npz")
        ratings = pd.DataFrame({name: arrays[name] for name in arrays.files}, copy=False)  # no second copy
        inputs = peak_mib()
        start = time.perf_counter()
        result = behavioural_embeddings(ratings, progress=False, **settings)
        shapes = [list(result.user_vectors.shape), list(result.movie_vectors.shape)]
    elif step == "direct":
        import scipy.sparse as sp
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        imports = peak_mib()
        matrix = sp.load_npz(folder / "matrix.npz").tocsr()
        inputs = peak_mib()
        start = time.perf_counter()
        with threadpool_limits(1, "blas"):  # as implicit itself asks; our wrapper does the same
            model = AlternatingLeastSquares(factors=settings["dim"], regularization=settings["regularization"],
                                            alpha=1.0, iterations=settings["iterations"],
                                            random_state=settings["seed"], num_threads=settings["num_threads"])
            model.fit(matrix, show_progress=False)
        shapes = [list(model.user_factors.shape), list(model.item_factors.shape)]
    else:  # semantic
        from modeling_elm.data.embeddings import load_encoder, semantic_embeddings

        encoder = load_encoder()
        imports = peak_mib()
        texts = synthetic_texts(settings["texts"])
        semantic_embeddings(texts[:64], encoder, progress=False)  # warm-up: first-call allocations, not the rate
        inputs = peak_mib()
        start = time.perf_counter()
        shapes = [list(semantic_embeddings(texts, encoder, progress=False).shape)]
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_mib": peak_mib(), "imports_mib": imports, "inputs_mib": inputs - imports,
            "call_mib": peak_mib() - inputs, "shapes": shapes}


def run_child(step: str, folder: Path, settings: dict) -> dict:
    command = [sys.executable, __file__, "--child", step, "--folder", str(folder), "--settings", json.dumps(settings)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def prepare(folder: Path, size: dict, settings: dict) -> float:
    """Writes the synthetic ratings and their prebuilt CSR matrix; returns the generation time."""
    import pandas as pd
    import scipy.sparse as sp

    from modeling_elm.data.movielens.behavioural import _coordinates, _csr

    start = time.perf_counter()
    arrays = synthetic_ratings(size["ratings"], size["users"], size["movies"])
    seconds = time.perf_counter() - start
    np.savez(folder / "ratings.npz", **arrays)
    rows, cols, values, users, movies = _coordinates(pd.DataFrame(arrays), settings["weighting"], settings["alpha"])
    sp.save_npz(folder / "matrix.npz", _csr(rows, cols, values, (len(users), len(movies))), compressed=False)
    return seconds


def main():
    from modeling_elm.scripts import command_parser

    parser = command_parser(__doc__, "bench_embeddings", prog="benchmarks/bench_embeddings.py")
    parser.add_argument("--quick", action="store_true", help="1M ratings, one repeat, 500 texts: a smoke run")
    parser.add_argument("--repeats", type=int, default=None, help="(a)/(b) pairs, interleaved (default 2; quick 1)")
    parser.add_argument("--texts", type=int, default=None, help="texts to encode for (c) (default 5000; quick 500)")
    parser.add_argument("--all_texts", "--all-texts", action="store_true",
                        help="encode one text per movie instead of a sample")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, Path(args.folder), json.loads(args.settings))))
        return

    size = QUICK if args.quick else FULL
    repeats = args.repeats or (1 if args.quick else 2)
    n_texts = size["movies"] if args.all_texts else min(args.texts or (500 if args.quick else 5000), size["movies"])
    settings = dict(dim=args.dim, regularization=0.05, iterations=args.iterations, seed=0, num_threads=0)
    ours_settings = settings | dict(alpha=1.0, weighting="signed")
    with tempfile.TemporaryDirectory(prefix="bench_embeddings_") as tmp:
        folder = Path(tmp)
        # Every step, generation included, runs in a child: ru_maxrss carries a parent's RSS across fork + exec,
        # so this parent stays small (numpy only) to keep each child's peak its own.
        print(f"Generating {size['ratings']:,} synthetic ratings...", file=sys.stderr, flush=True)
        generation = run_child("prepare", folder, ours_settings | {"size": size})["seconds"]
        ours, direct = [], []
        for repeat in range(repeats):
            for name, runs, step_settings in (("ours", ours, ours_settings), ("direct", direct, settings)):
                print(f"  repeat {repeat + 1}/{repeats}: {name}...", file=sys.stderr, flush=True)
                runs.append(run_child(name, folder, step_settings))
                print(f"    {runs[-1]}", file=sys.stderr, flush=True)
        print(f"  semantic: {n_texts:,} texts...", file=sys.stderr, flush=True)
        semantic = run_child("semantic", folder, {"texts": n_texts})
    report(args, size, settings, generation, ours, direct, semantic, n_texts)


def cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def report(args, size, settings, generation, ours, direct, semantic, n_texts):
    import os

    import implicit
    import sentence_transformers
    import torch

    ours_s = statistics.median(r["seconds"] for r in ours)
    direct_s = statistics.median(r["seconds"] for r in direct)
    rate = n_texts / semantic["seconds"]
    all_texts_s = size["movies"] / rate

    def memory(runs):
        worst = max(runs, key=lambda r: r["peak_mib"])
        return (f"{worst['peak_mib']:,.0f} MiB | {worst['imports_mib']:,.0f} + {worst['inputs_mib']:,.0f} "
                f"+ {worst['call_mib']:,.0f} MiB")

    command = "benchmarks/bench_embeddings.py" + (" --quick" if args.quick else "")
    print(f"\nCommand: `.venv/bin/python {command}`")
    print(f"Machine: {cpu_name()} ({platform.machine()}), {os.cpu_count()} cores, no GPU in use; "
          f"Python {platform.python_version()}, numpy {np.__version__}, implicit {implicit.__version__}, "
          f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}")
    print(f"Input: {size['ratings']:,} synthetic ratings, {size['users']:,} users, {size['movies']:,} movies "
          f"(generated in {generation:.0f} s); ALS dim {settings['dim']}, {settings['iterations']} iterations, "
          f"regularization {settings['regularization']}, all cores; {len(ours)} interleaved pair(s) of (a) and (b), "
          f"medians. Each step runs in its own process; its peak RSS (ru_maxrss) splits into the peak after imports "
          f"(modeling_elm pulls in transformers and torch), what loading its inputs added, and what the call added.\n")
    print("| step | time | peak RSS | imports + inputs + call | note |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| (a) `behavioural_embeddings` | {duration(ours_s)} | {memory(ours)} | "
          f"DataFrame -> id maps, weighting, CSR, ALS |")
    print(f"| (b) `implicit` ALS, direct | {duration(direct_s)} | {memory(direct)} | same CSR, prebuilt; ALS only |")
    pairs = ", ".join(f"{o['seconds']:.1f}/{d['seconds']:.1f}" for o, d in zip(ours, direct))
    print(f"| (a) / (b) | **{ours_s / direct_s:.3f}** | | | target <= 1.1; each pair (a)/(b) in s: {pairs} |")
    texts = f"{n_texts:,} movie texts" if n_texts == size["movies"] else f"{n_texts:,} of {size['movies']:,} texts"
    note = "every movie, measured" if n_texts == size["movies"] else (
        f"all {size['movies']:,}: about {duration(all_texts_s)}, **extrapolated** from the sample, not measured")
    print(f"| (c) MiniLM, {texts} | {duration(semantic['seconds'])} ({rate:.0f} texts/s) | {memory([semantic])} "
          f"| {note} |")
    print(f"| (a) + (c) for every movie | about {duration(ours_s + all_texts_s)} | | | ratings -> both tables |")


if __name__ == "__main__":
    main()
