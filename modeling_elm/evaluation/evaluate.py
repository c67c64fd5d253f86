"""Evaluate an ELM on held-out entities: does it read its vectors, and how well? One evaluator for every corpus.
(Command: `python -m modeling_elm.scripts.evaluate`.)

For every task of the corpus' test split, the model answers about each held-out entity under several conditions:
the real vector; controls that should do worse if and only if the model reads the vector (another entity's vector,
`shuffled`; a random vector of the same norm, `random`; the untrained stage-0 adapter, `untrained`); the reference
targets (ceiling). Every corpus gets the teacher-forced NLL of the references under each condition, the paired
real-minus-shuffled gaps and, when an encoder made the vectors, semantic consistency (SC, the paper's: the answer
re-embedded against the vector). Your own data adds retrieval by likelihood (hits@k, MRR: the reference scored under
its own vector and `candidates - 1` others) and `--probes`; a MovieLens corpus adds its entity tables' metrics
(evaluation/movielens.py: retrieval by SC, stated facts, BC, the title-as-text baseline, the constant guess, curves for
hypothetical vectors). Means carry 95% bootstrap intervals. Writes `results.json` (schema in docs/evaluation.md),
`report.md` and PNG plots into `--output_dir`.
"""

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..data.corpus import row_vectors
from .metrics import bootstrap_ci, derangement, rank_metrics, semantic_consistency, summarise, unit

logger = logging.getLogger(__name__)
RESULTS_VERSION = 2  # 2: one schema for every corpus (version 1 had a second, smaller one for your own data)
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
        "where the models and the encoder run: cuda, cuda:1, mps, cpu; default: the GPU when there is one, else the "
        "CPU")})
    dtype: str = field(default="auto", metadata={"help": (
        "the models' dtype: auto (bf16 on a GPU with bf16 and on a CPU with bf16 matrix units, AMX or AVX-512 BF16; "
        "float32 elsewhere, and with --server, whose prompt embeddings go out in float32), float32 or bfloat16")})
    max_new_tokens: int | None = field(default=None, metadata={"help": (
        "tokens generated per answer (default: the checkpoint's own decoding length, its generation_config)")})
    server: str | None = field(default=None, metadata={"help": (
        "URL of a vLLM server serving this model's export (modeling_elm.serving): the trained model's answers are "
        "generated there (NLL and the untrained control stay local)")})
    candidates: int = field(default=10, metadata={"help": (
        "your own data: vectors the reference is scored under for hits@k by likelihood (its own + others)")})
    probes: list[str] | None = field(default=None, metadata={"help": (
        "your own data with a sentence-encoder space: texts or arithmetic ('king - man + woman') to describe")})
    judge_model: str | None = field(default=None, metadata={"help": (
        "optional LLM judge in place of human raters: a local causal LM (Hub id or folder)")})
    judge_endpoint: str | None = field(default=None, metadata={"help": (
        "optional LLM judge: an OpenAI-compatible / TGI URL, or a Hub model id for Inference Providers")})
    bc_sample: int = field(default=200, metadata={"help": "fixed sample of other movies for behavioural consistency"})
    output_dir: str | None = field(default=None, metadata={"help": (
        "where results.json, report.md and plots go; default: beside the model, <model folder>-eval (a Hub model: "
        "<repo name>-eval here), so evaluating a second model never replaces the first one's report")})
    seed: int = field(default=0, metadata={"help": "seed for samples, controls and bootstrap"})

    def __post_init__(self):
        unknown = set(self.controls) - set(CONTROLS)
        if unknown:
            raise ValueError(f"Unknown control(s) {sorted(unknown)}; choose among {list(CONTROLS)}.")
        if self.output_dir is None:
            self.output_dir = str(default_output_dir(self.model))


def default_output_dir(model: str) -> Path:
    """`<model folder>-eval` beside a local model; `<repo name>-eval` in the working folder for a Hub id."""
    where = Path(model)
    if where.is_dir():
        where = where if where.name else where.resolve()  # "." or "..": name the folder itself
        return where.with_name(where.name + "-eval")
    return Path(f"{model.rstrip('/').split('/')[-1]}-eval")


