"""Vectors stored once: a corpus keeps one table of (id, vector) per embedding, and its text rows name ids.

    <corpus>/vectors/<table>.parquet   id (string), vector (float32 list); one row per entity
    <corpus>/tasks/<split>.parquet     task, kind, prompt, target, <space>_ids, <space>_slots
    <corpus>/entities/<kind>.parquet   id (string), label, split, and whatever else the data says about each entity
    <corpus>/manifest.json             "vectors": {space: table}, e.g. {"movie": "movie_semantic", "user": ...};
                                       "prompts": {task: prompt}, the tasks the rows were written for first

`<space>_ids` lists the entities a row is about; `<space>_slots` lists, for each of the space's placeholders in the
prompt (in order), the ids whose vectors fill it: their mean, so one id is that entity and two are the paper's
interpolation midpoint. Copying each vector onto every row that mentions it made the 24-task ml-latest-small
corpus 107 MB for 5 MB of distinct vectors, and the 25M build peak at 17.8 GiB.

Training resolves slots to row numbers of the table once, when it tokenizes (`slot_index`); the collator gathers.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .vector_table import VECTORS_DIR, VectorTable  # noqa: F401 - the corpus format's vector tables

TASKS_DIR = "tasks"
ENTITIES_DIR = "entities"
NAME_COLUMNS = ("word", "name", "title", "lemmas")  # what your own data may call an entity's name, in that order
ABOUT_COLUMNS = ("about", "gloss", "description", "genres")  # a short line on what the entity is
FORMAT = "elm-corpus/3"  # the manifest's "format": rows name ids, vectors in vectors/, entities in entities/, prompts


def load_vector_tables(folder: str | Path, manifest: dict | None = None) -> dict[str, VectorTable]:
    """{space: its VectorTable}, as the corpus manifest maps them."""
    folder = Path(folder)
    manifest = manifest if manifest is not None else json.loads((folder / "manifest.json").read_text())
    check_format(folder, manifest)
    return {space: VectorTable.load(folder, table) for space, table in manifest["vectors"].items()}


KINDS = ("byo", "movielens")  # who built it: your own files (data/byo.py) or the MovieLens recipe (data/movielens/)


def check_format(folder: Path, manifest: dict) -> None:
    if manifest.get("format") != FORMAT or manifest.get("kind") not in KINDS:
        raise ValueError(
            f"{folder} is not a corpus of format {FORMAT!r} (vectors and entities stored once, rows naming ids). "
            "Build it again: "
            "`python -m modeling_elm.scripts.corpus` with the same options, or train.py without --corpus_path, writes "
            "a new folder; pass that one with --corpus to evaluate / describe, or as ELM_CORPUS to the Space.")


def save_task_splits(folder: str | Path, splits: dict) -> None:
    """Each split as compressed Parquet (text compresses ~5x; Arrow files on disk do not)."""
    out = Path(folder) / TASKS_DIR
    if out.is_dir():  # a rebuild: no file of the previous build may survive next to the new ones
        import shutil

        shutil.rmtree(out)
    out.mkdir(parents=True)
    for split, dataset in splits.items():
        table = dataset if isinstance(dataset, pa.Table) else dataset.with_format("arrow")[:]  # honours .select()
        pq.write_table(table, out / f"{split}.parquet", compression="zstd")


def load_task_splits(folder: str | Path) -> "datasets.DatasetDict":  # noqa: F821
    """The task rows, in memory: a DatasetDict of the splits in tasks/*.parquet."""
    import datasets

    out = Path(folder) / TASKS_DIR
    files = sorted(out.glob("*.parquet"))
    if not files:
        raise ValueError(f"{folder}: no task rows in {out} (tasks/<split>.parquet); rebuild the corpus.")
    return datasets.DatasetDict({p.stem: datasets.Dataset(pq.read_table(p)) for p in files})


def slot_column(slots: list[list[list[str]]]) -> pa.Array:
    """Per row, per placeholder, the ids whose mean fills it."""
    return pa.array(slots, type=pa.list_(pa.list_(pa.string())))


def row_vectors(row: dict, tables: dict[str, VectorTable]) -> dict[str, np.ndarray]:
    """{space: (n, dim)} of one task row, for the spaces its prompt uses."""
    return {space: table.slot_vectors(row[f"{space}_slots"]) for space, table in tables.items()
            if len(row.get(f"{space}_slots") or [])}


def split_sizes_ok(sizes: dict[str, int], where: str) -> None:
    """Refuse a corpus with an empty split before anything is written: training would crash on it much later."""
    empty = [split for split, n in sizes.items() if n == 0]
    if empty:
        raise ValueError(f"{where}: split(s) {empty} would be empty (rows per split: {sizes}). A corpus needs held-out "
                         "entities and training ones: give more entities, or a test_fraction strictly between 0 and "
                         "1 that leaves at least one on each side.")


@dataclass
class Corpus:
    """A built corpus, whoever built it: its task splits, the vector table of each space, the entity tables, its
    manifest. Evaluation, `describe` and the Space ask it what it holds instead of asking who built it."""

    folder: Path
    tasks: "datasets.DatasetDict | None"  # noqa: F821 - None when opened without them (the Space)
    manifest: dict
    vectors: dict  # {space: VectorTable}, what each placeholder of the rows reads
    entities: dict  # {kind: DataFrame}: id, label, split, ...; one row per entity (MovieLens: movie, user)

    @property
    def spaces(self) -> dict[str, dict]:
        """Embedding spaces the corpus' rows use, as `ElmConfig.embedding_spaces` wants them."""
        placeholders = self.manifest.get("placeholders", {})
        return {name: {"dim": dim, **({"placeholder": placeholders[name]} if name in placeholders else {})}
                for name, dim in self.manifest["spaces"].items()}

    @property
    def anchor(self) -> str:
        """The first space: the one rows are split by, and SC, retrieval, the Space's pickers and `describe` are
        about."""
        return next(iter(self.manifest["spaces"]))

    @property
    def is_movielens(self) -> bool:
        return self.manifest["kind"] == "movielens"

    @property
    def prompts(self) -> dict[str, str]:
        """{task: prompt} the corpus knows, the tasks its rows were written for first."""
        return dict(self.manifest.get("prompts") or {})

    def placeholder(self, space: str) -> str:
        return self.spaces[space].get("placeholder", f"<{space}>")

    def single_prompts(self, space: str) -> dict[str, str]:
        """The prompts that read exactly one vector, of `space`: what one picked or mixed entity can be asked."""
        mark = self.placeholder(space)
        return {task: prompt for task, prompt in self.prompts.items()
                if prompt.count(mark) == 1 and prompt.count("<") == 1}

    def names(self, kind: str) -> list[str] | None:
        """Each entity's name (its first column of NAME_COLUMNS: a word, a title...), None when the data has none."""
        table = self.entities[kind]
        column = next((c for c in NAME_COLUMNS if c in table.columns), None)
        return table[column].astype(str).tolist() if column else None

    def labels(self, kind: str) -> list[str]:
        """How a person names each entity of `kind`: its `label`, else its name with the id (names repeat)."""
        table = self.entities[kind]
        if "label" in table.columns:
            return table["label"].astype(str).tolist()
        names = self.names(kind)
        if names is None:
            return table["id"].astype(str).tolist()
        return [f"{name} [{i}]" for name, i in zip(names, table["id"])]

    def about(self, kind: str) -> list[str]:
        """One short line per entity of `kind` (its genres, its gloss...), empty when the data has none."""
        table = self.entities[kind]
        column = next((c for c in ABOUT_COLUMNS if c in table.columns), None)
        if column is None:
            return [""] * len(table)
        return ["|".join(map(str, v)) if isinstance(v, (list, np.ndarray)) else str(v)[:80] for v in table[column]]

    def entity_vectors(self, space: str) -> np.ndarray:
        """(n, dim): the vector of each row of the entity table of `space`, in the table's order."""
        return self.vectors[space].lookup(self.entities[space]["id"])

    def concepts(self, space: str) -> dict:
        """{name: Concept}: the directions fitted in the vectors `space` reads (concepts/<its vector table>;
        MovieLens: genres of both movie tables), {} when the corpus has none."""
        from .concepts import load_concepts

        path = self.folder / "concepts" / self.manifest["vectors"][space]  # fitted per vector table
        return load_concepts(path) if path.with_suffix(".json").is_file() else {}

    def text_encoder(self, space: str) -> tuple[str | None, bool]:
        """(the sentence encoder that re-embeds answers about `space`'s entities, or None; whether it also made
        `space`'s vectors, so that SC compares an answer with the very vector the model read). The manifest says:
        `encoders` names the encoder of each space one made; MovieLens adds `answer_encoder`, its semantic space's
        encoder, which also scores answers about behavioural vectors."""
        encoders = self.manifest.get("encoders", {})
        return encoders.get(space) or self.manifest.get("answer_encoder"), encoders.get(space) is not None


def load_corpus(folder: str | Path, with_tasks: bool = True) -> Corpus:
    """Open a built corpus folder (local): task splits (unless `with_tasks` is false), vector and entity tables."""
    import pandas as pd

    folder = Path(folder)
    if not (folder / "manifest.json").is_file():
        raise FileNotFoundError(f"{folder} is not a corpus folder (no manifest.json); build one with "
                                "`python -m modeling_elm.scripts.corpus` or train with a `data:` section.")
    manifest = json.loads((folder / "manifest.json").read_text())
    check_format(folder, manifest)
    entities = {path.stem: pd.read_parquet(path) for path in sorted((folder / ENTITIES_DIR).glob("*.parquet"))}
    return Corpus(folder, load_task_splits(folder) if with_tasks else None, manifest,
                  load_vector_tables(folder, manifest), entities)
