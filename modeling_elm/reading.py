"""Stage 0's input statistics: each adapter standardises its vectors by the training vectors' mean and spread.

A recipe option (`standardize_inputs`); docs/results.md measures it against the shuffled-vector control, next to the
levers that did not pay and were removed (self-distillation, a ridge-regression warm start).
"""

import numpy as np


def training_vectors(train_split, space: str, max_rows: int = 20_000) -> np.ndarray:
    """The vectors of `space` that a seeded sample of training rows carries, stacked (n, dim)."""
    sample = train_split.shuffle(seed=0).select(range(min(max_rows, len(train_split))))
    stacked = [np.asarray(v, dtype=np.float32) for v in sample[f"{space}_vectors"] if len(v)]
    return np.concatenate(stacked) if stacked else np.empty((0, 0), np.float32)


def standardize_adapters(model, train_split) -> None:
    """Set every adapter's input statistics from the training rows' vectors of its space."""
    for name, adapter in model.model.adapters.items():
        adapter.standardize(training_vectors(train_split, name))
