"""Bring your own (id, vector, text) data: any embedding space becomes an ELM task corpus, checked before training.

A recipe's `data:` section (see docs/your-own-vectors.md) names, per embedding space, a file of entities (Parquet,
CSV, JSONL, a `datasets` folder, or a Hub dataset id) with an id column and the vector (a list column, or numbered
columns such as dim_0, dim_1, ...); and the texts, as rows (ids, task, target[, prompt]) in a file and/or as
templates that fill prompts and targets from entity columns. The output is the same kind of corpus folder the
MovieLens recipe writes (tasks/ split by entity, a manifest), so training and evaluation treat both alike.

Everything is validated first: vector sizes agree, values are finite and fit float32, ids are unique, every text's
ids exist, every prompt has one placeholder per id. A broken file fails with its path and row; rows that cannot be
used (unknown ids, empty targets) are dropped, counted, and shown, never skipped in silence. A text row's ids are a
list, or one id as text (`row_ids` says how a CSV cell holds several). The checked corpus is cached under a key of
the settings and of what the sources hold (`source_fingerprint`).

Reading any table format is `files.py`; checking an entity file's vectors is `entity_vectors.py`; this module holds
the recipe's section, the texts, the split and the build.
"""

import hashlib
import json
import logging
import re
from dataclasses import MISSING, asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ..base_models import elm_cache_dir
from .corpus import FORMAT, VectorTable, save_task_splits, slot_column, split_sizes_ok
from .entity_vectors import entity_vectors, id_strings
from .files import read_table, source_fingerprint

logger = logging.getLogger(__name__)
BYO_VERSION = 3  # 3: the manifest lists the prompts; 2: rows name ids, vectors stored once in vectors/


@dataclass
class SpaceSpec:
    path: str  # entities: .parquet, .csv, .jsonl, a datasets folder, or a Hub dataset id
    id_column: str = "id"
    vector_column: str | None = "vector"  # a column holding one list of numbers per row ...
    vector_columns: str | None = None  # ... or numbered columns matching this glob, e.g. "dim_*"
    placeholder: str | None = None  # default: <space name>
    encoder: str | None = None  # the sentence-transformers model that made the vectors, if one did (enables SC)


@dataclass
class TemplateSpec:
    task: str
    prompt: str  # with the space's placeholder
    target: str  # a format string over the entity's columns, e.g. "{gloss}."
    space: str | None = None  # default: the only space


