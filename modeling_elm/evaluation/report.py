"""An evaluation's results as files: results.json (stable, documented in docs/evaluation.md), report.md, PNGs."""

import json
from pathlib import Path

CONDITION_ORDER = ("reference", "real", "shuffled", "random", "untrained", "text_only_base", "text_only_trained")
CONDITION_NAMES = {
    "reference": "reference targets (ceiling)", "real": "ELM, real vector", "shuffled": "ELM, shuffled vector",
    "random": "ELM, random vector", "untrained": "untrained adapter (stage 0)",
    "text_only_base": "base LM, title as text", "text_only_trained": "ELM, title as text (no vector)",
}


def _fmt(ci: dict | None, digits: int = 3) -> str:
    if not ci or ci.get("n", 0) == 0 or ci["mean"] != ci["mean"]:
        return "–"
    return f"{ci['mean']:.{digits}f} [{ci['low']:.{digits}f}, {ci['high']:.{digits}f}]"


def task_table(results: dict) -> list[str]:
    """One row per task: the NLL gap real - shuffled with its interval, SC against its controls, what the answers
    state (genre F1, decade), hits@10, repeat-free and no invented title: the table a multi-task model is read by."""
    def cell(task, condition, metric, digits=3):
        ci = results["tasks"][task].get(condition, {}).get(metric)
        return "–" if not ci or ci["mean"] != ci["mean"] else f"{ci['mean']:.{digits}f}"

    lines = ["| task | n | NLL real / shuffled | gap [95% CI] | SC real / shuffled / references | genre F1 | decade | "
             "hits@1 / @10 | repeat-free (refs) | no invented title |", "| --- |" + " --- |" * 9]
    for task in results["tasks"]:
        gap = results["gap_real_minus_shuffled"].get(task, {}).get("nll")
        n = (results["tasks"][task].get("real", {}).get("nll") or {}).get("n", "–")
        lines.append(
            f"| {task} | {n} | {cell(task, 'real', 'nll')} / {cell(task, 'shuffled', 'nll')} | {_fmt(gap)} | "
            f"{cell(task, 'real', 'sc')} / {cell(task, 'shuffled', 'sc')} / {cell(task, 'reference', 'sc')} | "
            f"{cell(task, 'real', 'genre_f1')} | {cell(task, 'real', 'decade_accuracy')} | "
            f"{cell(task, 'real', 'hits@1')} / {cell(task, 'real', 'hits@10')} | {cell(task, 'real', 'repeat_free')} "
            f"({cell(task, 'reference', 'repeat_free')}) | {cell(task, 'real', 'no_invented_title')} |")
    return lines


def markdown(results: dict) -> str:
    lines = [f"# ELM evaluation: {results['model']}", "",
             f"Corpus `{results['corpus']}`, split `{results['split']}` (entities never seen in training), "
             f"encoder `{results['encoder']}`, {results['settings']['max_examples']} examples per task. "
             "Means with 95% bootstrap intervals." + (f" Judge (in place of human raters, 1-5): `{results['judge']}`."
                                                      if results.get("judge") else ""), "", "## Headline", ""]
    summary = results["summary"]
    lines += ["| metric (mean over tasks) | value |", "| --- | --- |"]
    lines += [f"| {k} | {v:.3f} |" for k, v in summary.items()]
    if len(results["tasks"]) > 1:
        lines += ["", "## Per task", "", *task_table(results)]
    for task, conditions in results["tasks"].items():
        metrics = [m for m in ("nll", "sc", "hits@1", "hits@5", "hits@10", "mrr", "genre_precision", "genre_recall",
                               "genre_f1", "decade_accuracy", "repeat_free", "no_invented_title", "bc_rated",
                               "bc_sample", "judge_consistent", "judge_well_written")
                   if any(m in c for c in conditions.values())]
        lines += ["", f"## {task}", "", "| condition | " + " | ".join(metrics) + " |",
                  "| --- |" + " --- |" * len(metrics)]
        for condition in CONDITION_ORDER:
            if condition in conditions:
                lines.append(f"| {CONDITION_NAMES[condition]} | "
                             + " | ".join(_fmt(conditions[condition].get(m)) for m in metrics) + " |")
        constant = results.get("constant_guess", {}).get("tasks", {}).get(task)
        if constant:
            lines.append("| constant guess | " + " | ".join(_fmt(constant.get(m)) for m in metrics) + " |")
        gap = results["gap_real_minus_shuffled"].get(task)
        if gap:
            lines.append("| **real − shuffled (paired)** | " + " | ".join(_fmt(gap.get(m)) for m in metrics) + " |")
    curves = results.get("curves")
    if curves:
        lines += ["", "## Hypothetical vectors", "",
                  "Interpolation (SC of the description to each end, and genre F1 against each end's genres):", "",
                  "| alpha | SC to A | SC to B | genre F1 to A | genre F1 to B |", "| --- | --- | --- | --- | --- |"]
        inter = curves["interpolation"]
        missing = [None] * len(inter["alpha"])
        lines += [f"| {a} | {_fmt(x)} | {_fmt(y)} | {_fmt(fa)} | {_fmt(fb)} |" for a, x, y, fa, fb in zip(
            inter["alpha"], inter["sc_to_a"], inter["sc_to_b"], inter.get("genre_f1_to_a", missing),
            inter.get("genre_f1_to_b", missing))]
        if "example_midpoint" in inter:
            mid = inter["example_midpoint"]
            lines += ["", f"Halfway between *{mid['a']}* and *{mid['b']}*: “{mid['text']}”"]
        lines += ["", "Concept moves, strength s in the concept's own units (1 = the gap between the means of "
                  "training movies with and without the genre). Classifier P(concept) of the re-embedded description:",
                  "",
                  "| concept | " + " | ".join(f"s={s}" for s in curves["concepts"]["strength"]) + " |",
                  "| --- |" + " --- |" * len(curves["concepts"]["strength"])]
        for name, c in curves["concepts"]["concepts"].items():
            lines.append(f"| {name} (CAV acc {c['accuracy']:.2f}) | " + " | ".join(_fmt(s) for s in c["score"]) + " |")
        for key, what in (("names_genre", "name the genre"), ("keeps_decade", "keep the movie's decade"),
                          ("names_genre_keeps_decade", "name the genre and keep the decade")):
            lines += ["", f"Share of moved answers that {what}:", "",
                      "| concept | " + " | ".join(f"s={s}" for s in curves["concepts"]["strength"]) + " |",
                      "| --- |" + " --- |" * len(curves["concepts"]["strength"])]
            for name, c in curves["concepts"]["concepts"].items():
                if key in c:
                    lines.append(f"| {name} | " + " | ".join(_fmt(s, 2) for s in c[key]) + " |")
        for name, c in curves["concepts"]["concepts"].items():
            if "example" in c:
                moves = "; ".join(f"s={s}: “{t}”"
                                  for s, t in zip(curves["concepts"]["strength"], c["example"]["texts"]))
                lines.append(f"\n*{c['example']['movie']}* moved along {name}: {moves}")
    if results.get("probes"):
        lines += ["", "## Probes (vectors no training row had)", "", "| input | answer |", "| --- | --- |"]
        lines += [f"| `{p['input']}` | {p['answer']} |" for p in results["probes"]]
    lines += ["", "## Samples", ""]
    for sample in results["samples"][:12]:
        lines += [f"**{sample['task']}** {sample['ids']}", ""]
        lines += [f"- {CONDITION_NAMES.get(k, k)}: {sample[k]}" for k in CONDITION_ORDER if k in sample]
        lines.append("")
    return "\n".join(lines) + "\n"


