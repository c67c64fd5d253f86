"""Does a recipe teach the model to read its vectors, and how fast? Candidates side by side, against the controls.

    .venv/bin/python benchmarks/bench_reading.py --candidates k1 k4 k4-std          # validation movies, seed 0
    .venv/bin/python benchmarks/bench_reading.py --candidates k4-std --seeds 0 1     # two seeds for a finalist
    .venv/bin/python benchmarks/bench_reading.py --candidates k4-std --final         # once, on the test movies
    .venv/bin/python benchmarks/bench_reading.py --candidates k1 --quick             # smoke run, a minute or two
    .venv/bin/python benchmarks/bench_reading.py --list                              # what each candidate changes
    .venv/bin/python benchmarks/bench_reading.py --candidates wordnet-300 --validation_entities 400   # your own data

Every candidate trains under the same budget, counted in steps and rows (not seconds, so runs compare across a
drifting machine), through the real entry points: `train.py --config <recipe> ...` then
`python -m modeling_elm.scripts.evaluate`. Candidates are chosen on validation movies carved out of the *training*
movies (their rows leave the training set); `--final` scores the chosen one once on the corpus' test movies. Each row:
teacher-forced NLL of the references under the real and the shuffled vector with the paired gap, genre F1 and
decade accuracy of the generated answers against the constant guess, hits@10 and MRR of the true movie by SC among
all movies, SC real / shuffled / reference, answers without a repeated content word, seconds of training.
Rows are appended to `--results` (JSON lines); the Markdown table of all rows there is printed at the end.

Your own data is benchmarked the same way: a candidate whose recipe has a `data:` section trains on the corpus
train.py would build from it, with validation entities of its first space carved from the training ones; its rows
add, per task, hits@1 by likelihood among 10 held-out entities, the NLL gap, and SC against the shuffled vector, the
untrained adapter and the best constant answer (the table printed second).
"""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MEASURED_LR = "2e-3"  # the stage-1 learning rate candidates that state none were measured at (the recipes' before)


def read_candidates(path: Path = ROOT / "benchmarks" / "candidates.yaml") -> dict:
    """{name: candidate}: the live candidates, as data (benchmarks/candidates.yaml says what each field means)."""
    import yaml

    candidates = yaml.safe_load(path.read_text())
    for name, candidate in candidates.items():
        candidate.setdefault("train", [])
        if not candidate.get("help"):
            raise SystemExit(f"{path}: candidate {name!r} has no help line saying what it measures.")
    return candidates


CANDIDATES = read_candidates()
METRICS = ("nll", "sc", "hits@1", "hits@10", "mrr", "genre_f1", "decade_accuracy", "repeat_free", "no_invented_title",
           "bc_rated")


def corpus_for(tasks: list[str], detail: str, **options) -> Path:
    from modeling_elm.data.movielens.build import MovieLensConfig, build_corpus

    return build_corpus(MovieLensConfig(source="ml-latest-small", tasks=tasks, detail=detail, evaluate_embeddings=False,
                                     **options))


