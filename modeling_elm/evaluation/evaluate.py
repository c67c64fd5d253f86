"""Evaluate an ELM on held-out entities: does it read its vectors, and how well?

    python -m modeling_elm.evaluate --model checkpoints/elm-quick            # the main job's checkpoint
    python -m modeling_elm.evaluate --model user/elm-movielens --corpus <corpus folder> --max_examples 200

For every task of the corpus' test split, the model answers about each held-out entity under several conditions:
the real vector; controls that should do worse if and only if the model reads the vector (another entity's vector,
`shuffled`; a random vector of the same norm, `random`; the untrained stage-0 adapter, `untrained`); the text-only
baseline (the base LM and the trained one given "Title (year)" instead of the vector); the reference targets
(ceiling) and the constant guess (the most common text / genres / decade). Metrics: semantic consistency (SC, the
paper's), the rank of the true movie by that similarity (hits@k, MRR), behavioural consistency (BC, user
profiles), stated-fact precision / recall, teacher-forced NLL of the references, and curves for hypothetical
vectors (interpolation, concept moves). Means carry 95% bootstrap intervals; real-minus-shuffled gaps are paired.
Writes `results.json` (schema in docs/evaluation.md), `report.md` and PNG plots into `--output_dir`.
"""

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..data.vector_store import row_vectors
from .metrics import (
    behavioural_consistency, bootstrap_ci, constant_guesses, derangement, fact_scores, invents_title, rank_metrics,
    repeats_content_word, retrieval_ranks, semantic_consistency,
)

logger = logging.getLogger(__name__)
RESULTS_VERSION = 1
CONTROLS = ("shuffled", "random", "untrained", "text_only")


@dataclass
class EvalArguments:
    model: str = field(default="checkpoints/elm-quick", metadata={"help": "trained ELM: folder or Hub id"})
    revision: str | None = field(default=None, metadata={"help": "Hub revision (a commit hash pins it)"})
    corpus: str | None = field(default=None, metadata={"help": (
        "corpus folder; default: the one the model was trained on (recorded in its elm_stage.json)")})
    split: str = field(default="test", metadata={"help": "corpus split: 'test' holds entities never trained on"})
    tasks: list[str] | None = field(default=None, metadata={"help": "tasks to evaluate; default: all in the split"})
    max_examples: int = field(default=64, metadata={"help": "held-out entities per task (seeded sample)"})
    controls: list[str] = field(default_factory=lambda: list(CONTROLS), metadata={"help": (
        f"controls to run, among {', '.join(CONTROLS)}")})
    curves: bool = field(default=True, metadata={"help": "interpolation and concept-move curves"})
    curve_examples: int = field(default=8, metadata={"help": "movies (pairs) per curve point"})
    batch_size: int | None = field(default=None, metadata={"help": (
        "generation and scoring batch size; default: 64 on a GPU, 16 on the CPU")})
    device: str | None = field(default=None, metadata={"help": (
        "where the models and the encoder run: cuda, cuda:1, mps, cpu; default: the GPU when there is one "
        "(in bf16), else the CPU (float32)")})
    max_new_tokens: int = field(default=40, metadata={"help": "tokens generated per answer"})
    candidates: int = field(default=10, metadata={"help": (
        "your own data: vectors the reference is scored under for hits@k by likelihood (its own + others)")})
    probes: list[str] | None = field(default=None, metadata={"help": (
        "your own data with a sentence-encoder space: texts or arithmetic ('king - man + woman') to describe")})
    judge_model: str | None = field(default=None, metadata={"help": (
        "optional LLM judge in place of human raters: a local causal LM (Hub id or folder)")})
    judge_endpoint: str | None = field(default=None, metadata={"help": (
        "optional LLM judge: an OpenAI-compatible / TGI URL, or a Hub model id for Inference Providers")})
    bc_sample: int = field(default=200, metadata={"help": "fixed sample of other movies for behavioural consistency"})
    output_dir: str = field(default="eval", metadata={"help": "where results.json, report.md and plots go"})
    seed: int = field(default=0, metadata={"help": "seed for samples, controls and bootstrap"})

    def __post_init__(self):
        unknown = set(self.controls) - set(CONTROLS)
        if unknown:
            raise ValueError(f"Unknown control(s) {sorted(unknown)}; choose among {list(CONTROLS)}.")


