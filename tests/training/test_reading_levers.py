"""The levers that make a model read its vectors: each does what its option says (docs/results.md measures whether
it pays)."""

import datasets
import numpy as np
import pytest
import torch

from modeling_elm import ElmForCausalLM
from modeling_elm.evaluation.metrics import invents_title, repeats_content_word

# Standardised inputs


def test_standardised_adapter_sees_centred_unit_variance_inputs_and_keeps_them_through_save_and_load(tiny_elm,
                                                                                                       tmp_path):
    model, processor = tiny_elm
    adapter = model.model.adapters["movie"]
    vectors = torch.randn(200, 8) * 0.05 + 3.0
    before = adapter(vectors[:4]).detach()
    adapter.standardize(vectors)
    seen = (vectors - adapter.input_mean) / adapter.input_std
    assert torch.allclose(seen.mean(0), torch.zeros(8), atol=1e-5)
    assert torch.allclose(seen.std(0), torch.ones(8), atol=1e-4)
    after = adapter(vectors[:4]).detach()
    assert not torch.allclose(before, after)  # the forward uses the statistics

    model.save_pretrained(tmp_path)
    loaded = ElmForCausalLM.from_pretrained(tmp_path)
    assert torch.equal(loaded.model.adapters["movie"].input_mean, adapter.input_mean)
    assert torch.equal(loaded.model.adapters["movie"].input_std, adapter.input_std)
    assert torch.allclose(loaded.model.adapters["movie"](vectors[:4]), after, atol=1e-6)