def carve_validation(corpus: Path, counts: dict[str, int], seed: int, out: Path) -> Path:
    """A copy of `corpus` whose `test` split holds the rows of `counts[kind]` *training* entities of each kind (movies
    and users, or your own data's first space), removed from `train`.

    The corpus' real test entities are marked `heldout` in the copy, so nothing tuned here ever looks at them.
    """
    import pandas as pd

    from modeling_elm.data.corpus import ENTITIES_DIR, VECTORS_DIR, load_task_splits, save_task_splits

    if (out / "manifest.json").is_file():
        return out
    rng = np.random.default_rng(seed)
    tables = {path.stem: pd.read_parquet(path) for path in sorted((corpus / ENTITIES_DIR).glob("*.parquet"))}
    chosen = {}
    for kind, n in counts.items():
        table = tables[kind]
        train_ids = table.loc[table["split"] == "train", "id"].to_numpy()
        chosen[kind] = set(rng.choice(train_ids, size=min(n, len(train_ids)), replace=False).tolist()) if n else set()
    tasks = load_task_splits(corpus)
    columns = {kind: tasks["train"][f"{kind}_ids"] for kind in chosen}
    about_chosen = [any(i in chosen[kind] for kind in chosen for i in (columns[kind][row] or []))
                    for row in range(len(tasks["train"]))]
    keep = [i for i, hit in enumerate(about_chosen) if not hit]
    val = [i for i, hit in enumerate(about_chosen) if hit]
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    save_task_splits(partial, {"train": tasks["train"].select(keep), "test": tasks["train"].select(val)})
    shutil.copytree(corpus / VECTORS_DIR, partial / VECTORS_DIR)
    (partial / ENTITIES_DIR).mkdir()
    for kind, table in tables.items():
        split = np.where(table["id"].isin(chosen.get(kind, set())), "test",
                         np.where(table["split"] == "test", "heldout", "train"))
        table.assign(split=split).to_parquet(partial / ENTITIES_DIR / f"{kind}.parquet", index=False)
    if (corpus / "concepts").is_dir():
        shutil.copytree(corpus / "concepts", partial / "concepts")
    manifest = json.loads((corpus / "manifest.json").read_text())
    manifest["validation_of"] = str(corpus)
    manifest["counts"]["rows"] = {"train": len(keep), "test": len(val)}
    (partial / "manifest.json").write_text(json.dumps(manifest, indent=2))
    partial.rename(out)
    return out


def run(command: list[str], log: Path) -> float:
    started = time.perf_counter()
    with log.open("w") as handle:
        done = subprocess.run(command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command[:4])} ... failed (exit {done.returncode}); see {log}")
    return time.perf_counter() - started


def bench_one(name: str, seed: int, args) -> dict:
    candidate = CANDIDATES[name]
    if candidate.get("requires"):  # a curriculum's first step: the other candidate's model, same seed
        from modeling_elm.checkpoints import read_marker

        first = Path(args.workdir) / f"{candidate['requires']}-s{seed}" / "model"
        if read_marker(first) is None:
            raise RuntimeError(f"{name} continues from {candidate['requires']}'s model: run --candidates "
                               f"{candidate['requires']} --seeds {seed} first (same --workdir).")
    recipe = candidate.get("recipe", "recipes/quick.yaml")
    where = Path(args.workdir) / f"{name}-s{seed}{'-final' if args.final else ''}"
    if where.exists():
        shutil.rmtree(where)
    where.mkdir(parents=True)
    if args.evaluate_only:  # a model trained elsewhere, scored on the test split of the corpus it trained on
        from modeling_elm.checkpoints import read_marker, trained_corpus

        marker = read_marker(args.evaluate_only) or {}
        try:
            corpus = trained_corpus(args.evaluate_only)
        except ValueError as error:
            raise SystemExit(f"{error} Is it a trained ELM folder?") from None
        (where / "model").symlink_to(Path(args.evaluate_only).resolve())
        train_s = sum(stage.get("seconds", 0) for stage in (marker.get("stages") or {}).values())
    else:
        corpus, recipe = training_corpus(candidate, recipe, where, args)
        from_recipe = candidate.get("from_recipe") and not args.quick  # the recipe's own steps, rows and precision
        if from_recipe:
            settings = _recipe(recipe)
            steps = {"stage1_steps": settings["stage1_max_steps"], "stage2_steps": settings["stage2_max_steps"]}
        else:
            steps = {"stage1_steps": args.stage1_steps, "stage2_steps": args.stage2_steps,
                     **({} if args.quick else candidate.get("budget", {}))}  # a smoke run stays one
        budget = ["--stage1_max_steps", str(steps["stage1_steps"]), "--stage2_max_steps", str(steps["stage2_steps"])]
        if not from_recipe:  # stated either way: train.py picks bf16 by itself on CPUs with bf16 units
            budget += ["--per_device_train_batch_size", str(args.batch_size),
                       "--bf16", "true" if args.bf16 else "false"]
        options = train_options(candidate, args.workdir, seed)
        train_s = run([sys.executable, "train.py", "--config", recipe, "--corpus_path", str(corpus),
                       "--output_dir", str(where / "model"), "--seed", str(seed), "--save_steps", "100000",
                       "--report_to", "none", "--disable_tqdm", "true", *budget, *options], where / "train.log")
    # your own data has no constant guess of facts: the untrained adapter is its floor beside the shuffled vector
    controls = ["shuffled"] if json.loads((Path(corpus) / "manifest.json").read_text())["kind"] == "movielens" \
        else ["shuffled", "untrained"]
    eval_cmd = [sys.executable, "-m", "modeling_elm.scripts.evaluate", "--model", str(where / "model"),
                "--corpus", str(corpus),
                "--max_examples", str(args.eval_movies), "--controls", *controls, "--curves", "false",
                "--output_dir", str(where / "eval"), "--seed", str(seed), "--dtype", args.eval_dtype]
    run(eval_cmd, where / "eval.log")
    results = json.loads((where / "eval" / "results.json").read_text())
    return row_of(name, seed, results, train_s, args, steps if not args.evaluate_only else None)