@dataclass
class DataConfig:
    spaces: dict[str, SpaceSpec]
    texts: str | None = None  # rows of (ids, task, target[, prompt])
    prompts: dict[str, str] = field(default_factory=dict)  # task -> prompt, for text rows without one
    templates: list[TemplateSpec] = field(default_factory=list)
    test_fraction: float = 0.1  # held-out entities of the first space (no text about them is trained on)
    max_test_entities: int = 1000
    seed: int = 0
    output_dir: str | None = None  # default: the ELM cache

    @classmethod
    def from_dict(cls, raw: dict) -> "DataConfig":
        if not isinstance(raw, dict) or not raw.get("spaces"):
            raise ValueError("data: needs a `spaces:` mapping, e.g. spaces: {word: {path: synsets.parquet}}.")
        known = set(cls.__dataclass_fields__)
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"data: unknown key(s) {sorted(unknown)}; known: {sorted(known)}.")
        spaces = {name: _spec(SpaceSpec, spec, f"data.spaces.{name}") for name, spec in raw["spaces"].items()}
        templates = [_spec(TemplateSpec, t, f"data.templates[{i}]") for i, t in enumerate(raw.get("templates") or [])]
        config = cls(**{**raw, "spaces": spaces, "templates": templates})
        for i, template in enumerate(config.templates):
            if template.space is not None and template.space not in config.spaces:
                raise ValueError(f"data.templates[{i}] (task {template.task!r}): space {template.space!r} is not one "
                                 f"of data.spaces {sorted(config.spaces)}; name one of them, or leave space out "
                                 "for the first.")
        for name in config.spaces:
            mark = config.placeholder(name)
            if mark.replace("_", "").isalnum():  # a word: every time it occurs in text it would become a vector
                raise ValueError(f"data.spaces.{name}.placeholder {mark!r} is a plain word, which occurs in text; "
                                 f"pick a marker that never does, such as '<{mark}>'.")
        if not (config.texts or config.templates):
            raise ValueError("data: give `texts:` (a file of ids, task, target) or `templates:`, or both.")
        fraction = config.test_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            raise ValueError(f"data.test_fraction must be a number between 0 and 1 (the share of entities held out), "
                             f"got {fraction!r}; e.g. test_fraction: 0.1")
        for key in ("max_test_entities", "seed"):
            value = getattr(config, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"data.{key} must be a non-negative integer, got {value!r}.")
        return config

    def placeholder(self, space: str) -> str:
        return self.spaces[space].placeholder or f"<{space}>"

    def cache_key(self) -> str:
        """The settings and what the sources hold (not their size and mtime, which a rewrite in place can keep)."""
        sources = [s.path for s in self.spaces.values()] + ([self.texts] if self.texts else [])
        contents = {path: source_fingerprint(path) for path in sources}
        blob = json.dumps({"v": BYO_VERSION, "config": asdict(self), "contents": contents}, sort_keys=True,
                          default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def folder(self, key: str | None = None) -> Path:
        """Where the corpus goes; `key`: the cache key when already computed (it reads every source)."""
        if self.output_dir:
            return Path(self.output_dir)
        return elm_cache_dir() / "corpora" / f"byo-{'-'.join(self.spaces)}-{key or self.cache_key()}"


def _spec(kind, raw, where: str):
    """A SpaceSpec / TemplateSpec from a recipe mapping, with misspelt or missing keys named."""
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must be a mapping of settings, got {type(raw).__name__}.")
    known = list(kind.__dataclass_fields__)
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {known}.")
    required = [k for k, f in kind.__dataclass_fields__.items()
                if f.default is MISSING and f.default_factory is MISSING and k not in raw]
    if required:
        raise ValueError(f"{where}: missing {required}.")
    return kind(**raw)


# ---- texts --------------------------------------------------------------------------------------------------
def placeholder_spaces(prompt: str, config: DataConfig) -> list[str]:
    """The space of each placeholder in `prompt`, in order."""
    marks = {config.placeholder(s): s for s in config.spaces}
    pattern = "|".join(re.escape(m) for m in marks)
    return [marks[m] for m in re.findall(pattern, prompt)]


def _target_text(value) -> str:
    """A target as text: a number is its own text (a CSV column of numbers reads as numbers), a gap is empty."""
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, float, np.number)):
        return "" if not np.isfinite(value) else str(int(value)) if float(value).is_integer() else str(value)
    return value.strip() if isinstance(value, str) else ""


def _listed(text: str):
    """A list written as text, as a CSV cell holds one: JSON (`["e3", "e4"]`) or Python's repr (`['e3', 'e4']`, what
    pandas' to_csv writes for a list); None when the text is not a list (then it is an id that starts with "[")."""
    import ast

    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(text)
        except (ValueError, SyntaxError):
            continue
        return value if isinstance(value, list) else None
    return None


def row_ids(value, placeholders: int, where: str) -> list[str]:
    """A text row's `ids`, one per placeholder of its prompt, as strings. A list is taken as it is (any character may
    be in an id); text that holds a list (`["e3", "e4"]`) is that list; other text is one id, or, for a prompt with
    several placeholders, ids joined by "|" (`e3|e4`): an id containing "|" is then written in a list."""
    listed = _listed(value) if isinstance(value, str) and value.lstrip().startswith("[") else None
    joined = isinstance(value, str) and listed is None
    ids = listed if listed is not None else list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]
    if not ids or any(x is None or (isinstance(x, float) and np.isnan(x)) for x in ids):
        raise ValueError(f"{where}: the row names no id (ids is empty); give the id of the entity each "
                         "placeholder stands for.")
    # floats of whole numbers (pandas reads an int column with gaps as float) as "7", not "7.0"
    ids = [str(int(x)) if isinstance(x, float) and x.is_integer() else str(x) for x in ids]
    return ids[0].split("|") if joined and placeholders > 1 else ids