class Evaluation:
    """Everything one evaluation needs loaded once: the corpus, the models, the encoder, the corpus' scorer."""

    def __init__(self, args: EvalArguments):
        from ..checkpoints import check_trained_elm, read_marker, trained_corpus
        from ..data.embeddings import load_encoder
        from ..data.corpus import load_corpus
        from ..inference import LoadError, check_weights, default_batch_size, load_elm, pick_device
        from ..model.processing_elm import ElmProcessor

        self.args = args
        self.device = pick_device(args.device)
        if args.batch_size is None:
            args.batch_size = default_batch_size(self.device)
        self.rng = np.random.default_rng(args.seed)
        # Both before "pass --corpus": a wrong --model is the thing to fix. A LoadError, which the CLI prints as is.
        try:
            check_trained_elm(args.model)
        except ValueError as error:
            raise LoadError(str(error)) from None
        check_weights(args.model)
        model_path = Path(args.model)
        marker = (read_marker(model_path) or {}) if model_path.is_dir() else {}
        try:
            corpus = trained_corpus(args.model, args.corpus)
        except ValueError as error:
            raise LoadError(str(error)) from None
        self.corpus = load_corpus(corpus)
        self.marker = marker  # what the model was trained on: its tasks decide the curves' prompts
        load = dict(revision=args.revision) if args.revision else {}
        dtype = "float32" if args.server and args.dtype == "auto" else args.dtype
        self.model = load_elm(args.model, self.device, dtype=dtype, **load)
        self.processor = ElmProcessor.from_pretrained(args.model, **load)
        untrained = model_path / "stage0"
        self.untrained = load_elm(str(untrained), self.device, dtype=dtype) if untrained.is_dir() else None
        self.vector_tables = {space: self.corpus.vectors[space] for space in self.model.config.embedding_spaces}
        self.anchor = next(iter(self.corpus.manifest["spaces"]))  # the space SC, retrieval and probes are about
        self.encoder_name, self.anchor_encoded = self.corpus.text_encoder(self.anchor)
        self.encoder = load_encoder(self.encoder_name, device=str(self.device)) if self.encoder_name else None
        if self.corpus.is_movielens:
            from .movielens import MovieLensScorer

            self.scorer = MovieLensScorer(self)
        else:
            self.scorer = EntityScorer(self)
        self.client = None
        if args.server:
            from ..serving import ElmServingClient

            self.client = ElmServingClient(self.model, self.processor, args.server)
            self.client.served_model  # noqa: B018 - a server that is not there fails now, not after an hour
        self.judge = None
        if args.judge_model or args.judge_endpoint:
            from .judge import Judge

            self.judge = Judge(args.judge_model, args.judge_endpoint, Path(args.output_dir) / "judge_cache.jsonl")

    def embed(self, texts: list[str]) -> np.ndarray:
        from ..data.embeddings import semantic_embeddings

        return semantic_embeddings(texts, self.encoder, progress=False)

    def generate(self, model, prompts, vectors, desc):
        from ..inference import generate_texts

        if self.client is not None and model is self.model:
            return self.client.generate_texts(prompts, vectors, self.args.max_new_tokens)
        return generate_texts(model, self.processor, prompts, vectors, self.args.batch_size, self.args.max_new_tokens,
                              desc=desc)

    def nll(self, model, prompts, targets, vectors, desc) -> np.ndarray:
        from .nll import reference_nll

        return reference_nll(model, self.processor, prompts, targets, vectors, self.args.batch_size, desc=desc)