class Evaluation:
    """Everything one evaluation needs loaded once: models, corpus tables, encoder."""

    def __init__(self, args: EvalArguments):
        from ..data.vector_store import load_corpus
        from ..data.embeddings import load_encoder
        from ..checkpoints import read_marker

        from ..inference import default_batch_size, load_elm, load_processor, pick_device

        self.args = args
        self.device = pick_device(args.device)
        if args.batch_size is None:
            args.batch_size = default_batch_size(self.device)
        self.rng = np.random.default_rng(args.seed)
        model_path = Path(args.model)
        marker = (read_marker(model_path) or {}) if model_path.is_dir() else {}
        corpus = args.corpus or marker.get("corpus")
        if not corpus:
            raise ValueError(f"No corpus given and {args.model} does not record one: pass --corpus <folder> "
                             "(`python -m modeling_elm.corpus` prints it).")
        self.corpus = load_corpus(corpus)
        load = dict(revision=args.revision) if args.revision else {}
        self.model = load_elm(args.model, self.device, **load)
        self.processor = load_processor(args.model, marker, **load)
        untrained = model_path / "stage0"
        self.untrained = load_elm(str(untrained), self.device) if untrained.is_dir() else None
        self.encoder_name = self.corpus.manifest["config"].get("encoder")
        self.encoder = load_encoder(self.encoder_name, device=str(self.device))
        movies = self.corpus.movies
        self.movie_index = {str(m): i for i, m in enumerate(movies["movie_id"])}
        self.semantic = np.stack(movies["semantic"].to_numpy())
        self.behavioural = np.stack(movies["behavioural"].to_numpy())
        self.user_index = {str(u): i for i, u in enumerate(self.corpus.users["user_id"])}
        self.judge = None
        if args.judge_model or args.judge_endpoint:
            from .judge import Judge

            self.judge = Judge(args.judge_model, args.judge_endpoint, Path(args.output_dir) / "judge_cache.jsonl")

    def movie_facts(self, movie_id: str):
        from ..data.writers.grounded import MovieFacts

        m = self.corpus.movies.iloc[self.movie_index[movie_id]]
        return MovieFacts(str(m["movie_id"]), str(m["title"]), _year(m["year"]), list(m["genres"]),
                          tags=list(m["tags"]) if m.get("tags") is not None else [],
                          mean_rating=float(m["mean_rating"]), n_ratings=int(m["n_ratings"]))

    def embed(self, texts: list[str]) -> np.ndarray:
        from ..data.embeddings import semantic_embeddings

        return semantic_embeddings(texts, self.encoder, progress=False)

    def generate(self, model, prompts, vectors, desc):
        from ..inference import generate_texts

        return generate_texts(model, self.processor, prompts, vectors, self.args.batch_size, self.args.max_new_tokens,
                              desc=desc)


def control_vectors(vectors: list[dict], kind: str, seed: int) -> list[dict]:
    """`shuffled`: each row gets another row's vectors; `random`: Gaussian vectors with each real vector's norm."""
    if kind == "shuffled":
        return [vectors[j] for j in derangement(len(vectors), seed)]
    rng = np.random.default_rng(seed)
    out = []
    for v in vectors:
        noise = {s: rng.standard_normal(x.shape).astype(np.float32) for s, x in v.items()}
        out.append({s: noise[s] / np.linalg.norm(noise[s], axis=-1, keepdims=True)
                    * np.linalg.norm(x, axis=-1, keepdims=True) for s, x in v.items()})
    return out


def text_only_prompt(prompt: str, titles: list[str]) -> str:
    for title in titles:
        prompt = prompt.replace("<movie>", title, 1)
    return prompt


