"""Task rows of the corpus: one row per (entity, task), naming the entities whose vectors fill its placeholders.

Rows carry ids, never vectors (see data/corpus.py): at MovieLens-25M scale a split has ~1.5M rows.
"""

import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from .writers.grounded import GroundedWriter
from .tasks import Task, get_tasks
from ..corpus import slot_column


def make_writer(config):
    if config.writer == "grounded":
        return GroundedWriter(config.detail, titles=config.titles)
    from .writers.teacher import TeacherWriter

    return TeacherWriter(model=config.teacher_model, endpoint=config.teacher_endpoint,
                         cache_path=config.folder() / "teacher_cache.jsonl")


def id_column(ids: list[list[str]]) -> pa.Array:
    return pa.array(ids, type=pa.list_(pa.string()))


def _task_table(task: Task, anchors: np.ndarray, entity_tables, writer) -> pa.Table:
    """One row per anchor entity; rows name the ids that fill their placeholders (vectors live in vectors/)."""
    n = len(anchors)
    movie_ids = entity_tables.movies["movie_id"].astype(str).to_numpy()
    user_ids = entity_tables.users["user_id"].astype(str).to_numpy()
    none = [[] for _ in anchors]
    movie_about, movie_slots, user_about, user_slots = none, none, none, none
    if task.kind == "user":
        entities = [[entity_tables.user_facts[u]] for u in anchors]
        user_about = [[user_ids[u]] for u in anchors]
        user_slots = [[[user_ids[u]]] for u in anchors]
    elif task.kind == "one-movie":
        entities = [[entity_tables.movie_facts[a]] for a in anchors]
        movie_about = [[movie_ids[a]] for a in anchors]
        movie_slots = [[[movie_ids[a]]] for a in anchors]
    else:
        partners = entity_tables.neighbours[anchors, 0]
        entities = [[entity_tables.movie_facts[a], entity_tables.movie_facts[b]] for a, b in zip(anchors, partners)]
        movie_about = [[movie_ids[a], movie_ids[b]] for a, b in zip(anchors, partners)]
        if task.interpolates:  # the paper's interpolation: one placeholder, halfway between the two movies
            movie_slots = [[[movie_ids[a], movie_ids[b]]] for a, b in zip(anchors, partners)]
        else:  # two placeholders, one movie each, in prompt order
            movie_slots = [[[movie_ids[a]], [movie_ids[b]]] for a, b in zip(anchors, partners)]
    targets = writer.write_many(task, entities)
    return pa.table({
        "task": pa.array([task.name] * n),
        "kind": pa.array([task.kind] * n),
        "prompt": pa.array([task.prompt] * n),
        "target": pa.array(targets),
        "movie_ids": id_column(movie_about),
        "movie_slots": slot_column(movie_slots),
        "user_ids": id_column(user_about),
        "user_slots": slot_column(user_slots),
    })


def build_task_splits(config, entity_tables) -> dict[str, pa.Table]:
    """The corpus' task rows, {"train": table, "test": table}, split by entity."""
    writer = make_writer(config)
    tasks = get_tasks(config.tasks)
    splits = {}
    for split in ("train", "test"):
        movie_anchors = np.flatnonzero(entity_tables.movies["split"].to_numpy() == split)
        user_anchors = np.flatnonzero(entity_tables.users["split"].to_numpy() == split)
        pieces = [
            _task_table(task, user_anchors if task.kind == "user" else movie_anchors, entity_tables, writer)
            for task in tqdm(tasks, desc=f"Writing {split} targets", unit="task")
        ]
        splits[split] = pa.concat_tables(pieces)
    return splits
