"""One table of (id, vector) per embedding: `<corpus>/vectors/<name>.parquet`, with an id -> row lookup.

Its own module so that what writes tables (the MovieLens build, your own data) and what reads a corpus
(`corpus`) share it without importing each other.
"""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

VECTORS_DIR = "vectors"


class VectorTable:
    """Rows of (id, vector) with an id -> row lookup."""

    def __init__(self, ids, vectors: np.ndarray, name: str = "vectors"):
        self.ids = np.asarray([str(i) for i in ids], dtype=object)
        self.vectors = np.array(vectors, dtype=np.float32, order="C")  # a writable copy (Arrow buffers are not)
        self.name = name
        if self.vectors.ndim != 2 or len(self.vectors) != len(self.ids):
            raise ValueError(f"Table {name!r}: {len(self.ids)} ids but vectors of shape {self.vectors.shape}.")
        self.index = {entity: row for row, entity in enumerate(self.ids)}
        if len(self.index) != len(self.ids):
            raise ValueError(f"Table {name!r}: ids must be unique.")

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self, ids) -> np.ndarray:
        """Row numbers of `ids`; a KeyError names the first unknown id."""
        try:
            return np.fromiter((self.index[str(i)] for i in ids), dtype=np.int64)
        except KeyError as error:
            raise KeyError(f"id {error.args[0]!r} is not in vector table {self.name!r}") from None

    def lookup(self, ids) -> np.ndarray:
        return self.vectors[self.rows(ids)]

    def slot_vectors(self, slots) -> np.ndarray:
        """(len(slots), dim): each slot's vector, the mean of its ids' vectors."""
        if not len(slots):
            return np.empty((0, self.dim), np.float32)
        return np.stack([self.lookup(slot).mean(axis=0) for slot in slots]).astype(np.float32)

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / VECTORS_DIR / f"{self.name}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        flat = pa.array(self.vectors.ravel(), type=pa.float32())
        column = pa.FixedSizeListArray.from_arrays(flat, self.dim)
        pq.write_table(pa.table({"id": pa.array(self.ids.tolist(), pa.string()), "vector": column}), path)
        return path

    @classmethod
    def load(cls, folder: str | Path, name: str) -> "VectorTable":
        path = Path(folder) / VECTORS_DIR / f"{name}.parquet"
        table = pq.read_table(path)
        column = table.column("vector").combine_chunks()
        if isinstance(column.type, pa.FixedSizeListType):
            vectors = column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), column.type.list_size)
        else:
            vectors = np.stack(column.to_numpy(zero_copy_only=False))
        return cls(table.column("id").to_pylist(), vectors, name)
