"""Concept moves: which way to move a vector so that a trained ELM reads the concept, side by side on one model.

    .venv/bin/python benchmarks/bench_concepts.py --model checkpoints/elm-quick --curve_examples 24
    .venv/bin/python benchmarks/bench_concepts.py --model checkpoints/elm-paper --concepts all --methods mean_difference

Held-out movies without a genre are moved by s in {0, 0.5, 1, 2, 3} and described, as the evaluation's concept
curves do (`modeling_elm.evaluation.curves.concept_curves`: the three most accurate genre CAVs, the same movies, the
same prompt; `--concepts all`: every genre with at least `--min_movies` movies behind its direction; `--tasks`: ask
each move on these tasks, by default the first one-movie task the model learnt and a review when it learnt one),
under each way of moving (`--methods`):
- `mean_difference`: s times the difference of the class means (`Concept.step`, what `move_along` adds);
- `classifier_normal`: s times the same gap measured along the classifier's unit normal (`Concept.direction`), the
  move before corpus version 6.
Per concept and strength: the share of answers naming the genre, keeping the movie's decade, and both (95%
intervals). Rows are appended to benchmarks/results/concepts.jsonl with the machine and the model's run record;
`--plot` draws both ways side by side (docs/figures/concept-moves.png).
"""

import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modeling_elm.checkpoints import read_marker  # noqa: E402
from modeling_elm.evaluation.curves import concept_curves, concept_prompts, learnt_prompts  # noqa: E402
from modeling_elm.evaluation.evaluate import EvalArguments, Evaluation  # noqa: E402


def along_the_normal(concepts: dict) -> dict:
    """Each concept's step projected on its classifier's normal: the old move, with the old unit (the class gap along
    the normal)."""
    return {name: dataclasses.replace(c, step=float(c.step @ c.direction) * c.direction)
            for name, c in concepts.items()}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(rows), figsize=(5 * len(rows), 3.6), dpi=120, sharey=True, squeeze=False)
    axes = axes[0]
    many = max(len(row["concepts"]) for row in rows) > 5  # then intervals would hide the lines
    for ax, row in zip(axes, rows):
        for name, c in row["concepts"].items():
            points = c["names_genre_keeps_decade"]
            errors = None if many else [[p["mean"] - p["low"] for p in points], [p["high"] - p["mean"] for p in points]]
            ax.errorbar(row["strength"], [p["mean"] for p in points], marker="o", capsize=3, label=name, yerr=errors)
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        ax.set(title=f"{row['method'].replace('_', ' ')}, {row.get('task', 'first task')}", ylim=(-0.03, 1.03),
               xlabel="strength s (steps of the concept)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("names the genre, keeps the decade")
    if many:
        axes[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    else:
        axes[0].legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    from modeling_elm.scripts import command_parser

    parser = command_parser(__doc__, "bench_concepts", prog="benchmarks/bench_concepts.py")
    parser.add_argument("--model", default="checkpoints/elm-quick", help="a trained ELM folder (it names its corpus)")
    parser.add_argument("--curve_examples", type=int, default=24, help="held-out movies per concept and strength")
    parser.add_argument("--device", default=None, help="cpu, cuda, ...; default: the GPU when there is one")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "concepts.jsonl")
    parser.add_argument("--plot", type=Path, help="also draw both ways side by side into this PNG")
    parser.add_argument("--plot_only", action="store_true", help="redraw --plot from the last rows of --output")
    parser.add_argument("--concepts", choices=["top3", "all"], default="top3", help=(
        "the three most accurate genre directions (the evaluation's curves), or every one with --min_movies"))
    parser.add_argument("--min_movies", type=int, default=50, help="--concepts all: movies with the genre, at least")
    parser.add_argument("--tasks", nargs="+", default=None, help=(
        "tasks each move is asked (default: the first one-movie task the model learnt, and a review if it learnt one)"))
    parser.add_argument("--methods", nargs="+", choices=["mean_difference", "classifier_normal"],
                        default=["mean_difference", "classifier_normal"])
    args = parser.parse_args(argv)
    if args.plot_only:
        rows = [json.loads(line) for line in args.output.read_text().splitlines()]
        plot(rows[-2:], args.plot)
        return 0

    ev = Evaluation(EvalArguments(model=args.model, curve_examples=args.curve_examples, controls=[],
                                  device=args.device, output_dir="/tmp/elm-bench-concepts"))
    corpus_concepts = ev.corpus.concepts("movie")
    if args.concepts == "all":
        corpus_concepts = {name: c for name, c in corpus_concepts.items() if c.n_positive >= args.min_movies}
    stages = (read_marker(Path(args.model)) or {}).get("stages", {})
    prompts = learnt_prompts(ev)
    if args.tasks and set(args.tasks) - set(prompts):
        raise SystemExit(f"--tasks {sorted(set(args.tasks) - set(prompts))}: not one-movie tasks this model learnt; "
                         f"choose among {', '.join(prompts)}.")
    tasks = {task: prompts[task] for task in args.tasks} if args.tasks else concept_prompts(ev)
    methods = {"mean_difference": corpus_concepts, "classifier_normal": along_the_normal(corpus_concepts)}
    rows = []
    for (method, concepts), (task, prompt) in ((m, t) for m in methods.items() if m[0] in args.methods
                                               for t in tasks.items()):
        started = time.perf_counter()
        curves = concept_curves(ev, top=3 if args.concepts == "top3" else None, concepts=concepts, prompt=prompt)
        row = {"method": method, "task": task, "model": str(args.model), "curve_examples": args.curve_examples,
               "strength": curves["strength"], "seconds": round(time.perf_counter() - started),
               "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, {ev.device}",
               "model_stages": {k: {"global_step": v.get("global_step")} for k, v in stages.items()},
               "concepts": {name: {key: c[key] for key in ("step_size", "names_genre", "keeps_decade",
                                                           "names_genre_keeps_decade", "example")}
                            for name, c in curves["concepts"].items()}}
        # a concept "moves" when, at some strength, half the answers name it and 70% keep the movie's decade
        row["moves"] = {name: any(n["mean"] >= 0.5 and k["mean"] >= 0.7 for n, k in zip(c["names_genre"],
                                                                                      c["keeps_decade"]))
                        for name, c in curves["concepts"].items()}
        row["share_moving"] = round(sum(row["moves"].values()) / max(1, len(row["moves"])), 3)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        with args.output.open("a") as out:
            out.write(json.dumps(row) + "\n")
        rows.append(row)
        print(f"\n{method}, {task} ({row['seconds']} s): names the genre with the decade kept, s = "
              + " / ".join(map(str, curves["strength"])))
        for name, c in curves["concepts"].items():
            both = " / ".join(f"{p['mean']:.2f}" for p in c["names_genre_keeps_decade"])
            print(f"  {name:<12} {both}   {'moves' if row['moves'][name] else 'stays'} "
                  f"(step {c['step_size']:.3f}; s = 3: {c['example']['texts'][-1]!r})")
        print(f"  {row['share_moving']:.0%} of {len(row['moves'])} concepts move")
    if args.plot:
        plot(rows, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