class EntityScorer:
    """Scores for any (id, vector, text) corpus: SC when an encoder made the vectors (rows about one entity), and
    retrieval by likelihood among held-out entities (needs no encoder)."""

    likelihood_retrieval = True

    def __init__(self, ev: Evaluation):
        self.ev = ev

    def metrics(self, texts: list[str], rows: list[dict]) -> dict[str, list]:
        ev = self.ev
        if ev.encoder is None or not ev.anchor_encoded or not single_entity(rows, ev.anchor):
            return {}
        sources = np.stack([row_vectors(r, ev.vector_tables)[ev.anchor][0] for r in rows])
        return {"sc": semantic_consistency(ev.embed(texts), sources).tolist()}

    def text_only_prompts(self, rows):
        return None  # a title to put in place of the vector is a MovieLens notion

    def judge_facts(self, rows):
        return None

    def after_tasks(self, task_rows: dict, results: dict) -> None:
        by_task: dict[str, list[int]] = {}
        for i, name in enumerate(self.ev.corpus.tasks["train"]["task"]):  # the column read once for every task
            by_task.setdefault(name, []).append(i)
        constant = {task: guess for task, rows in task_rows.items()
                    if (guess := self.constant_guess(task, rows, by_task.get(task, [])))}
        if constant:
            results["constant_guess"] = {"tasks": constant}

    def constant_guess(self, task: str, rows: list[dict], indices: list[int], sample: int = 256) -> dict | None:
        """The best answer that ignores the vector: among a seeded sample of the task's training targets, the one with
        the highest mean SC to the sample's own vectors, scored against the held-out rows' vectors. An answer whose SC
        does not beat it says what the task always says, not what this vector holds. `indices`: the task's rows in the
        training split."""
        ev = self.ev
        if ev.encoder is None or not ev.anchor_encoded or not single_entity(rows, ev.anchor):
            return None
        train = ev.corpus.tasks["train"]
        if len(indices) < 2:
            return None
        chosen = np.random.default_rng(ev.args.seed).choice(indices, min(sample, len(indices)), replace=False)
        train_rows = [train[int(i)] for i in sorted(chosen)]
        texts = [r["target"] for r in train_rows]
        sources = np.stack([row_vectors(r, ev.vector_tables)[ev.anchor][0] for r in train_rows])
        embedded = unit(ev.embed(texts))
        best = int(np.argmax((embedded @ unit(sources).T).mean(axis=1)))
        held_out = np.stack([row_vectors(r, ev.vector_tables)[ev.anchor][0] for r in rows])
        return {"text": texts[best], "sc": bootstrap_ci(unit(held_out) @ embedded[best], seed=ev.args.seed)}


def single_entity(rows: list[dict], space: str) -> bool:
    """Every row is about one entity of `space` and reads that one vector alone."""
    return all(len(r.get(f"{space}_slots") or []) == 1 and len(r[f"{space}_slots"][0]) == 1 and
               sum(len(v or []) for k, v in r.items() if k.endswith("_slots")) == 1 for r in rows)


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


def condition_texts(ev: Evaluation, task: str, rows: list[dict], prompts: list[str], vectors: list[dict]) -> dict:
    """{condition: answers}: the real vector, the controls asked for, and the references."""
    args = ev.args
    texts = {"real": ev.generate(ev.model, prompts, vectors, f"{task}: real")}
    for i, kind in enumerate(("shuffled", "random")):
        if kind in args.controls:
            texts[kind] = ev.generate(ev.model, prompts, control_vectors(vectors, kind, args.seed + i),
                                      f"{task}: {kind}")
    if "untrained" in args.controls and ev.untrained is not None:
        texts["untrained"] = ev.generate(ev.untrained, prompts, vectors, f"{task}: untrained")
    titled = ev.scorer.text_only_prompts(rows) if "text_only" in args.controls else None
    if titled is not None:
        nones = [None] * len(titled)
        if ev.untrained is not None:
            texts["text_only_base"] = ev.generate(ev.untrained, titled, nones, f"{task}: base LM, title as text")
        texts["text_only_trained"] = ev.generate(ev.model, titled, nones, f"{task}: trained, title as text")
    texts["reference"] = [r["target"] for r in rows]
    return texts


def likelihood_nll(ev: Evaluation, task: str, rows, prompts, targets, vectors, per_row: dict) -> None:
    """Adds `nll` per row under the real vector, the shuffled one and the untrained adapter and, where the scorer
    asks for it, hits@k / MRR of the real vector among `candidates` held-out entities' by that likelihood."""
    args = ev.args
    per_row["real"]["nll"] = ev.nll(ev.model, prompts, targets, vectors, f"{task}: NLL real")
    if "shuffled" in args.controls:
        per_row["shuffled"]["nll"] = ev.nll(ev.model, prompts, targets, control_vectors(vectors, "shuffled", args.seed),
                                            f"{task}: NLL shuffled")
    if "untrained" in args.controls and ev.untrained is not None:
        per_row["untrained"]["nll"] = ev.nll(ev.untrained, prompts, targets, vectors, f"{task}: NLL untrained")
    if ev.scorer.likelihood_retrieval and single_entity(rows, ev.anchor) and len(rows) > 1:
        others = [ev.nll(ev.model, prompts, targets, [vectors[j] for j in derangement(len(vectors), args.seed + shift)],
                         f"{task}: candidates {shift}") for shift in range(1, min(args.candidates, len(vectors)))]
        nll = np.stack([per_row["real"]["nll"], *others], axis=1)
        per_row["real"].update({k: v.tolist()
                                for k, v in rank_metrics((nll <= nll[:, :1]).sum(axis=1), ks=(1, 5)).items()})