def test_a_checkpoint_saved_before_standardisation_loads_with_identity_statistics(tiny_elm, tmp_path):
    from safetensors.torch import load_file, save_file

    model, _ = tiny_elm
    model.model.adapters["movie"].standardize(torch.randn(50, 8) + 1)
    model.save_pretrained(tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    save_file({k: v for k, v in state.items() if not k.endswith(("input_mean", "input_std"))},
              str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    adapter = ElmForCausalLM.from_pretrained(tmp_path).model.adapters["movie"]
    assert torch.equal(adapter.input_mean, torch.zeros(8)) and torch.equal(adapter.input_std, torch.ones(8))


def test_standardize_refuses_too_few_or_broken_vectors(tiny_elm):
    adapter = tiny_elm[0].model.adapters["movie"]
    with pytest.raises(ValueError, match="at least 2 finite vectors of size 8"):
        adapter.standardize(torch.randn(1, 8))
    with pytest.raises(ValueError, match="finite"):
        adapter.standardize(torch.tensor([[float("nan")] * 8, [0.0] * 8]))


# The reconstruction task and the metrics the targets are stated in


def test_reconstruction_target_is_the_text_the_vector_encodes():
    from modeling_elm.data.movielens.behavioural import movie_text
    from modeling_elm.data.movielens.writers.grounded import GroundedWriter, MovieFacts
    from modeling_elm.data.movielens.tasks import TASKS

    movie = MovieFacts("1", "Heat", 1995, ["Action", "Crime"], tags=["heist", "pacino"])
    for detail in ("brief", "full"):
        assert GroundedWriter(detail).write(TASKS["reconstruct"], [movie]) == movie_text(
            "Heat", 1995, ["Action", "Crime"], ["heist", "pacino"])


@pytest.mark.parametrize("text, repeats", [
    ("An animated, animated, comedy film from the 1990s.", True),
    ("A comedy and drama film from the 1990s, remembered for \"quirky\" and \"comedy\".", True),
    ("An action, crime and thriller film from the 1990s.", False),
    ("A drama film and a war film from the 1940s.", False),  # function words and "film" may repeat
])
def test_repeated_content_words_are_found(text, repeats):
    assert repeats_content_word(text) is repeats


@pytest.mark.parametrize("text, title, invented", [
    ("The Shining (2005) is a horror film.", "Pulp Fiction", True),
    ("Pulp Fiction (1994) is a crime film.", "Pulp Fiction", False),
    ("The Matrix (1999) is a science fiction film.", "Matrix, The", False),
    ("A crime and thriller film from the 1990s.", "Heat", False),  # no title stated: nothing invented
])
def test_invented_titles_are_found(text, title, invented):
    assert invents_title(text, title) is invented


def test_training_vectors_sample_the_rows_of_a_space():
    from modeling_elm.training.standardize import training_vectors

    from modeling_elm.data.corpus import VectorTable

    table = VectorTable(["a", "b", "c"], np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), "movie")
    split = datasets.Dataset.from_dict({"movie_slots": [[["a"]], [["b"], ["c"]], [], [["a", "c"]]]})
    stacked = training_vectors(split, table, "movie")
    assert stacked.shape == (4, 2)  # a slot per placeholder, as training reads them; a mixed slot is the mean
    assert sorted(stacked[:, 0].tolist()) == [1.0, 3.0, 3.0, 5.0]


def test_a_space_no_training_row_reads_keeps_the_identity_and_the_others_are_standardised(tiny_elm):
    """A users-only MovieLens corpus still declares its movie space: stage 0 must not fail on it."""
    from modeling_elm.data.corpus import VectorTable
    from modeling_elm.training.standardize import standardize_adapters

    model, _ = tiny_elm
    users = VectorTable(["u1", "u2", "u3"], np.array([[1.0] * 8, [3.0] * 8, [5.0] * 8]), "user")
    movies = VectorTable(["m1"], np.zeros((1, 8)), "movie")
    split = datasets.Dataset.from_dict({"movie_slots": [[], [], []], "user_slots": [[["u1"]], [["u2"]], [["u3"]]]})
    model.model.adapters["user"] = type(model.model.adapters["movie"])(
        {**model.config.embedding_spaces["movie"], "dim": 8}, model.config.text_config.hidden_size, 1e-6)
    standardize_adapters(model, split, {"movie": movies, "user": users})
    assert torch.equal(model.model.adapters["movie"].input_mean, torch.zeros(8))
    assert torch.allclose(model.model.adapters["user"].input_mean, torch.full((8,), 3.0))


def test_train_py_standardises_when_the_recipe_says_so(tmp_path):
    from safetensors.torch import load_file

    from helpers.elm import build_tiny_corpus, tiny_train_args, write_tiny_base_model
    from modeling_elm.scripts import train

    base, corpus = write_tiny_base_model(tmp_path / "base"), build_tiny_corpus(tmp_path, tasks=("summary",))
    for flag in ("true", "false"):
        out = tmp_path / f"out-{flag}"
        train.main(tiny_train_args(base, corpus, out, stage2="none", standardize_inputs=flag, num_tokens="2"))
        stage0 = load_file(str(out / "stage0" / "model.safetensors"))
        std = stage0["model.adapters.movie.input_std"]
        assert torch.equal(std, torch.ones_like(std)) is (flag == "false")
        final = load_file(str(out / "model.safetensors"))
        assert torch.equal(final["model.adapters.movie.input_std"], std)  # the statistics stay fixed in training


def test_title_free_targets_never_name_the_movie_and_keep_what_the_vector_holds():
    from modeling_elm.data.movielens.writers.grounded import GroundedWriter, MovieFacts
    from modeling_elm.data.movielens.tasks import TASKS, get_tasks

    heat = MovieFacts("1", "Heat", 1995, ["Action", "Crime"], tags=["heist"], neighbours=["Ronin"])
    alien = MovieFacts("2", "Alien", 1979, ["Horror", "Sci-Fi"], tags=["space"])
    for detail in ("brief", "full"):
        for task in get_tasks(["movie"]):
            entities = [heat] if task.kind == "one-movie" else [heat, alien]
            text = GroundedWriter(detail, titles=False).write(task, entities)
            assert "Heat" not in text and "Alien" not in text and "(1995)" not in text, (task.name, text)
            assert not text[0].islower(), (task.name, text)
    summary = GroundedWriter("brief", titles=False).write(TASKS["summary"], [heat])
    assert summary.startswith("This movie is an action and crime film from the 1990s")
    # the default is the paper's: titles named
    assert GroundedWriter("brief").write(TASKS["summary"], [heat]).startswith("Heat (1995) is")
