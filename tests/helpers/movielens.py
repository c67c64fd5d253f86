"""Tiny MovieLens releases written in each real file layout, for tests. Synthetic data only: never real ratings.

The files copy what GroupLens ships, quirks included: CSV quoting only where a title or tag needs it, "Title, The
(1994)" titles, alternative names in parentheses, a movie without a year, "(no genres listed)", latin-1 in the older
releases, "::" separators in ml-1m and pipe-separated genre flags in ml-100k.
"""

import csv
import zipfile
from pathlib import Path

import numpy as np

# (movie id, raw title, raw genres, expected title, expected year, expected genres)
SPECIAL_MOVIES = [
    (1, "Toy Story (1995)", "Adventure|Animation|Children|Comedy|Fantasy",
     "Toy Story", 1995, ["Adventure", "Animation", "Children", "Comedy", "Fantasy"]),
    (318, "Shawshank Redemption, The (1994)", "Crime|Drama", "The Shawshank Redemption", 1994, ["Crime", "Drama"]),
    (1172, "Cinema Paradiso (Nuovo cinema Paradiso) (1989)", "Drama",
     "Cinema Paradiso (Nuovo cinema Paradiso)", 1989, ["Drama"]),
    (1263, "Deer Hunter, The (1978)", "Drama|War", "The Deer Hunter", 1978, ["Drama", "War"]),
    (3006, "Crouching Tiger, Hidden Dragon (Wo hu cang long) (2000)", "Action|Drama|Romance",
     "Crouching Tiger, Hidden Dragon (Wo hu cang long)", 2000, ["Action", "Drama", "Romance"]),
    (7013, "Wave, The (Welle, Die) (2008)", "Drama|Thriller", "The Wave (Die Welle)", 2008, ["Drama", "Thriller"]),
    (8254, "Avventura, L' (Adventure, The) (1960)", "Drama|Mystery|Romance",
     "L'Avventura (The Adventure)", 1960, ["Drama", "Mystery", "Romance"]),
    (26587, "Decalogue, The (Dekalog) (1989)", "Crime|Drama", "The Decalogue (Dekalog)", 1989, ["Crime", "Drama"]),
    (40697, "Babylon 5", "Sci-Fi", "Babylon 5", None, ["Sci-Fi"]),
    (122896, "Hellboy: The Seeds of Creation (2004)", "(no genres listed)", "Hellboy: The Seeds of Creation", 2004, []),
    (2696, '"Great Performances" Cats (1998)', "Musical", '"Great Performances" Cats', 1998, ["Musical"]),
]
GENRES = ["Action", "Adventure", "Comedy", "Crime", "Drama", "Fantasy", "Horror", "Romance", "Sci-Fi", "Thriller"]
TAGS = ['dark, "gritty"', "Oscar (Best Picture)", "based on a book", "twist ending", "NA", "funny"]