def training_corpus(candidate: dict, recipe: str, where: Path, args) -> tuple[Path, str]:
    """(corpus folder, recipe to train with): the candidate's corpus, with validation entities carved from the training
    ones unless --final. Your own files are built as train.py would build them, MovieLens from the recipe's tasks and
    the candidate's options; a recipe with a `data:` section is then trained from a copy that names the built folder
    in its place."""
    settings = _recipe(recipe)
    if "data" in settings and "movielens" not in settings["data"]:
        from modeling_elm.data.byo import DataConfig, build_byo_corpus

        data = {**settings["data"], **candidate.get("data", {})}
        for spec in data["spaces"].values():  # relative to the repository, as train.py reads the recipe
            spec["path"] = str(ROOT / spec["path"]) if not Path(spec["path"]).is_absolute() else spec["path"]
        if data.get("texts") and not Path(data["texts"]).is_absolute():
            data["texts"] = str(ROOT / data["texts"])
        corpus = build_byo_corpus(DataConfig.from_dict(data))
        anchor = next(iter(data["spaces"]))
        if not args.final:
            corpus = carve_validation(corpus, {anchor: args.validation_entities}, 1234,
                                      corpus.with_name(f"{corpus.name}-validation-{args.validation_entities}"))
    else:
        tasks = candidate.get("tasks") or list(movielens_options(settings)["tasks"])
        corpus = corpus_for(tasks, "brief", **{**_recipe_corpus(recipe), **candidate.get("corpus", {})})
        if not args.final:
            n_users = args.validation_users if "user_profile" in tasks else 0
            # the counts name the folder: another --validation_entities must not reuse a carve of another size
            suffix = "" if args.validation_entities == 150 else f"-{args.validation_entities}m"  # 150: the rows so far
            corpus = carve_validation(corpus, {"movie": args.validation_entities, "user": n_users}, 1234,
                                      corpus.with_name(f"{corpus.name}-validation{suffix}-{n_users}u"))
    if "data" in settings:  # the corpus built here replaces the recipe's data section
        import yaml

        settings = {key: value for key, value in settings.items() if key != "data"}
        (where / "recipe.yaml").write_text(yaml.safe_dump({**settings, "corpus_path": str(corpus)}))
        recipe = str(where / "recipe.yaml")
    return corpus, recipe


def train_options(candidate: dict, workdir: str, seed: int) -> list[str]:
    """The candidate's train.py options; a stage-1 learning rate it does not state is pinned to the one its row was
    measured at, so rows stay reproducible after the recipes' default moved to 4e-3."""
    options = [option.format(workdir=workdir, seed=seed) for option in candidate["train"]]
    if "--stage1_learning_rate" not in options and not candidate.get("from_recipe"):
        options += ["--stage1_learning_rate", MEASURED_LR]
    return options


def _recipe(recipe: str) -> dict:
    import yaml

    return yaml.safe_load((ROOT / recipe).read_text())


def movielens_options(settings: dict) -> dict:
    """A recipe's MovieLens options: its `data: movielens:` section (or, in the older form, its top level)."""
    return (settings.get("data") or {}).get("movielens") or settings


