"""scripts/famous_movies.py, the table of well-known movies in docs/results.md, on the tiny trained ELM."""

import importlib.util
from pathlib import Path

import pytest

from modeling_elm.data.corpus import load_corpus

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "famous_movies.py"


def famous_movies():
    spec = importlib.util.spec_from_file_location("famous_movies", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_asked_movie_gets_a_row_with_its_truth_and_whether_it_was_held_out(trained, capsys):
    model, corpus = trained
    movies = load_corpus(corpus).entities["movie"]
    held_out = movies[movies["split"] == "test"].iloc[0]
    seen = movies[movies["split"] == "train"].iloc[0]
    assert famous_movies().main(["--model", str(model), "--movies", held_out["title"], seen["title"]]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 3  # the header, then one row per movie, in the order asked
    for row, movie, split in zip(rows[1:], (held_out, seen), ("yes", "no")):
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[0] == f"{movie['title']} ({int(movie['year'])}), {', '.join(sorted(movie['genres']))}"
        assert cells[1] == split and cells[2]  # and the model said something


def test_a_title_the_corpus_lacks_is_refused_by_name(trained):
    model, _ = trained
    with pytest.raises(SystemExit, match="No movie titled 'Not A Movie'"):
        famous_movies().main(["--model", str(model), "--movies", "Not A Movie"])