def summarise(values: dict[str, list], seed: int) -> dict:
    return {name: bootstrap_ci(v, seed=seed) for name, v in values.items()}


def movie_metrics(ev: Evaluation, texts: list[str], movie_ids: list[list[str]]) -> dict:
    """Per-row SC, retrieval ranks (one-movie rows) and stated facts, for generated or reference texts."""
    movies = ev.corpus.movies
    text_vectors = ev.embed(texts)
    rows = [[ev.movie_index[m] for m in ids] for ids in movie_ids]
    sources = np.stack([ev.semantic[r].mean(axis=0) for r in rows])
    values = {"sc": semantic_consistency(text_vectors, sources).tolist()}
    if all(len(r) == 1 for r in rows):
        ranks = retrieval_ranks(text_vectors, ev.semantic, np.array([r[0] for r in rows]))
        values.update({name: v.tolist() for name, v in rank_metrics(ranks, ks=(1, 10)).items()})
    facts = [fact_scores(t, list(movies.iloc[r[0]]["genres"]), _year(movies.iloc[r[0]]["year"]))
             for t, r in zip(texts, rows)]
    for key in ("genre_precision", "genre_recall", "genre_f1", "decade_accuracy"):
        values[key] = [f[key] for f in facts]
    values["repeat_free"] = [float(not repeats_content_word(t)) for t in texts]
    if all(len(r) == 1 for r in rows):
        values["no_invented_title"] = [float(not invents_title(t, str(movies.iloc[r[0]]["title"])))
                                       for t, r in zip(texts, rows)]
    return values


def _year(value):
    import pandas as pd

    return None if value is None or pd.isna(value) else int(value)


def user_metrics(ev: Evaluation, texts: list[str], user_ids: list[list[str]]) -> dict:
    """BC over each user's own rated movies and over one fixed sample of movies, plus profile SC-free checks."""
    users = ev.corpus.users
    profile_vectors = ev.embed(texts)
    sample = np.random.default_rng(ev.args.seed).choice(len(ev.semantic), min(ev.args.bc_sample, len(ev.semantic)),
                                                         replace=False)
    rated, sampled = [], []
    for vector, ids in zip(profile_vectors, user_ids):
        user = users.iloc[ev.user_index[ids[0]]]
        own = [ev.movie_index[str(m)] for m in user["rated_movie_ids"] if str(m) in ev.movie_index]
        rated.append(behavioural_consistency(vector, ev.semantic[own], user["behavioural"], ev.behavioural[own])
                     if len(own) >= 3 else np.nan)
        sampled.append(behavioural_consistency(vector, ev.semantic[sample], user["behavioural"],
                                               ev.behavioural[sample]))
    return {"bc_rated": rated, "bc_sample": sampled}


