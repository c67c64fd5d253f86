"""Your files, read: a table from Parquet, CSV/TSV, JSON lines or a JSON array, a `datasets` folder or a Hub dataset
id, with the offset from row index to file line that every error message names; and a fingerprint of what a source
holds, for cache keys. What `byo` reads entities and texts with."""

import hashlib
import json
import re
from pathlib import Path

import pandas as pd
import pyarrow as pa

HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")
TABLE_SUFFIXES = (".parquet", ".pq", ".csv", ".tsv", ".jsonl", ".json")


def is_hub_id(path: str) -> bool:
    """A Hub dataset id looks like "user/name"; a path with a file suffix or in an existing folder is a local file
    that is missing, not a download to retry for half a minute."""
    p = Path(path)
    return not p.exists() and bool(HUB_ID.fullmatch(path)) and p.suffix not in TABLE_SUFFIXES and not p.parent.is_dir()


def source_fingerprint(path: str) -> str | None:
    """What a source holds, for the cache key: a hash of the bytes of a file, or of every file of a `datasets`
    folder (with their names); a Hub dataset's fingerprint, which follows its revision. None for a missing path,
    which `read_table` then names."""
    p = Path(path)
    if p.is_file() or p.is_dir():
        files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
        digest = hashlib.sha256()
        for file in files:
            digest.update(file.relative_to(p if p.is_dir() else p.parent).as_posix().encode() + b"\0")
            with open(file, "rb") as handle:
                digest.update(hashlib.file_digest(handle, "sha256").digest())
        return digest.hexdigest()
    if is_hub_id(path):
        import datasets

        return datasets.load_dataset(path, split="train")._fingerprint
    return None


def read_table(path: str) -> tuple[pd.DataFrame, int]:
    """A table from a file or dataset, and the offset from row index to file line (for error messages)."""
    p = Path(path)
    if not p.exists():
        if is_hub_id(path):
            import datasets

            return _not_empty(datasets.load_dataset(path, split="train").to_pandas(), path), 0
        raise ValueError(f"{path}: no such file or folder (and not a Hub dataset id such as 'user/name'); check the "
                         "path in the recipe's data section, relative to where train.py runs.")
    if p.is_dir():
        import datasets

        loaded = datasets.load_from_disk(str(p))
        return _not_empty(
            (loaded["train"] if isinstance(loaded, datasets.DatasetDict) else loaded).to_pandas(), path
        ), 0
    try:
        if p.suffix in (".parquet", ".pq"):
            try:
                return _not_empty(pd.read_parquet(p), path), 0
            except (pa.ArrowInvalid, OSError) as error:
                raise ValueError(f"{path}: not a readable Parquet file ({error}); write it again, e.g. with "
                                 "pandas' DataFrame.to_parquet.") from None
        if p.suffix in (".csv", ".tsv"):
            if p.stat().st_size == 0:
                raise ValueError(f"{path} is empty (0 bytes); it needs a header line and one row per entry.")
            try:
                return _not_empty(pd.read_csv(p, sep="\t" if p.suffix == ".tsv" else ","), path), 2  # header: line 1
            except pd.errors.ParserError as error:
                raise ValueError(f"{p}: {error}") from None
        if p.suffix in (".jsonl", ".json"):
            return _read_json(p, path)
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text (byte {error.object[error.start:error.start + 1]!r} at position "
                         f"{error.start}); save the file as UTF-8.") from None
    raise ValueError(f"{path}: not a .parquet, .csv or .jsonl file, a datasets folder, or a Hub dataset id.")


def _read_json(p: Path, path: str) -> tuple[pd.DataFrame, int]:
    text = p.read_text(encoding="utf-8")
    if p.suffix == ".json" and text.lstrip().startswith("["):  # one JSON array of objects, not JSON lines
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{error.lineno}: not valid JSON ({error.msg}).") from None
        if not all(isinstance(r, dict) for r in rows):
            raise ValueError(f"{path}: a JSON array must hold one object per row, e.g. [{{\"id\": ..., ...}}].")
        return _not_empty(pd.DataFrame(rows), path), 0
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{p}:{number}: not a JSON object ({error.msg}).") from None
            if not isinstance(row, dict):
                raise ValueError(f"{p}:{number}: not a JSON object (one object per line, e.g. {{\"id\": ...}}).")
            rows.append(row)
    return _not_empty(pd.DataFrame(rows), path), 1


def _not_empty(table: pd.DataFrame, path: str) -> pd.DataFrame:
    if table.empty:
        raise ValueError(f"{path} has no rows; it needs one row per entry.")
    return table