def write_ml25m_folder(path, n_users=50, n_movies=40, seed=0, with_genome=True) -> dict:
    """Write an ML-25M-style folder (ratings, movies, tags, links and optionally the tag genome) into `path`.

    Returns the counts a loader must find: ratings, users, movies, tags, genome_tags, genome_scores, and
    rating_sum (to check that values, not only rows, came through)."""
    rng = np.random.default_rng(seed)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    specials = SPECIAL_MOVIES[:n_movies]
    others = sorted(rng.choice(np.arange(150_000, 210_000), size=n_movies - len(specials), replace=False))
    movies = [(m, raw, genres) for m, raw, genres, *_ in specials] + [
        (int(m), f"Movie {i}, The ({1930 + i % 90})" if i % 3 == 0 else f"Movie {i} ({1930 + i % 90})",
         "|".join(sorted(rng.choice(GENRES, size=rng.integers(1, 4), replace=False))))
        for i, m in enumerate(others)
    ]
    movie_ids = np.array([m for m, _, _ in movies])
    _write_csv(path / "movies.csv", ["movieId", "title", "genres"], movies)
    _write_csv(path / "links.csv", ["movieId", "imdbId", "tmdbId"],
               [(m, f"{114709 + i:07d}", 862 + i) for i, m in enumerate(movie_ids)])

    ratings, timestamp = [], 1_100_000_000
    for user in range(1, n_users + 1):
        rated = np.sort(rng.choice(movie_ids, size=rng.integers(3, min(12, len(movie_ids)) + 1), replace=False))
        for movie in rated:
            timestamp += int(rng.integers(1, 5000))
            ratings.append((user, int(movie), f"{rng.integers(1, 11) / 2:.1f}", timestamp))
    _write_csv(path / "ratings.csv", ["userId", "movieId", "rating", "timestamp"], ratings)

    tags = [(int(rng.integers(1, n_users + 1)), int(rng.choice(movie_ids)), TAGS[i % len(TAGS)], 1_200_000_000 + i)
            for i in range(2 * len(TAGS))]
    _write_csv(path / "tags.csv", ["userId", "movieId", "tag", "timestamp"], tags)

    counts = {"ratings": len(ratings), "users": n_users, "movies": len(movies), "tags": len(tags),
              "rating_sum": sum(float(r[2]) for r in ratings), "genome_tags": 0, "genome_scores": 0}
    if with_genome:
        genome_tags = [(i + 1, tag) for i, tag in enumerate(["007", "slow, quiet", "dark", "twist ending"])]
        _write_csv(path / "genome-tags.csv", ["tagId", "tag"], genome_tags)
        scores = [(int(m), t, f"{rng.random():.5f}") for m in movie_ids[: len(movie_ids) // 2] for t, _ in genome_tags]
        _write_csv(path / "genome-scores.csv", ["movieId", "tagId", "relevance"], scores)
        counts.update(genome_tags=len(genome_tags), genome_scores=len(scores))
    return counts


def write_ml1m_folder(path) -> dict:
    """A tiny ml-1m folder: "::"-separated latin-1 .dat files without headers."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    movies = ["1::Toy Story (1995)::Animation|Children's|Comedy", "2::Misérables, Les (1995)::Drama|Musical",
              "3::Grumpier Old Men (1995)::Comedy|Romance", "4::Shawshank Redemption, The (1994)::Drama"]
    ratings = ["1::1::5::978300760", "1::2::3::978302109", "2::1::4::978301968", "2::4::5::978300275",
               "3::3::1::978824291", "3::4::4::978302268"]
    (path / "movies.dat").write_bytes(("\n".join(movies) + "\n").encode("latin-1"))
    (path / "ratings.dat").write_text("\n".join(ratings) + "\n")
    (path / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n3::M::25::15::55117\n")
    return {"ratings": len(ratings), "users": 3, "movies": len(movies), "rating_sum": 22.0}


ML100K_GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
                 "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
                 "War", "Western"]


def write_ml100k_folder(path) -> dict:
    """A tiny ml-100k folder: tab-separated u.data, pipe-separated latin-1 u.item with 19 genre flags, u.genre."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(ML100K_GENRES)) + "\n")

    def item(movie_id, title, date, genres):
        flags = "|".join("1" if g in genres else "0" for g in ML100K_GENRES)
        return f"{movie_id}|{title}|{date}||http://us.imdb.com/M/title-exact?{movie_id}|{flags}"

    items = [item(1, "Toy Story (1995)", "01-Jan-1995", {"Animation", "Children's", "Comedy"}),
             item(2, "Cité des enfants perdus, La (1995)", "01-Jan-1995", {"Adventure", "Sci-Fi"}),
             item(3, "Usual Suspects, The (1995)", "14-Aug-1995", {"Crime", "Thriller"}),
             item(4, "Body Snatcher, The", "01-Jan-1945", {"Horror"}),
             item(267, "unknown", "", {"unknown"})]
    (path / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    ratings = ["196\t1\t3\t881250949", "186\t2\t3\t891717742", "22\t3\t1\t878887116", "244\t4\t2\t880606923",
               "196\t267\t4\t886397596", "22\t1\t5\t884182806"]
    (path / "u.data").write_text("\n".join(ratings) + "\n")
    return {"ratings": len(ratings), "users": 4, "movies": len(items), "rating_sum": 18.0}


def zip_folder(folder, archive, prefix=None) -> Path:
    """Zip `folder` the way GroupLens does: every file under one top folder named like the release."""
    folder, archive = Path(folder), Path(archive)
    prefix = folder.name if prefix is None else prefix
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        if prefix:
            out.writestr(prefix + "/", "")
        for file in sorted(folder.iterdir()):
            out.write(file, f"{prefix}/{file.name}" if prefix else file.name)
    return archive


def _write_csv(path, header, rows):
    # GroupLens quotes a field only when it needs it (a comma or a quote inside), and ends lines with \n.
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        writer.writerow(header)
        writer.writerows(rows)
