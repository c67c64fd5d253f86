"""Stage 0's input statistics: each adapter standardises its vectors by the training vectors' mean and spread.

A recipe option (`standardize_inputs`); docs/results.md measures it against the shuffled-vector control, next to the
levers that did not pay and were removed (self-distillation, a ridge-regression warm start).
"""

import logging

import numpy as np

logger = logging.getLogger(__name__)


def training_vectors(train_split, table, space: str, max_rows: int = 20_000) -> np.ndarray:
    """The vectors of `space` that a seeded sample of training rows reads (`table`: its VectorTable), stacked
    (n, dim): entities weighted by how often rows name them, mixed slots as their mean, as training sees them."""
    sample = train_split.shuffle(seed=0).select(range(min(max_rows, len(train_split))))
    column = f"{space}_slots"
    slots = [slot for row_slots in (sample[column] if column in sample.column_names else []) for slot in row_slots]
    return table.slot_vectors(slots) if slots else np.empty((0, table.dim), np.float32)


def standardize_adapters(model, train_split, vector_tables: dict) -> None:
    """Set every adapter's input statistics from the training rows' vectors of its space. A space no training row
    reads (a users-only MovieLens corpus still declares its movie space) keeps the identity: nothing trains it."""
    for name, adapter in model.model.adapters.items():
        vectors = training_vectors(train_split, vector_tables[name], name)
        if len(vectors) == 0:
            logger.info("No training row reads the %r space: its adapter is not standardised (nor trained).", name)
            continue
        adapter.standardize(vectors)