def _recipe_corpus(recipe: str) -> dict:
    """The corpus options a recipe sets beyond tasks and detail (e.g. `titles`), so its candidates train on its data."""
    options = movielens_options(_recipe(recipe))
    return {key: options[key] for key in ("titles",) if key in options}


def row_of(name, seed, results, train_s, args, steps: dict | None = None) -> dict:
    """One table row: means over the evaluated tasks, each with its condition."""
    options = CANDIDATES[name]["train"]
    bf16 = args.bf16 or ("--bf16" in options and options[options.index("--bf16") + 1] == "true")

    def mean(condition, metric, source=None):
        tasks = (source or results["tasks"]).values()
        values = [t[condition][metric]["mean"] for t in tasks if condition in t and metric in t[condition]]
        return float(np.mean(values)) if values else None

    gaps = [g["nll"] for g in results["gap_real_minus_shuffled"].values() if "nll" in g]
    constant = {t: {"c": v} for t, v in results.get("constant_guess", {}).get("tasks", {}).items()}
    row = {"candidate": name, "seed": seed, "split": "test" if args.final else "validation",
           "budget": (f"{steps['stage1_steps']}+{steps['stage2_steps']} steps x {args.batch_size} rows"
                      f"{', bf16' if bf16 else ''}") if steps else "its recipe's",
           "train_s": round(train_s), "n": min(t["real"]["nll"]["n"] for t in results["tasks"].values()),
           "nll_gap": gaps[0] if len(gaps) == 1 else {"mean": float(np.mean([g["mean"] for g in gaps])),
                                                      "low": float("nan"), "high": float("nan")}}
    for metric in METRICS:
        for condition in ("real", "shuffled", "untrained", "reference"):
            row[f"{metric}_{condition}"] = mean(condition, metric)
        row[f"{metric}_constant"] = mean("c", metric, constant)
    if results["tasks"] and all("hits@1" in t["real"] for t in results["tasks"].values()):  # your own data: per task
        row["tasks"] = {task: {"hits@1": t["real"]["hits@1"]["mean"], "nll_gap": results["gap_real_minus_shuffled"]
                               [task]["nll"], **{f"sc_{c}": (t.get(c, {}).get("sc") or {}).get("mean")
                                                 for c in ("real", "shuffled", "untrained", "reference")},
                               "sc_constant": (constant.get(task, {}).get("c", {}).get("sc") or {}).get("mean")}
                        for task, t in results["tasks"].items()}
    return row


def table(rows: list[dict]) -> str:
    def f(x, digits=3):
        return "–" if x is None or x != x else f"{x:.{digits}f}"

    lines = ["| candidate | split, seed | NLL real / shuffled | paired gap [95% CI] | genre F1 (const.) | "
             "decade acc (const.) | hits@10 | MRR | SC real / shuffled / ref | BC real / shuffled / ref | no repeat | "
             "no invented title | train s |", "| --- |" + " --- |" * 12]
    for r in rows:
        gap = r["nll_gap"]
        lines.append(
            f"| {r['candidate']} | {r['split']}, {r['seed']} | {f(r['nll_real'])} / {f(r['nll_shuffled'])} | "
            f"{f(gap['mean'])} [{f(gap['low'])}, {f(gap['high'])}] | "
            f"{f(r['genre_f1_real'])} ({f(r['genre_f1_constant'])}) | "
            f"{f(r['decade_accuracy_real'])} ({f(r['decade_accuracy_constant'])}) | {f(r['hits@10_real'])} | "
            f"{f(r['mrr_real'])} | {f(r['sc_real'])} / {f(r['sc_shuffled'])} / {f(r['sc_reference'])} | "
            f"{f(r.get('bc_rated_real'))} / {f(r.get('bc_rated_shuffled'))} / {f(r.get('bc_rated_reference'))} | "
            f"{f(r['repeat_free_real'], 2)} | {f(r['no_invented_title_real'], 2)} | {r['train_s']} |")
    return "\n".join(lines)