def plot_sc(results: dict, path: Path, metric: str = "sc") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    tasks = [t for t, c in results["tasks"].items() if metric in c.get("real", {})]
    if not tasks:
        return
    conditions = [c for c in CONDITION_ORDER if any(metric in results["tasks"][t].get(c, {}) for t in tasks)]
    width = 0.8 / len(conditions)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(tasks) + 3), 5), dpi=120)
    for k, condition in enumerate(conditions):
        cis = [results["tasks"][t].get(condition, {}).get(metric) for t in tasks]
        means = [c["mean"] if c else np.nan for c in cis]
        errors = [[c["mean"] - c["low"] if c else 0 for c in cis], [c["high"] - c["mean"] if c else 0 for c in cis]]
        ax.bar(np.arange(len(tasks)) + k * width, means, width, yerr=errors, capsize=2,
               label=CONDITION_NAMES[condition])
    ax.set_xticks(np.arange(len(tasks)) + width * (len(conditions) - 1) / 2, tasks, rotation=20)
    ax.set_ylabel({"sc": "semantic consistency", "nll": "reference NLL", "genre_f1": "genre F1 (users: vs favourites)",
                   "bc_rated": "behavioural consistency (rated movies)"}.get(metric, metric))
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.15))  # below: bars stay visible
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_curves(results: dict, folder: Path) -> None:
    curves = results.get("curves")
    if not curves:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    inter = curves["interpolation"]
    panels = [("SC", "sc_to")] + ([("genre F1", "genre_f1_to")] if "genre_f1_to_a" in inter else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5), dpi=120, squeeze=False)
    for ax, (what, prefix) in zip(axes[0], panels):
        for side in ("a", "b"):
            cis = inter[f"{prefix}_{side}"]
            ax.errorbar(inter["alpha"], [c["mean"] for c in cis],
                        yerr=[[c["mean"] - c["low"] for c in cis], [c["high"] - c["mean"] for c in cis]],
                        marker="o", capsize=3, label=f"{what} to movie {side.upper()}")
        ax.set(xlabel="mix a: (1 - a) A + a B", ylabel=what, title=f"Interpolation: {what}")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(folder / "interpolation.png")
    plt.close(fig)
    concepts = curves["concepts"]["concepts"]
    panels = [("score", "P(concept) of the description")] + [
        (key, label) for key, label in (("names_genre", "answers naming the genre"),
                                        ("keeps_decade", "answers keeping the decade"))
        if any(key in c for c in concepts.values())]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.5), dpi=120, squeeze=False)
    for ax, (key, label) in zip(axes[0], panels):
        for name, c in concepts.items():
            if key in c:
                ax.plot(curves["concepts"]["strength"], [s["mean"] for s in c[key]], marker="o", label=name)
        ax.set(xlabel="strength s (steps of the concept's class-mean difference)", ylabel=label, ylim=(-0.03, 1.03))
        ax.grid(alpha=0.3)
        if concepts:
            ax.legend(fontsize=8)
    fig.suptitle("Moving along a concept")
    fig.tight_layout()
    fig.savefig(folder / "concepts.png")
    plt.close(fig)


def write_report(results: dict, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=2, default=float))
    (folder / "report.md").write_text(markdown(results))
    plot_sc(results, folder / "sc_by_task.png")
    plot_sc(results, folder / "nll_by_task.png", metric="nll")
    plot_sc(results, folder / "genre_f1_by_task.png", metric="genre_f1")  # what was read, movies and users alike
    plot_sc(results, folder / "bc_by_task.png", metric="bc_rated")
    plot_curves(results, folder)
    return folder