def text_rows(config: DataConfig, entities: dict[str, pd.DataFrame], dropped: dict) -> list[dict]:
    index = {space: set(table["id"]) for space, table in entities.items()}
    rows = []
    if config.texts:
        table, offset = read_table(config.texts)
        for column in ("ids", "task", "target"):
            if column not in table.columns:
                raise ValueError(f"{config.texts}: no {column!r} column; text rows need ids, task, target "
                                 "(and optionally prompt).")
        for i, row in enumerate(table.to_dict("records")):
            where = f"{config.texts}:{i + offset}"
            prompt = row.get("prompt") if isinstance(row.get("prompt"), str) else config.prompts.get(row["task"])
            if not prompt:
                raise ValueError(f"{where}: task {row['task']!r} has no prompt; add a `prompt` column or "
                                 f"data.prompts.{row['task']}: "
                                 f"'text with {config.placeholder(next(iter(config.spaces)))}'.")
            spaces = placeholder_spaces(prompt, config)
            ids = row_ids(row["ids"], len(spaces), where)
            if len(spaces) != len(ids):
                raise ValueError(f"{where}: the prompt has {len(spaces)} placeholder(s) but the row has {len(ids)} "
                                 f"id(s): {prompt!r} / {ids}.")
            missing = [x for x, s in zip(ids, spaces) if x not in index[s]]
            if missing:
                dropped.setdefault("unknown id", []).append(f"{where}: {missing[0]!r}")
                continue
            target = _target_text(row["target"])
            if not target:
                dropped.setdefault("empty target", []).append(where)
                continue
            rows.append({"task": row["task"], "prompt": prompt, "target": target, "ids": ids, "spaces": spaces})
    for template in config.templates:
        space = template.space or next(iter(config.spaces))
        if placeholder_spaces(template.prompt, config) != [space]:
            raise ValueError(f"template {template.task!r}: the prompt needs exactly one {config.placeholder(space)}.")
        for record in entities[space].to_dict("records"):
            try:
                target = template.target.format(**record).strip()
            except KeyError as error:
                raise ValueError(f"template {template.task!r}: no column {error} in {config.spaces[space].path} "
                                 f"(columns: {sorted(record)[:12]}); fix the target {template.target!r}.") from None
            except (IndexError, ValueError, AttributeError) as error:
                raise ValueError(f"template {template.task!r}: the target {template.target!r} is not a valid format "
                                 f"string ({error}); name columns in braces, e.g. '{{gloss}}.'") from None
            if not target or target.lower() in ("nan", "none"):
                dropped.setdefault(f"template {template.task}: empty target", []).append(str(record["id"]))
                continue
            rows.append({"task": template.task, "prompt": template.prompt, "target": target, "ids": [record["id"]],
                         "spaces": [space]})
    return rows


# ---- the corpus ---------------------------------------------------------------------------------------------
def split_by_entity(config: DataConfig, rows: list[dict], anchor_space: str) -> tuple[dict, set, list]:
    """Rows -> ({split: columns}, held-out anchor ids, every anchor id): a seeded `test_fraction` of the first space's
    entities is held out, and every row about one of them goes to test, so evaluation meets entities never trained
    on."""
    anchors = sorted({r["ids"][0] for r in rows if r["spaces"][0] == anchor_space})
    rng = np.random.default_rng(config.seed)
    n_test = min(config.max_test_entities, max(1, round(config.test_fraction * len(anchors))))
    test = set(rng.choice(anchors, size=n_test, replace=False).tolist()) if len(anchors) > 1 else set()
    columns = {split: {"task": [], "kind": [], "prompt": [], "target": [],
                       **{f"{s}_{c}": [] for s in config.spaces for c in ("ids", "slots")}}
               for split in ("train", "test")}
    for row in rows:
        split = "test" if any(i in test for i, s in zip(row["ids"], row["spaces"]) if s == anchor_space) else "train"
        out = columns[split]
        out["task"].append(row["task"])
        out["kind"].append("byo")
        out["prompt"].append(row["prompt"])
        out["target"].append(row["target"])
        for s in config.spaces:  # each placeholder holds one entity of its space
            ids = [i for i, sp in zip(row["ids"], row["spaces"]) if sp == s]
            out[f"{s}_ids"].append(ids)
            out[f"{s}_slots"].append([[i] for i in ids])
    return columns, test, anchors


