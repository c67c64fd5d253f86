"""An entity file's vectors, checked before any training: one id column without gaps or repeats, one vector per row
(a list column, text such as "[0.1, -0.2]", or numbered columns), one size for all, every value finite and within
float32. A bad row fails with its file, line and id."""

import json
import re

import numpy as np
import pandas as pd


def _parse_list(text: str, where: str, spec, table, line_offset: int, column) -> list:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        row = int(np.flatnonzero(column.to_numpy() == text)[0])
        raise ValueError(f"{where}, row {row + line_offset} (id {table[spec.id_column].iloc[row]!r}): the vector "
                         f"column holds text {text[:40]!r}, not a list of numbers like [0.1, -0.2].") from None
    return value if isinstance(value, list) else [value]


def _numbers(values, where: str, line: int, entity) -> np.ndarray:
    try:
        vector = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        bad = next((v for v in values if not isinstance(v, (int, float, np.number))), values)
        raise ValueError(f"{where}, row {line} (id {entity!r}): the vector holds {bad!r}, not a number.") from None
    if vector.ndim != 1:
        raise ValueError(f"{where}, row {line} (id {entity!r}): the vector is nested (shape {vector.shape}); each "
                         "row needs one flat list of numbers.")
    return vector


def id_strings(values: pd.Series) -> pd.Series:
    """Ids as strings; a float column of whole numbers (pandas reads an int column with gaps as float) as "7", not
    "7.0", so it matches the same ids written elsewhere as integers."""
    if pd.api.types.is_float_dtype(values):
        whole = values.dropna()
        if (whole == whole.round()).all():
            return values.map(lambda v: str(int(v)) if pd.notna(v) else "nan")
    return values.astype(str)


def _check_values(vectors: np.ndarray, where: str, ids: pd.Series, line_offset: int) -> None:
    """Every value finite and within float32, the type the corpus stores and the model reads vectors in."""
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise ValueError(f"{where}, row {row + line_offset} (id {ids.iloc[row]!r}): the vector holds NaN or infinity "
                         f"({int((~finite).sum())} such row(s)); fix or remove them.")
    fits = (np.abs(vectors) <= np.finfo(np.float32).max).all(axis=1)  # larger ones would be stored as infinity
    if not fits.all():
        row = int(np.flatnonzero(~fits)[0])
        value = vectors[row][np.argmax(np.abs(vectors[row]))]
        raise ValueError(f"{where}, row {row + line_offset} (id {ids.iloc[row]!r}): the vector holds {value:.3g}, "
                         f"beyond float32's range (about ±3.4e38), the type vectors are stored and read in "
                         f"({int((~fits).sum())} such row(s)); rescale the vectors (e.g. divide each by its norm) "
                         "or remove those rows.")


def entity_vectors(table: pd.DataFrame, spec, line_offset: int) -> np.ndarray:
    """The (n, dim) float32 vectors of `table`, as `spec` (a `byo.SpaceSpec`: path, id and vector columns) says where
    they are; a ValueError naming the file, line and id of the first bad row."""
    where = f"{spec.path}"
    if spec.id_column not in table.columns:
        raise ValueError(f"{where}: no id column {spec.id_column!r} (columns: {list(table.columns)[:10]}); "
                         "set id_column in the recipe's data section.")
    missing_ids = np.flatnonzero(table[spec.id_column].isna().to_numpy())
    if len(missing_ids):
        raise ValueError(f"{where}, row {int(missing_ids[0]) + line_offset}: the id ({spec.id_column!r}) is empty "
                         f"({len(missing_ids)} such row(s)); every entity needs an id that its texts name.")
    if spec.vector_columns:
        import fnmatch

        columns = [c for c in table.columns if fnmatch.fnmatch(str(c), spec.vector_columns)]
        if not columns:
            raise ValueError(f"{where}: no columns match vector_columns={spec.vector_columns!r}.")
        columns.sort(key=lambda c: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(c))])
        try:
            vectors = table[columns].to_numpy(dtype=np.float64)
        except ValueError:
            bad = table[columns].apply(pd.to_numeric, errors="coerce").isna() & table[columns].notna()
            row, col = map(int, np.argwhere(bad.to_numpy())[0])
            raise ValueError(f"{where}, row {row + line_offset} (id {table[spec.id_column].iloc[row]!r}): column "
                             f"{columns[col]!r} holds {table[columns[col]].iloc[row]!r}, not a number.") from None
    else:
        if spec.vector_column not in table.columns:
            raise ValueError(f"{where}: no vector column {spec.vector_column!r} (columns: {list(table.columns)[:10]}); "
                             "set vector_column (a list column) or vector_columns (numbered columns, e.g. 'dim_*').")
        column = table[spec.vector_column]
        if column.map(lambda v: isinstance(v, str)).all():  # what df.to_csv writes for a list: "[0.1, -0.2, ...]"
            column = column.map(lambda v: _parse_list(v, where, spec, table, line_offset, column))
        not_lists = np.flatnonzero(column.map(lambda v: not hasattr(v, "__len__") or isinstance(v, str)).to_numpy())
        if len(not_lists):
            row = int(not_lists[0])
            raise ValueError(f"{where}, row {row + line_offset} (id {table[spec.id_column].iloc[row]!r}): the vector "
                             f"is {column.iloc[row]!r}, not a list of numbers like [0.1, -0.2] "
                             f"({len(not_lists)} such row(s)); fix or remove them.")
        sizes = column.map(len).to_numpy()
        expected = np.bincount(sizes).argmax()
        if expected == 0:
            raise ValueError(f"{where}: the vectors in {spec.vector_column!r} are empty (0 values); each row needs "
                             "its entity's embedding.")
        bad = np.flatnonzero(sizes != expected)
        if len(bad):
            row = int(bad[0])
            raise ValueError(f"{where}, row {row + line_offset} (id {table[spec.id_column].iloc[row]!r}): vector has "
                             f"{sizes[row]} values, the others have {expected}; {len(bad)} row(s) differ.")
        vectors = np.stack([_numbers(v, where, row + line_offset, table[spec.id_column].iloc[row])
                            for row, v in enumerate(column)])
    _check_values(vectors, where, table[spec.id_column], line_offset)
    ids = id_strings(table[spec.id_column])
    duplicated = ids[ids.duplicated()]
    if len(duplicated):
        rows = np.flatnonzero(ids.to_numpy() == duplicated.iloc[0])
        raise ValueError(f"{where}: id {duplicated.iloc[0]!r} appears {len(rows)} times (rows "
                         f"{', '.join(str(r + line_offset) for r in rows[:5])}); ids must be unique.")
    return vectors.astype(np.float32)