def evaluate_task(ev: Evaluation, task: str, rows: list[dict]) -> tuple[dict, dict, list]:
    """All conditions of one task: ({condition: {metric: ci}}, {metric: paired real-shuffled ci}, samples)."""
    prompts, targets = [r["prompt"] for r in rows], [r["target"] for r in rows]
    vectors = [row_vectors(r, ev.vector_tables) for r in rows]
    texts = condition_texts(ev, task, rows, prompts, vectors)
    per_row = {condition: ev.scorer.metrics(answers, rows) for condition, answers in texts.items()}
    facts = ev.scorer.judge_facts(rows) if ev.judge is not None else None
    if facts is not None:
        for condition in ("real", "shuffled", "reference"):
            if condition in texts:
                judged = ev.judge.score(facts, texts[condition], desc=f"{task}: judging {condition}")
                per_row[condition].update({f"judge_{k}": v.tolist() for k, v in judged.items()})
    likelihood_nll(ev, task, rows, prompts, targets, vectors, per_row)
    results = {condition: summarise(values, ev.args.seed) for condition, values in per_row.items() if values}
    gaps = {metric: bootstrap_ci(np.asarray(per_row["real"][metric], float)
                                 - np.asarray(per_row["shuffled"][metric], float), seed=ev.args.seed)
            for metric in per_row["real"] if metric in per_row.get("shuffled", {})}
    spaces = list(ev.corpus.manifest["spaces"])
    samples = [{"task": task, "ids": [i for s in spaces for i in (rows[k].get(f"{s}_ids") or [])],
                "prompt": prompts[k], **{condition: texts[condition][k] for condition in texts}}
               for k in range(min(3, len(rows)))]
    return results, gaps, samples


def describe_probes(ev: Evaluation, samples: list[dict]) -> list[dict]:
    """Texts or vector arithmetic, embedded with the corpus' encoder and described with the first evaluated prompt
    that takes one vector of the anchor space."""
    if not ev.anchor_encoded:
        raise ValueError(f"--probes needs the {ev.anchor!r} vectors to come from a sentence encoder (an `encoder:` in "
                         "your data section, or MovieLens' semantic movie space); this corpus' do not.")
    mark = ev.processor.embedding_spaces[ev.anchor]["placeholder"]
    prompt = next((s["prompt"] for s in samples if s["prompt"].count(mark) == 1 and len(s["ids"]) == 1), None)
    if prompt is None:
        raise ValueError("--probes needs a task whose prompt takes a single vector; none was evaluated.")
    from ..data.embeddings import vector_from_expression

    vectors = [{ev.anchor: vector_from_expression(p, ev.encoder)[None]} for p in ev.args.probes]
    answers = ev.generate(ev.model, [prompt] * len(vectors), vectors, "probes")
    return [{"input": p, "prompt": prompt, "answer": a} for p, a in zip(ev.args.probes, answers)]


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
    ev = Evaluation(args)
    task_rows = sample_task_rows(ev.corpus.tasks[args.split], args.tasks, args.max_examples, ev.rng, args.split)
    results = {"version": RESULTS_VERSION, "model": args.model, "revision": args.revision,
               "corpus": str(ev.corpus.folder), "split": args.split, "encoder": ev.encoder_name,
               "settings": asdict(args), "tasks": {}, "gap_real_minus_shuffled": {}, "samples": []}
    for task, rows in task_rows.items():
        logger.info("Evaluating %s on %d held-out rows", task, len(rows))
        results["tasks"][task], results["gap_real_minus_shuffled"][task], samples = evaluate_task(ev, task, rows)
        results["samples"] += samples
    ev.scorer.after_tasks(task_rows, results)
    if ev.judge is not None:
        results["judge"] = ev.judge.name
    if args.probes:
        results["probes"] = describe_probes(ev, results["samples"])
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