def evaluate_task(ev: Evaluation, task: str, rows: list[dict]) -> tuple[dict, dict, list]:
    """All conditions of one task: ({condition: {metric: ci}}, {metric: paired real-shuffled ci}, samples)."""
    tables = {space: ev.corpus.vectors[space] for space in ev.model.config.embedding_spaces}
    prompts = [r["prompt"] for r in rows]
    vectors = [row_vectors(r, tables) for r in rows]
    is_user = rows[0]["kind"] == "user"
    ids = [r["user_ids"] if is_user else r["movie_ids"] for r in rows]
    score = (lambda texts: user_metrics(ev, texts, ids)) if is_user else (lambda texts: movie_metrics(ev, texts, ids))
    texts = {"real": ev.generate(ev.model, prompts, vectors, f"{task}: real")}
    for i, kind in enumerate(("shuffled", "random")):
        if kind in ev.args.controls:
            texts[kind] = ev.generate(ev.model, prompts, control_vectors(vectors, kind, ev.args.seed + i), f"{task}: {kind}")
    if "untrained" in ev.args.controls and ev.untrained is not None:
        texts["untrained"] = ev.generate(ev.untrained, prompts, vectors, f"{task}: untrained")
    if "text_only" in ev.args.controls and not is_user and rows[0]["kind"] == "one-movie":
        movies = ev.corpus.movies
        titled = [text_only_prompt(p, [_title(movies.iloc[ev.movie_index[m]]) for m in i]) for p, i in zip(prompts, ids)]
        nones = [None] * len(titled)
        if ev.untrained is not None:
            texts["text_only_base"] = ev.generate(ev.untrained, titled, nones, f"{task}: base LM, title as text")
        texts["text_only_trained"] = ev.generate(ev.model, titled, nones, f"{task}: trained, title as text")
    texts["reference"] = [r["target"] for r in rows]
    per_row = {condition: score(t) for condition, t in texts.items()}
    if ev.judge is not None and rows[0]["kind"] == "one-movie":
        facts = [ev.movie_facts(i[0]) for i in ids]
        for condition in ("real", "shuffled", "reference"):
            if condition in texts:
                judged = ev.judge.score(facts, texts[condition], desc=f"{task}: judging {condition}")
                per_row[condition].update({f"judge_{k}": v.tolist() for k, v in judged.items()})
    results = {condition: summarise(values, ev.args.seed) for condition, values in per_row.items()}
    gaps = {}
    if "shuffled" in per_row:
        for metric in per_row["real"]:
            diff = np.asarray(per_row["real"][metric], float) - np.asarray(per_row["shuffled"][metric], float)
            gaps[metric] = bootstrap_ci(diff, seed=ev.args.seed)
    nll = {"real": vectors}
    if "shuffled" in ev.args.controls:
        nll["shuffled"] = control_vectors(vectors, "shuffled", ev.args.seed)
    from .nll import reference_nll

    nll_rows = {}
    for condition, condition_vectors in nll.items():
        nll_rows[condition] = reference_nll(
            ev.model, ev.processor, prompts, texts["reference"], condition_vectors, ev.args.batch_size,
            desc=f"{task}: NLL {condition}")
        results[condition]["nll"] = bootstrap_ci(nll_rows[condition], seed=ev.args.seed)
    if "shuffled" in nll_rows:  # paired: the same reference under its own vector and another entity's
        gaps["nll"] = bootstrap_ci(nll_rows["real"] - nll_rows["shuffled"], seed=ev.args.seed)
    if ev.untrained is not None and "untrained" in ev.args.controls:
        results["untrained"]["nll"] = bootstrap_ci(reference_nll(
            ev.untrained, ev.processor, prompts, texts["reference"], vectors, ev.args.batch_size,
            desc=f"{task}: NLL untrained"), seed=ev.args.seed)
    samples = [{"task": task, "ids": ids[i], "prompt": prompts[i],
                **{condition: texts[condition][i] for condition in texts}} for i in range(min(3, len(rows)))]
    return results, gaps, samples


def _title(movie) -> str:
    year = _year(movie["year"])
    return f"{movie['title']} ({year})" if year else str(movie["title"])


def constant_baseline(ev: Evaluation, task_rows: dict[str, list[dict]]) -> dict:
    """Scores of the best vector-free answers, per task, with the same metric code as the model's."""
    from collections import Counter

    train = ev.corpus.movies[ev.corpus.movies["split"] == "train"]
    training_rows = ev.corpus.tasks["train"]
    counts = Counter(zip(training_rows["task"], training_rows["target"]))  # one pass over every training target
    commonest = {}
    for (task, target), _ in counts.most_common():
        commonest.setdefault(task, target)
    guess = constant_guesses([list(g) for g in train["genres"]], [_year(y) for y in train["year"]],
                             [counts.most_common(1)[0][0][1]] if counts else [])
    out = {"guess": guess, "tasks": {}}
    for task, rows in task_rows.items():
        if rows[0]["kind"] == "user":
            continue
        ids = [r["movie_ids"] for r in rows]
        text = commonest.get(task, guess["text"])
        values = movie_metrics(ev, [text] * len(rows), ids)
        facts = movie_metrics(ev, [guess["genre_text"]] * len(rows), ids)
        values.update({k: facts[k] for k in ("genre_precision", "genre_recall", "genre_f1", "decade_accuracy")})
        out["tasks"][task] = {"text": text, **summarise(values, ev.args.seed)}
    return out


