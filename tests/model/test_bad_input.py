"""The model refuses malformed vectors with a message naming what was expected and what came, before any compute."""

import pytest
import torch

from elm_testing import assemble

TEXT = "<|im_start|>user describe <movie> .<|im_end|>"


@pytest.fixture(scope="module")
def elm_and_batch():
    model, processor = assemble("llama", spaces={"movie": {"dim": 8}, "user": {"dim": 5, "num_tokens": 2}})
    calls = []
    model.model.language_model.register_forward_pre_hook(lambda *a: calls.append(1))
    batch = processor(text=[TEXT, TEXT + " <user>"], vectors=[{"movie": torch.randn(8)}, {"movie": torch.randn(8), "user": torch.randn(5)}])
    return model, batch, calls


def vectors_with(batch, **changes):
    vectors = dict(batch["vectors"])
    vectors.update(changes)
    return {name: v for name, v in vectors.items() if v is not None}


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"movie": torch.randn(2, 9)}, "Space 'movie' expects vectors of size 8, got size 9"),
        ({"movie": torch.tensor([[float("nan")] * 8, [0.0] * 8])}, "contain NaN or inf (vector index [0])"),
        ({"user": torch.tensor([[0.0] * 4 + [float("inf")]])}, "contain NaN or inf"),
        ({"movie": torch.randn(3, 8)}, "3 vector(s) need 3 <movie> placeholder token(s) (1 per vector), but the input has 2"),
        ({"movie": torch.randn(1, 8)}, "1 vector(s) need 1 <movie> placeholder token(s)"),
        ({"user": None}, "2 <user> placeholder token(s) but no vectors for space 'user'"),
        ({"book": torch.randn(1, 3)}, "Unknown embedding space(s) ['book']"),
        ({"movie": torch.randn(8)}, "got a single vector of shape (8,)"),
        ({"movie": torch.randn(2, 8, dtype=torch.complex64)}, "are complex-valued (torch.complex64)"),
    ],
)
def test_bad_vectors_raise_before_any_compute(elm_and_batch, changes, message):
    model, batch, calls = elm_and_batch
    calls.clear()
    with pytest.raises(ValueError) as error:
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], vectors=vectors_with(batch, **changes))
    assert message in str(error.value)
    assert calls == []


def test_vectors_without_any_placeholder_are_refused(elm_and_batch):
    model, batch, calls = elm_and_batch
    calls.clear()
    plain = batch["input_ids"][:1, :3]
    with pytest.raises(ValueError, match=r"1 vector\(s\) need 1 <movie> placeholder token\(s\) .* but the input has 0"):
        model(input_ids=plain, vectors={"movie": torch.randn(1, 8)})
    assert calls == []


def test_a_bare_tensor_needs_a_single_space_model(elm_and_batch):
    model, batch, _ = elm_and_batch
    with pytest.raises(ValueError, match="reads several embedding spaces"):
        model(input_ids=batch["input_ids"], vectors=torch.randn(2, 8))


def test_vectors_with_inputs_embeds_are_refused(elm_and_batch):
    model, batch, _ = elm_and_batch
    embeds = model.get_input_embeddings()(batch["input_ids"])
    with pytest.raises(ValueError, match="pass input_ids, not inputs_embeds"):
        model(inputs_embeds=embeds, vectors=batch["vectors"])


def test_generate_refuses_bad_vectors_too(elm_and_batch):
    model, batch, _ = elm_and_batch
    with pytest.raises(ValueError, match="expects vectors of size 8"):
        model.generate(**{**batch, "vectors": vectors_with(batch, movie=torch.randn(2, 7))}, max_new_tokens=2)


def test_the_processor_refuses_complex_vectors_instead_of_dropping_the_imaginary_part():
    import numpy as np

    _, processor = assemble("llama", spaces={"movie": {"dim": 8}})
    with pytest.raises(ValueError, match=r"complex-valued .*Pass the real part \(v.real\)"):
        processor(text=TEXT, vectors=np.ones(8) * (1 + 2j))
