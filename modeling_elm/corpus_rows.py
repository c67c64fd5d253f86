"""Task rows of the corpus: one row per (entity, task), vectors gathered with numpy and stored as Arrow lists.

At MovieLens-25M scale a split has ~1.5M rows; building the vector columns through Python lists would cost tens of
GB, so the columns are assembled from flat numpy buffers and offsets instead.
"""

import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from .grounded import GroundedWriter
from .tasks import Task, get_tasks


def make_writer(config):
    if config.writer == "grounded":
        return GroundedWriter(config.detail, titles=config.titles)
    from .teacher import TeacherWriter

    return TeacherWriter(model=config.teacher_model, endpoint=config.teacher_endpoint,
                         cache_path=config.folder() / "teacher_cache.jsonl")


def vector_column(vectors: list[np.ndarray], counts: np.ndarray, dim: int) -> pa.Array:
    """Rows with `counts[i]` vectors each (0, 1 or 2), from the stacked (sum(counts), dim) float32 buffer."""
    flat = np.concatenate([v.reshape(-1, dim) for v in vectors]) if vectors else np.empty((0, dim), np.float32)
    inner = pa.FixedSizeListArray.from_arrays(pa.array(flat.astype(np.float32).ravel()), dim)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), inner.cast(pa.list_(pa.float32())))


def id_column(ids: list[list[str]]) -> pa.Array:
    return pa.array(ids, type=pa.list_(pa.string()))


def _task_table(task: Task, anchors: np.ndarray, tables, writer, config) -> pa.Table:
    movie_dim, user_dim = tables.movie_vectors.shape[1], tables.user_vectors.shape[1]
    n = len(anchors)
    movie_ids = tables.movies["movie_id"].astype(str).to_numpy()
    user_ids = tables.users["user_id"].astype(str).to_numpy()
    if task.kind == "user":
        entities = [[tables.user_facts[u]] for u in anchors]
        movie_vectors, movie_counts, movie_id_lists = [], np.zeros(n, np.int64), [[] for _ in anchors]
        user_vectors, user_counts = [tables.user_vectors[anchors]], np.ones(n, np.int64)
        user_id_lists = [[user_ids[u]] for u in anchors]
    else:
        user_vectors, user_counts, user_id_lists = [], np.zeros(n, np.int64), [[] for _ in anchors]
        if task.kind == "one-movie":
            entities = [[tables.movie_facts[a]] for a in anchors]
            movie_vectors, movie_counts = [tables.movie_vectors[anchors]], np.ones(n, np.int64)
            movie_id_lists = [[movie_ids[a]] for a in anchors]
        else:
            partners = tables.neighbours[anchors, 0]
            entities = [[tables.movie_facts[a], tables.movie_facts[b]] for a, b in zip(anchors, partners)]
            movie_id_lists = [[movie_ids[a], movie_ids[b]] for a, b in zip(anchors, partners)]
            first, second = tables.movie_vectors[anchors], tables.movie_vectors[partners]
            if task.interpolates:  # the paper's interpolation: one vector, halfway between the two movies
                movie_vectors, movie_counts = [(first + second) / 2], np.ones(n, np.int64)
            else:  # (n, 2, dim): each row's two vectors in placeholder order
                movie_vectors, movie_counts = [np.stack([first, second], axis=1)], np.full(n, 2, np.int64)
    targets = writer.write_many(task, entities)
    return pa.table({
        "task": pa.array([task.name] * n),
        "kind": pa.array([task.kind] * n),
        "prompt": pa.array([task.prompt] * n),
        "target": pa.array(targets),
        "movie_ids": id_column(movie_id_lists),
        "movie_vectors": vector_column(movie_vectors, movie_counts, movie_dim),
        "user_ids": id_column(user_id_lists),
        "user_vectors": vector_column(user_vectors, user_counts, user_dim),
    })


def build_task_splits(config, tables):
    """The corpus' `DatasetDict`: train and test, split by entity."""
    import datasets

    writer = make_writer(config)
    tasks = get_tasks(config.tasks)
    splits = {}
    for split in ("train", "test"):
        movie_anchors = np.flatnonzero(tables.movies["split"].to_numpy() == split)
        user_anchors = np.flatnonzero(tables.users["split"].to_numpy() == split)
        pieces = [
            _task_table(task, user_anchors if task.kind == "user" else movie_anchors, tables, writer, config)
            for task in tqdm(tasks, desc=f"Writing {split} targets", unit="task")
        ]
        splits[split] = datasets.Dataset(pa.concat_tables(pieces))
    return datasets.DatasetDict(splits)