def task_rows_table(rows: list[dict]) -> str:
    """Your own data's rows, per task: hits@1 by likelihood among the candidates, the NLL gap, SC and its controls."""
    def f(x):
        return "–" if x is None or x != x else f"{x:.3f}"

    lines = ["| candidate | split, seed | task | hits@1 | NLL gap [95% CI] | "
             "SC real / shuffled / untrained / constant / ref | train s |", "| --- |" + " --- |" * 6]
    for r in rows:
        for task, t in r["tasks"].items():
            gap = t["nll_gap"]
            lines.append(f"| {r['candidate']} | {r['split']}, {r['seed']} | {task} | {f(t['hits@1'])} | "
                         f"{f(gap['mean'])} "
                         f"[{f(gap['low'])}, {f(gap['high'])}] | {f(t['sc_real'])} / {f(t['sc_shuffled'])} / "
                         f"{f(t['sc_untrained'])} / {f(t['sc_constant'])} / {f(t['sc_reference'])} | {r['train_s']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    from modeling_elm.scripts import command_parser

    parser = command_parser(__doc__, "bench_reading", prog="benchmarks/bench_reading.py")
    parser.add_argument("--candidates", nargs="+", default=["k1", "k4"], choices=sorted(CANDIDATES), metavar="NAME",
                        help="candidates to train and score (see --list)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--final", action="store_true", help="score on the corpus' test movies (once, at the end)")
    parser.add_argument("--stage1_steps", type=int, default=100, help="stage-1 steps of every candidate")
    parser.add_argument("--stage2_steps", type=int, default=5, help="stage-2 steps of every candidate")
    parser.add_argument("--batch_size", type=int, default=16, help="rows per step")
    parser.add_argument("--bf16", action="store_true", help="train every candidate with bf16 autocast (also on CPU)")
    parser.add_argument("--eval_dtype", default="float32", choices=["float32", "bfloat16", "auto"], help=(
        "the dtype answers are generated and scored in (float32: as every row before bf16 inference was measured)"))
    parser.add_argument("--evaluate_only", default=None, metavar="MODEL",
                        help="score an already trained model (e.g. the main job's) instead of training; with --final, "
                             "on every test movie")
    parser.add_argument("--validation_entities", "--validation_movies", type=int, default=150, help=(
        "training entities (movies, or your data's first space) carved out for choosing"))
    parser.add_argument("--validation_users", type=int, default=60, help=(
        "training users carved out for choosing, when a candidate trains user profiles"))
    parser.add_argument("--eval_movies", "--eval_entities", type=int, default=150, help=(
        "entities scored per task (all: a large number)"))
    parser.add_argument("--quick", action="store_true", help="smoke run: 4 + 1 steps, 8 movies")
    parser.add_argument("--workdir", default="/tmp/elm-bench-reading", help="models and logs of each run")
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "reading.jsonl"),
                        help="JSON lines every run appends to")
    parser.add_argument("--list", action="store_true", help="list the candidates and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, c in CANDIDATES.items():
            print(f"{name:16s} {c['help']}")
        return 0
    if args.evaluate_only and (not args.final or len(args.candidates) != 1):
        parser.error("--evaluate_only scores one trained model on the test movies: pass --final and one candidate "
                     "name for the row (a model trained on every training movie must not be scored on validation).")
    if args.quick:
        args.stage1_steps, args.stage2_steps, args.eval_movies = 4, 1, 8
        args.results = str(Path(args.workdir) / "quick.jsonl")
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    for name in args.candidates:
        for seed in args.seeds:
            print(f"== {name} (seed {seed}): {CANDIDATES[name]['help']}", flush=True)
            try:
                row = bench_one(name, seed, args)
            except RuntimeError as error:  # a failed candidate is a row too: the table keeps failures
                row = {"candidate": name, "seed": seed, "failed": str(error)}
            with results.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    if any("failed" not in r and "tasks" not in r for r in rows):
        print(table([r for r in rows if "failed" not in r and "tasks" not in r]))
    if any("tasks" in r for r in rows):
        print(task_rows_table([r for r in rows if "failed" not in r and "tasks" in r]))
    for r in rows:
        if "failed" in r:
            print(f"failed: {r['candidate']} seed {r['seed']}: {r['failed']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
