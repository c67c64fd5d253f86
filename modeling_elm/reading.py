"""What stage 0 does to make a model read its vectors sooner: input statistics, a closed-form first guess of the
adapter, and the entity texts that self-distillation and the warm start learn from.

Each is a recipe option (`standardize_inputs`, `warm_start`, `distill_weight`); docs/results.md measures which pay.
"""

import json
import logging
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger(__name__)


def entity_texts(corpus_folder: Path) -> dict[str, dict[str, str]]:
    """{space: {id: the text its vector was made from}}: MovieLens movies have one; your own data has one when its
    space sets `text_column`."""
    import pandas as pd

    folder = Path(corpus_folder)
    if (folder / "movies.parquet").is_file():
        table = pd.read_parquet(folder / "movies.parquet", columns=["movie_id", "text"])
        return {"movie": dict(zip(table["movie_id"].astype(str), table["text"]))}
    manifest = json.loads((folder / "manifest.json").read_text()) if (folder / "manifest.json").is_file() else {}
    texts = {}
    for space, spec in (manifest.get("config") or {}).get("spaces", {}).items():
        if spec.get("text_column"):
            table = pd.read_parquet(folder / "entities" / f"{space}.parquet", columns=["id", spec["text_column"]])
            texts[space] = dict(zip(table["id"].astype(str), table[spec["text_column"]].astype(str)))
    if not texts:
        raise ValueError(f"distill_weight and warm_start need the text each vector was made from; {folder} has none. "
                         "For your own data set `text_column:` on the space in the recipe's data section, or turn "
                         "both off.")
    return texts


def _sample(train_split, max_rows: int):
    return train_split.shuffle(seed=0).select(range(min(max_rows, len(train_split))))


def training_vectors(train_split, space: str, max_rows: int = 20_000) -> np.ndarray:
    """The vectors of `space` that a seeded sample of training rows carries, stacked (n, dim)."""
    stacked = [np.asarray(v, dtype=np.float32) for v in _sample(train_split, max_rows)[f"{space}_vectors"] if len(v)]
    return np.concatenate(stacked) if stacked else np.empty((0, 0), np.float32)


def vectors_with_texts(train_split, space: str, texts: dict[str, str], max_rows: int = 20_000):
    """(vectors (n, dim), texts) of the distinct training entities of `space` that have a text."""
    sample = _sample(train_split, max_rows)
    id_column = f"{space}_ids" if f"{space}_ids" in sample.column_names else "ids"
    found: dict[str, list] = {}
    for ids, vectors in zip(sample[id_column], sample[f"{space}_vectors"]):
        if ids and len(ids) == len(vectors):  # one vector per id (not a blend of two)
            for entity, vector in zip(ids, vectors):
                if str(entity) in texts:
                    found.setdefault(str(entity), vector)
    return np.asarray(list(found.values()), dtype=np.float32), [texts[i] for i in found]


@torch.no_grad()
def warm_start_adapter(adapter, vectors: np.ndarray, texts: list[str], tokenizer, token_embeddings: torch.Tensor,
                       ridge: float = 1.0) -> float:
    """Fit the adapter's output layer in closed form so each entity's k soft tokens start at its text's token
    embeddings (the text cut into k consecutive pieces, each piece's mean embedding).

    The hidden layer keeps its random weights, so this is ridge regression on random features: the first guess
    points every soft token toward the words the vector was made from. Returns the fit's R^2 on those entities.
    """
    k, width = adapter.num_tokens, adapter.lm_hidden_size
    if len(vectors) < 2:
        raise ValueError(f"warm_start needs at least 2 training entities with a text, got {len(vectors)}.")
    targets = []
    for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        ids = (ids * k)[: max(k, len(ids))] if len(ids) < k else ids  # a short text still fills k pieces
        targets.append(torch.cat([token_embeddings[piece].float().mean(0)
                                  for piece in np.array_split(np.asarray(ids), k)]))
    targets = torch.stack(targets)  # (n, k * width)
    inputs = torch.as_tensor(vectors, dtype=torch.float32)
    hidden = adapter.act(adapter.fc1((inputs - adapter.input_mean) / adapter.input_std)).float()
    hidden_mean, target_mean = hidden.mean(0), targets.mean(0)
    centred_h, centred_t = hidden - hidden_mean, targets - target_mean
    gram = centred_h.T @ centred_h + ridge * torch.eye(hidden.shape[1])
    weight = torch.linalg.solve(gram, centred_h.T @ centred_t)  # (h, k * width)
    adapter.fc2.weight.copy_(weight.T.to(adapter.fc2.weight))
    adapter.fc2.bias.copy_((target_mean - hidden_mean @ weight).to(adapter.fc2.bias))
    residual = centred_t - centred_h @ weight
    return float(1 - residual.pow(2).sum() / centred_t.pow(2).sum().clamp_min(1e-12))


def prepare_adapters(model, tokenizer, elm_args, train_split, corpus_folder) -> None:
    """Stage 0's optional steps, in order: standardise inputs, then warm-start (which sees standardised inputs)."""
    adapters = model.model.adapters
    if elm_args.standardize_inputs:
        for name, adapter in adapters.items():
            adapter.standardize(training_vectors(train_split, name))
    if elm_args.warm_start:
        texts = entity_texts(corpus_folder)
        embeddings = model.get_input_embeddings().weight
        for name, adapter in adapters.items():
            if name in texts:
                vectors, entity_text = vectors_with_texts(train_split, name, texts[name])
                fit = warm_start_adapter(adapter, vectors, entity_text, tokenizer, embeddings)
                logger.info("Warm start of the %r adapter on %d entities: R^2 %.3f", name, len(vectors), fit)
