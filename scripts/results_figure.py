"""Draw the figure at the top of docs/results.md: one reading benchmark row (a trained model on its held-out
entities) against its controls, from benchmarks/results/reading.jsonl.

    .venv/bin/python scripts/results_figure.py                     # the main job on the 337 test movies
    .venv/bin/python scripts/results_figure.py --candidate k16-std-lr4e-3-bf16-560 --split test --output fig.png
"""

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEASURES = {"genre_f1": "genre F1", "decade_accuracy": "decade right", "sc": "semantic consistency",
            "hits@10": "hits@10 (of 2,245)"}
CONDITIONS = {"real": "ELM, its vector", "shuffled": "ELM, another movie's vector", "constant": "best constant answer",
              "reference": "reference texts"}


def read_row(path: Path, candidate: str, split: str, seed: int) -> dict:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    found = [r for r in rows if r["candidate"] == candidate and r["split"] == split and r["seed"] == seed]
    if not found:
        raise SystemExit(f"No row for {candidate} ({split}, seed {seed}) in {path}; run benchmarks/bench_reading.py "
                         f"--candidates {candidate} --final first.")
    return found[-1]


def draw(row: dict, output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    width = 0.8 / len(CONDITIONS)
    figure, axis = plt.subplots(figsize=(8, 3.2))
    x = np.arange(len(MEASURES))
    for i, (condition, label) in enumerate(CONDITIONS.items()):
        values = [row.get(f"{measure}_{condition}") or 0.0 for measure in MEASURES]
        bars = axis.bar(x + (i - 1.5) * width, values, width, label=label)
        axis.bar_label(bars, fmt="%.2f", fontsize=7)
    axis.set_xticks(x, list(MEASURES.values()))
    axis.set_ylim(0, 1.12)
    axis.set_title(f"{row['n']} held-out movies: does the model read the vector?", fontsize=10)
    axis.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    figure.tight_layout()
    figure.savefig(output, dpi=120)


def main(argv=None) -> int:
    from modeling_elm.scripts import command_parser

    parser = command_parser(__doc__, "results_figure", prog="scripts/results_figure.py")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "reading.jsonl")
    parser.add_argument("--candidate", default="k16-std-lr4e-3-bf16-560", help="the main job's candidate")
    parser.add_argument("--split", default="test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "figures" / "main-job-test.png")
    args = parser.parse_args(argv)
    draw(read_row(args.results, args.candidate, args.split, args.seed), args.output)
    print(args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
