"""Evaluation for your own data (a `data:` corpus): the proof that the vector is read needs no text encoder.

- `nll`: teacher-forced NLL of the held-out reference under the real vector and under another entity's (shuffled);
- `hits@1`, `hits@5`, `mrr` by likelihood: the reference is scored under its own vector and `candidates - 1` other
  held-out entities' vectors; the rank of its own is the retrieval metric (chance: hits@1 = 1 / candidates);
- `sc`, when the space's vectors came from a sentence encoder (`encoder:` in the data section): the generated text,
  re-embedded, against the vector; with the references as the ceiling and the shuffled vector as the control.
- probes: texts or vector arithmetic ("king - man + woman") embedded with that encoder and described by the model.
"""

import json
import re
from pathlib import Path

import numpy as np

from .metrics import bootstrap_ci, derangement, rank_metrics, semantic_consistency


def vector_from_expression(expression: str, encoder) -> np.ndarray:
    """'king - man + woman' -> emb(king) - emb(man) + emb(woman); a plain word or phrase -> its embedding.
    Terms are separated by ' + ' or ' - ' with spaces, so hyphenated words stay whole."""
    from ..data.embeddings import semantic_embeddings

    tokens = re.split(r"\s+([+-])\s+", expression.strip())
    words, signs = tokens[0::2], ["+"] + tokens[1::2]
    vectors = semantic_embeddings(words, encoder, progress=False)
    return np.asarray(sum(v if sign == "+" else -v for sign, v in zip(signs, vectors)), dtype=np.float32)


def evaluate_byo(ev_args, folder: Path, marker: dict) -> dict:
    from ..data.embeddings import load_encoder
    from .evaluate import control_vectors, sample_task_rows, summarise
    from ..data.vector_store import load_task_splits, load_vector_tables, row_vectors
    from ..inference import default_batch_size, generate_texts, load_elm, load_processor, pick_device
    from .nll import reference_nll

    manifest = json.loads((folder / "manifest.json").read_text())
    device = pick_device(ev_args.device)
    if ev_args.batch_size is None:
        ev_args.batch_size = default_batch_size(device)
    model = load_elm(ev_args.model, device)
    processor = load_processor(ev_args.model, marker)
    split = load_task_splits(folder)[ev_args.split]
    tables = load_vector_tables(folder, manifest)
    spaces = list(manifest["spaces"])
    anchor = spaces[0]
    encoder_name = manifest.get("encoders", {}).get(anchor)
    encoder = load_encoder(encoder_name, device=str(device)) if encoder_name else None
    rng = np.random.default_rng(ev_args.seed)
    results = {"version": 1, "model": ev_args.model, "revision": ev_args.revision, "corpus": str(folder),
               "split": ev_args.split, "encoder": encoder_name,
               "settings": {k: v for k, v in vars(ev_args).items()}, "tasks": {}, "gap_real_minus_shuffled": {},
               "samples": []}
    for task, rows in sample_task_rows(split, ev_args.tasks, ev_args.max_examples, rng, ev_args.split).items():
        prompts, targets = [r["prompt"] for r in rows], [r["target"] for r in rows]
        vectors = [row_vectors(r, tables) for r in rows]
        shuffled = control_vectors(vectors, "shuffled", ev_args.seed)
        per_row = {"real": {}, "shuffled": {}, "reference": {}}
        score = lambda v, d: reference_nll(model, processor, prompts, targets, v, ev_args.batch_size, desc=d)  # noqa: E731
        per_row["real"]["nll"], per_row["shuffled"]["nll"] = score(vectors, f"{task}: NLL"), score(shuffled, f"{task}: NLL shuffled")
        single = all(len(v.get(anchor, [])) == 1 and len(v) == 1 for v in vectors)
        if single:  # retrieval by likelihood among held-out entities
            n_candidates = min(ev_args.candidates, len(rows))
            nll = np.stack([per_row["real"]["nll"]] + [
                score([vectors[j] for j in derangement(len(rows), ev_args.seed + shift)], f"{task}: candidates {shift}")
                for shift in range(1, n_candidates)], axis=1)
            ranks = (nll <= nll[:, :1]).sum(axis=1)
            per_row["real"].update(rank_metrics(ranks, ks=(1, 5)))
        texts = {"real": generate_texts(model, processor, prompts, vectors, ev_args.batch_size,
                                        ev_args.max_new_tokens, desc=f"{task}: real"),
                 "shuffled": generate_texts(model, processor, prompts, shuffled, ev_args.batch_size,
                                            ev_args.max_new_tokens, desc=f"{task}: shuffled"),
                 "reference": targets}
        if encoder is not None and single:
            from ..data.embeddings import semantic_embeddings

            sources = np.stack([v[anchor][0] for v in vectors])
            for condition, condition_texts in texts.items():
                per_row[condition]["sc"] = semantic_consistency(
                    semantic_embeddings(condition_texts, encoder, progress=False), sources)
        results["tasks"][task] = {c: summarise(v, ev_args.seed) for c, v in per_row.items() if v}
        results["gap_real_minus_shuffled"][task] = {
            m: bootstrap_ci(np.asarray(per_row["real"][m]) - np.asarray(per_row["shuffled"][m]), seed=ev_args.seed)
            for m in per_row["shuffled"]}
        results["samples"] += [{"task": task, "ids": [i for s in spaces for i in rows[k][f"{s}_ids"]], "prompt": prompts[k],
                                **{c: texts[c][k] for c in texts}} for k in range(min(3, len(rows)))]
    if ev_args.probes and encoder is not None:
        # the first evaluated task whose prompt takes one vector (the samples hold one prompt per row)
        prompt = next((s["prompt"] for s in results["samples"] if s["prompt"].count(manifest["placeholders"][anchor]) == 1
                       and len(s["ids"]) == 1), None)
        if prompt is None:
            raise ValueError("--probes needs a task whose prompt takes a single vector; none was evaluated.")
        probe_vectors = [{anchor: vector_from_expression(p, encoder)[None]} for p in ev_args.probes]
        answers = generate_texts(model, processor, [prompt] * len(ev_args.probes), probe_vectors,
                                 ev_args.batch_size, ev_args.max_new_tokens, desc="probes")
        results["probes"] = [{"input": p, "prompt": prompt, "answer": a} for p, a in zip(ev_args.probes, answers)]
    return results
