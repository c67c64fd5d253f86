"""One model, many tasks: the per-task table of one or more evaluations of it (seeds), checked against the paper
table's targets, and one figure of SC per task (the model's answers against the references', another movie's vector
beside).

    .venv/bin/python benchmarks/task_table.py --results <seed 0>/eval/results.json <seed 1>/eval/results.json \\
        --figure docs/figures/paper-sc-by-task.png

Per task: the paired NLL gap real - shuffled with its 95% interval (per seed), SC real / shuffled / references,
genre F1 and decade where the task's answers state them, hits@10 by SC, answers without a repeated content word
against the references' own rate, and answers without an invented title. Targets checked: the gap's whole interval
below 0 on every task; SC >= references - 0.03; over the one-movie tasks that state them, genre F1 >= 0.75 and
decade >= 0.85; no invented title >= 95%; repeat-free >= the references'.
"""

import json
import sys
from pathlib import Path

import numpy as np

TWO_MOVIE = {"similarities", "interpolation", "why_like_nn", "diff_than_nn", "common_with_nn"}


def mean(results: dict, task: str, condition: str, metric: str) -> float | None:
    ci = results["tasks"][task].get(condition, {}).get(metric)
    return None if not ci or ci["mean"] != ci["mean"] else ci["mean"]


def fmt(values, digits: int = 3) -> str:
    shown = [("–" if v is None else f"{v:.{digits}f}") for v in values]
    return " / ".join(shown)


def rows(runs: list[dict]) -> tuple[list[str], dict]:
    """The Markdown table and, per target, the tasks that meet it (over all seeds: the worse seed decides)."""
    tasks = list(runs[0]["tasks"])
    lines = ["| task | n | NLL gap real - shuffled [95% CI] | SC real | SC shuffled / refs | genre F1 | decade | "
             "hits@10 | repeat-free (refs) | no invented title |", "| --- |" + " --- |" * 9]
    met = {"gap": [], "sc": [], "genre": [], "decade": [], "title": [], "repeat": []}
    stating = {"genre": [], "decade": [], "title": [], "repeat": []}  # the tasks each of those targets applies to
    for task in tasks:
        gaps = [r["gap_real_minus_shuffled"][task]["nll"] for r in runs]
        gap_text = "; ".join(f"{g['mean']:.3f} [{g['low']:.3f}, {g['high']:.3f}]" for g in gaps)
        if all(g["high"] < 0 for g in gaps):
            met["gap"].append(task)
        sc = [mean(r, task, "real", "sc") for r in runs]
        ref = mean(runs[0], task, "reference", "sc")
        if ref is not None and all(s is not None and s >= ref - 0.03 for s in sc):
            met["sc"].append(task)
        values = {}
        for key, metric, floor in (("genre", "genre_f1", 0.75), ("decade", "decade_accuracy", 0.85)):
            values[key] = [mean(r, task, "real", metric) for r in runs]
            stated = mean(runs[0], task, "reference", metric)  # a task whose references state it
            if task not in TWO_MOVIE and stated is not None and stated > 0.5:
                stating[key].append(task)
                if all(v is not None and v >= floor for v in values[key]):
                    met[key].append(task)
        titles = [mean(r, task, "real", "no_invented_title") for r in runs]
        if all(t is not None for t in titles):  # not scored where the prompt names two movies
            stating["title"].append(task)
            if all(t >= 0.95 for t in titles):
                met["title"].append(task)
        repeat = [mean(r, task, "real", "repeat_free") for r in runs]
        repeat_ref = mean(runs[0], task, "reference", "repeat_free")
        if repeat_ref is not None and all(v is not None for v in repeat):
            stating["repeat"].append(task)
            if all(v >= repeat_ref for v in repeat):
                met["repeat"].append(task)
        n = runs[0]["tasks"][task]["real"]["nll"]["n"]
        lines.append(f"| {task} | {n} | {gap_text} | {fmt(sc)} | {fmt([mean(runs[0], task, 'shuffled', 'sc')])} / "
                     f"{fmt([ref])} | {fmt(values['genre'], 2)} | {fmt(values['decade'], 2)} | "
                     f"{fmt([mean(r, task, 'real', 'hits@10') for r in runs], 2)} | {fmt(repeat, 2)} "
                     f"({fmt([repeat_ref], 2)}) | {fmt(titles, 2)} |")
    return lines, {"tasks": tasks, "met": met, "stating": stating}


def targets(check: dict) -> list[str]:
    n, met, stating = len(check["tasks"]), check["met"], check["stating"]

    def missing(key, among):
        return ", ".join(t for t in among if t not in met[key]) or "none"

    return [f"- NLL gap interval wholly below 0: {len(met['gap'])} of {n} tasks "
            f"(not: {missing('gap', check['tasks'])})",
            f"- SC >= references - 0.03: {len(met['sc'])} of {n} (not: {missing('sc', check['tasks'])})",
            f"- genre F1 >= 0.75: {len(met['genre'])} of the {len(stating['genre'])} one-movie tasks whose references "
            f"state genres (not: {missing('genre', stating['genre'])})",
            f"- decade >= 0.85: {len(met['decade'])} of the {len(stating['decade'])} that state a decade (not: "
            f"{missing('decade', stating['decade'])})",
            f"- no invented title >= 95%: {len(met['title'])} of the {len(stating['title'])} tasks it is scored on "
            f"(not: {missing('title', stating['title'])})",
            f"- repeat-free >= the references': {len(met['repeat'])} of {len(stating['repeat'])} (not: "
            f"{missing('repeat', stating['repeat'])})"]


def figure(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(runs[0]["tasks"])[::-1]  # first task on top
    y = np.arange(len(tasks))
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(tasks) + 1.2), dpi=130)
    ax.barh(y, [mean(runs[0], t, "reference", "sc") or 0 for t in tasks], 0.8, color="#d9d9d9",
            label="references")
    ax.scatter([mean(runs[0], t, "shuffled", "sc") for t in tasks], y, marker="|", s=120, color="#999999",
               label="another movie's vector")
    for k, (run, marker) in enumerate(zip(runs, ("o", "s", "^"))):
        ax.scatter([mean(run, t, "real", "sc") for t in tasks], y, marker=marker, s=22, zorder=3,
                   label=f"its own vector (seed {run['settings'].get('seed', k)})")
    ax.set_yticks(y, tasks, fontsize=8)
    ax.set_xlabel("semantic consistency of the answer with the movie (SC)")
    shown = [v for run in runs for t in tasks for c in ("real", "shuffled", "reference")
             if (v := mean(run, t, c, "sc")) is not None]
    ax.set_xlim(min(0.3, min(shown) - 0.02), max(0.75, max(shown) + 0.02))
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> int:
    from modeling_elm.scripts import command_parser

    parser = command_parser(__doc__, "task_table", prog="benchmarks/task_table.py")
    parser.add_argument("--results", nargs="+", type=Path, required=True,
                        help="results.json of evaluations of the same recipe (one per seed)")
    parser.add_argument("--figure", type=Path, default=None, help="also draw SC per task into this PNG")
    args = parser.parse_args(argv)
    runs = [json.loads(path.read_text()) for path in args.results]
    lines, check = rows(runs)
    print("\n".join(lines + [""] + targets(check)))
    if args.figure:
        figure(runs, args.figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
