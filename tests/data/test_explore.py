"""Exploring a space (`data/explore.py`): what `describe` and the Space both use to find an entity, mix two and move
one, with one matching and one set of errors."""

import numpy as np
import pytest

from modeling_elm.data.explore import find_entity, mix, move


def test_an_entity_is_found_by_its_label_its_name_or_part_of_it_and_the_others_named():
    labels = ["Titanic (1953)", "Titanic (1997)", "Toy Story (1995)", "Titanic Town (1998)"]
    names, popularity = ["Titanic", "Titanic", "Toy Story", "Titanic Town"], [10, 100, 50, 5]
    find = lambda query: find_entity(labels, names, popularity, query)  # noqa: E731
    assert find("Titanic (1953)") == (0, [])  # the Space's own label, year and all
    assert find("titanic") == (1, ["Titanic (1953)"])  # the best-known exact title; the other named
    assert find("tita") == (1, ["Titanic (1953)", "Titanic Town (1998)"])
    with pytest.raises(ValueError, match="No movie in the corpus matches 'heat'"):
        find("heat")
    # a year no match has is not silently swapped for another year's movie, nor an empty query for the default one
    with pytest.raises(ValueError, match=r"No movie 'Titanic' from 1887 .* Titanic \(1997\)"):
        find("Titanic (1887)")
    for empty in ("", "  ", "(1997)"):
        with pytest.raises(ValueError, match="names nothing"):
            find(empty)
    # your own data: a word is found by its name, whatever the label adds
    assert find_entity(["dog [n1]", "dog [n2]", "cat [n3]"], ["dog", "dog", "cat"], [0, 0, 0], "cat", "word") == (2, [])


def test_movielens_own_title_form_with_the_article_last_is_found():
    labels = ["The Matrix (1999)", "The Godfather (1972)", "A Beautiful Mind (2001)", "Matrix of Leadership (1999)"]
    names = ["The Matrix", "The Godfather", "A Beautiful Mind", "Matrix of Leadership"]
    find = lambda query: find_entity(labels, names, [5, 4, 3, 9], query)  # noqa: E731
    assert find("Matrix, The") == (0, [])  # the exact title, though a better-known movie also has "matrix" in it
    assert find("Godfather, The")[0] == 1
    assert find("Matrix, The (1999)") == (0, [])
    assert find("beautiful mind, a")[0] == 2
    with pytest.raises(ValueError, match=r"No movie 'The Matrix' from 2003 .* The Matrix \(1999\)"):
        find("Matrix, The (2003)")
    # titles stored in that form are found by the title as people write it
    assert find_entity(["Matrix, The (1999)", "Heat (1995)"], ["Matrix, The", "Heat"], [1, 1], "The Matrix") == (0, [])
    assert find_entity(["Matrix, The (1999)"], ["Matrix, The"], [1], "the matrix (1999)") == (0, [])


def test_mix_and_move_are_the_same_arithmetic_for_every_caller():
    from modeling_elm.data.concepts import Concept

    a, b = np.array([1.0, 0.0, 0.0], np.float32), np.array([0.0, 1.0, 0.0], np.float32)
    assert np.allclose(mix(a, b, 0.25), [0.75, 0.25, 0.0]) and mix(a, b, 0.25).dtype == np.float32
    direction = np.array([0.0, 0.0, 1.0], np.float32)
    concepts = {"Comedy": Concept("Comedy", "semantic", direction, 0.0, 0.9, 10, 10, step=0.5 * direction)}
    assert np.allclose(move(concepts, a, "Comedy", 2.0), [1.0, 0.0, 1.0])  # strength in the concept's own steps
    with pytest.raises(ValueError, match="No concept 'comedy' in the corpus' movie space. Did you mean 'Comedy'"):
        move(concepts, a, "comedy", 1.0, "movie")
