"""Teacher-forced NLL of reference texts under given vectors: the likelihood half of every evaluation."""

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence
from tqdm.auto import tqdm

from ..data.tokenization import batch_vectors, tokenize_rows
from ..data.vector_table import VectorTable


def score_batch(rows: list[dict], vectors: dict[str, torch.Tensor], pad_token_id: int) -> dict:
    """Tokenised rows -> a right-padded batch with labels on the targets and the vectors gathered. Scoring needs no
    packing, so plain padding does (the training collator, TRL's, would make evaluation depend on TRL)."""
    ids = [torch.as_tensor(row["input_ids"]) for row in rows]
    labels = [torch.cat([torch.full((row["prompt_length"],), -100), i[row["prompt_length"]:]])
              for row, i in zip(rows, ids)]
    batch = {"input_ids": pad_sequence(ids, batch_first=True, padding_value=pad_token_id),
             "attention_mask": pad_sequence([torch.ones_like(i) for i in ids], batch_first=True, padding_value=0),
             "labels": pad_sequence(labels, batch_first=True, padding_value=-100)}
    gathered = batch_vectors(rows, vectors)
    if gathered:
        batch["vectors"] = gathered
    return batch


@torch.no_grad()
def reference_nll(model, processor, prompts: list[str], targets: list[str], vectors: list[dict | None],
                  batch_size: int = 16, desc: str = "Scoring") -> np.ndarray:
    """Per example, the mean negative log-likelihood per token of `target` given the prompt and its vectors."""
    import datasets

    # The given vectors become one ad-hoc table per space, each example's slots naming its own rows.
    columns, vector_tables = {"task": ["eval"] * len(prompts), "prompt": prompts, "target": targets}, {}
    for space, spec in model.config.embedding_spaces.items():
        per_example = [np.asarray((v or {}).get(space, np.zeros((0, spec["dim"]))), np.float32).reshape(-1, spec["dim"])
                       for v in vectors]
        starts = np.cumsum([0] + [len(v) for v in per_example])
        columns[f"{space}_slots"] = [[[str(k)] for k in range(a, b)] for a, b in zip(starts[:-1], starts[1:])]
        vector_tables[space] = VectorTable(range(starts[-1]), np.concatenate(per_example), space)
    rows = tokenize_rows(datasets.Dataset.from_dict(columns), processor, vector_tables, None)
    vector_sources = {space: torch.as_tensor(table.vectors) for space, table in vector_tables.items()}
    model.eval()
    nll = np.zeros(len(rows))
    for start in tqdm(range(0, len(rows), batch_size), desc=desc, unit="batch", leave=False):
        batch = score_batch([rows[i] for i in range(start, min(start + batch_size, len(rows)))], vector_sources,
                            processor.tokenizer.pad_token_id)
        labels = batch.pop("labels").to(model.device)
        batch = {k: ({s: t.to(model.device) for s, t in v.items()} if isinstance(v, dict) else
                     v.to(model.device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
        logits = model(**batch).logits[:, :-1].float()
        target = labels[:, 1:]
        losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, ignore_index=-100,
                                                   reduction="none")
        counts = (target != -100).sum(dim=1).clamp(min=1)
        nll[start: start + len(counts)] = (losses.sum(dim=1) / counts).cpu().numpy()
    return nll

