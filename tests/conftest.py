"""Fixtures shared by the test modules; the helpers they use are in helpers/."""

import pytest

from helpers.elm import assemble, build_tiny_corpus, build_tokenizer, run_train, tiny_train_args, write_tiny_base_model


@pytest.fixture
def tokenizer():
    return build_tokenizer()


@pytest.fixture
def tiny_elm():
    return assemble("llama")


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A tiny ELM trained through train.py (stage 1 only) on a tiny corpus, once per test session:
    (model folder, corpus folder). Tests copy it before changing anything."""
    folder = tmp_path_factory.mktemp("trained")
    base, corpus = write_tiny_base_model(folder / "base"), build_tiny_corpus(folder)
    out = run_train(tiny_train_args(base, corpus, folder / "elm", stage2="none", stage1_max_steps=6))
    return out, corpus