def sample_task_rows(split, tasks: list[str] | None, max_examples: int, rng, split_name: str) -> dict[str, list[dict]]:
    """Per task, a seeded sample of at most `max_examples` rows of `split` (all tasks in it by default)."""
    by_task: dict[str, list[int]] = {}
    for i, name in enumerate(split["task"]):  # the column is read once, however many tasks
        by_task.setdefault(name, []).append(i)
    sampled = {}
    for task in tasks or sorted(by_task):
        indices = by_task.get(task, [])
        if len(indices) < 2:
            raise ValueError(f"Task {task!r} has {len(indices)} row(s) in split {split_name!r}; need at least 2.")
        chosen = sorted(rng.choice(indices, min(max_examples, len(indices)), replace=False).tolist())
        sampled[task] = [split[int(i)] for i in chosen]
    return sampled


def evaluate(args: EvalArguments) -> dict:
    from ..checkpoints import read_marker

    marker = (read_marker(args.model) or {}) if Path(args.model).is_dir() else {}
    corpus = Path(args.corpus or marker.get("corpus") or "")
    if (corpus / "manifest.json").is_file() and json.loads((corpus / "manifest.json").read_text()).get("kind") == "byo":
        from .byo import evaluate_byo

        results = evaluate_byo(args, corpus, marker)
        results["summary"] = headline(results)
        return results
    ev = Evaluation(args)
    task_rows = sample_task_rows(ev.corpus.tasks[args.split], args.tasks, args.max_examples, ev.rng, args.split)
    results = {"version": RESULTS_VERSION, "model": args.model, "revision": args.revision,
               "corpus": str(ev.corpus.folder), "split": args.split, "encoder": ev.encoder_name or "all-MiniLM-L6-v2",
               "settings": asdict(args), "tasks": {}, "gap_real_minus_shuffled": {}, "samples": []}
    for task, rows in task_rows.items():
        logger.info("Evaluating %s on %d held-out rows", task, len(rows))
        results["tasks"][task], results["gap_real_minus_shuffled"][task], samples = evaluate_task(ev, task, rows)
        results["samples"] += samples
    results["constant_guess"] = constant_baseline(ev, task_rows)
    if ev.judge is not None:
        results["judge"] = ev.judge.name
    if args.curves:
        from .curves import concept_curves, interpolation_curve

        results["curves"] = {"interpolation": interpolation_curve(ev), "concepts": concept_curves(ev)}
    results["summary"] = headline(results)
    return results


def headline(results: dict) -> dict:
    """Means over tasks of the numbers people quote first (the model card reads these)."""
    def mean_of(condition, metric):
        values = [t[condition][metric]["mean"] for t in results["tasks"].values()
                  if condition in t and metric in t[condition]]
        return float(np.mean(values)) if values else None

    return {f"{metric}_{condition}": mean_of(condition, metric)
            for metric in ("sc", "nll", "hits@1", "hits@10", "genre_f1", "bc_sample", "judge_consistent",
                           "judge_well_written")
            for condition in ("real", "shuffled", "random", "untrained", "reference")
            if mean_of(condition, metric) is not None}


def main(argv=None) -> int:
    from transformers import HfArgumentParser

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    parser = HfArgumentParser(EvalArguments, description=__doc__.split("\n\n")[0])
    (args,) = parser.parse_args_into_dataclasses(args=argv)
    results = evaluate(args)
    from .report import write_report

    out = write_report(results, Path(args.output_dir))
    print(f"\nWrote {out / 'results.json'}, {out / 'report.md'} and plots.\n")
    print((out / "report.md").read_text().split("\n## ", 2)[1][:2500])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