def prompts_of(rows: list[dict]) -> dict[str, str]:
    """{task: its first row's prompt}, in the order the tasks first appear."""
    prompts: dict[str, str] = {}
    for row in rows:
        prompts.setdefault(row["task"], row["prompt"])
    return prompts


def build_byo_corpus(config: DataConfig, rebuild: bool = False) -> Path:
    """Validate, split by entity, write tasks/ + vectors/ + entities/ + manifest.json; a cache hit when nothing
    changed."""
    key = config.cache_key()
    folder = config.folder(key)
    manifest_path = folder / "manifest.json"
    if manifest_path.is_file() and not rebuild and json.loads(manifest_path.read_text()).get("cache_key") == key:
        logger.info("Data cache hit: %s", folder)
        return folder
    entities, vectors = {}, {}
    for name, spec in config.spaces.items():
        table, offset = read_table(spec.path)
        vectors[name] = entity_vectors(table, spec, offset)
        import fnmatch

        table = table.drop(columns=[c for c in table.columns if c == spec.vector_column or (
            spec.vector_columns and fnmatch.fnmatch(str(c), spec.vector_columns))])  # the vector lives in vectors/
        table.insert(0, "id", id_strings(table.pop(spec.id_column)))
        entities[name] = table
    dropped: dict[str, list] = {}
    rows = text_rows(config, entities, dropped)
    for reason, where in dropped.items():
        logger.warning("Dropped %d row(s), %s; first: %s", len(where), reason, "; ".join(where[:3]))
    if not rows:
        raise ValueError("No usable text rows: every row was dropped (see the warnings above).")

    anchor_space = next(iter(config.spaces))
    columns, test, anchors = split_by_entity(config, rows, anchor_space)
    sizes = {split: len(c["task"]) for split, c in columns.items()}
    split_sizes_ok(sizes, f"data ({len(anchors)} {anchor_space} entit{'y' if len(anchors) == 1 else 'ies'} with "
                          f"text, test_fraction {config.test_fraction})")
    folder.mkdir(parents=True, exist_ok=True)
    save_task_splits(folder, {split: pa.table({
        **{k: pa.array(v, pa.string()) for k, v in c.items() if k in ("task", "kind", "prompt", "target")},
        **{k: pa.array(v, pa.list_(pa.string())) for k, v in c.items() if k.endswith("_ids")},
        **{k: slot_column(v) for k, v in c.items() if k.endswith("_slots")},
    }) for split, c in columns.items()})
    (folder / "entities").mkdir(exist_ok=True)
    for name, table in entities.items():
        VectorTable(table["id"], vectors[name], name).save(folder)
        table = table.copy()
        table["split"] = np.where(table["id"].isin(test), "test", "train") if name == anchor_space else "train"
        table.to_parquet(folder / "entities" / f"{name}.parquet", index=False)
    manifest = {
        "kind": "byo", "format": FORMAT, "cache_key": key, "config": asdict(config),
        "vectors": {name: name for name in config.spaces},
        "spaces": {name: int(v.shape[1]) for name, v in vectors.items()},
        "placeholders": {name: config.placeholder(name) for name in config.spaces},
        "prompts": prompts_of(rows),
        "encoders": {name: spec.encoder for name, spec in config.spaces.items()},
        "counts": {"entities": {n: len(t) for n, t in entities.items()}, "test_entities": len(test),
                   "rows": sizes},
        "dropped": {reason: len(where) for reason, where in dropped.items()},
    }
    manifest_path.write_text(json.dumps(manifest, indent=2))
    logger.info("Data: %s rows (train / test), %d held-out %s entities, dropped %s -> %s",
                manifest["counts"]["rows"], len(test), anchor_space, manifest["dropped"] or "nothing", folder)
    return folder
