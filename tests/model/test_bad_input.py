"""The model and the processor refuse malformed vectors and inputs (wrong sizes, NaN or inf, a single number, text,
tensors on the meta device, values that overflow the model's dtype, complex values, vectors per example where the
model takes them by space) with a ValueError naming what was expected and what came, before any compute; so do
`inference.generate_texts` and the serving client, which hand vectors on to the processor."""

import numpy as np
import pytest
import torch

from helpers.elm import assemble

TEXT = "<|im_start|>user describe <movie> .<|im_end|>"


@pytest.fixture(scope="module")
def elm_and_batch():
    model, processor = assemble("llama", spaces={"movie": {"dim": 8}, "user": {"dim": 5, "num_tokens": 2}})
    calls = []
    model.model.language_model.register_forward_pre_hook(lambda *a: calls.append(1))
    batch = processor(text=[TEXT, TEXT + " <user>"],
                      vectors=[{"movie": torch.randn(8)}, {"movie": torch.randn(8), "user": torch.randn(5)}])
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
        ({"movie": torch.randn(3, 8)},
         "3 vector(s) need 3 <movie> placeholder token(s) (1 per vector), but the input has 2"),
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
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
              vectors=vectors_with(batch, **changes))
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


def test_a_vector_that_overflows_the_model_dtype_is_refused():
    model, processor = assemble("llama")
    model = model.to(torch.float16)
    batch = processor(text="describe <movie> .", vectors=torch.ones(8))
    finite_in_fp32 = torch.full((1, 8), 7e4)
    with pytest.raises(ValueError,
                       match=r"NaN or inf once cast to the model's torch.float16 \(its largest value is 6.55e\+04\)"):
        model(input_ids=batch["input_ids"], vectors=finite_in_fp32)


@pytest.mark.parametrize("vectors, message", [
    (torch.tensor(1.0), "got a single number"),
    (torch.empty(1, 8, device="meta"), "on the meta device"),
    ("a movie", "must be numbers"),
])
def test_malformed_vectors_raise_value_errors_at_the_model(vectors, message):
    model, processor = assemble("llama")
    batch = processor(text="describe <movie> .", vectors=torch.ones(8))
    with pytest.raises(ValueError, match=message):
        model(input_ids=batch["input_ids"], vectors=vectors)


@pytest.mark.parametrize("kwargs, message", [
    (dict(text=[]), r"empty batch \(text=\[\]\)"),
    (dict(text="describe <movie> .", vectors=torch.empty(8, device="meta")), "on the meta device"),
    (dict(text="describe <movie> .", vectors=["a", "b"]), "must be numbers"),
    (dict(text="describe <movie> .", vectors=np.float32(1.0)), r"got shape \(\)"),
    (dict(text=[3], vectors=None), "a string or a list of strings"),
])
def test_malformed_inputs_raise_value_errors_at_the_processor(kwargs, message):
    _, processor = assemble("llama")
    with pytest.raises(ValueError, match=message):
        processor(**kwargs)


def test_vectors_per_example_at_the_model_say_to_batch_them_through_the_processor():
    model, processor = assemble("llama")
    batch = processor(text="describe <movie> .", vectors=torch.ones(8))
    with pytest.raises(ValueError, match=r"vectors per example \(a list of dicts\).*model\(\*\*processor\("):
        model(input_ids=batch["input_ids"], vectors=[{"movie": torch.ones(8)}])
    with pytest.raises(ValueError, match=r"processor's whole output: pass it as model\(\*\*batch\)"):
        model(input_ids=batch["input_ids"], vectors=batch)


@pytest.fixture(scope="module")
def single_space_elm():
    return assemble("llama")


def generate_and_client():
    """generate_texts and the serving client's prompt embeddings: the two ways prompts with vectors leave this
    package's Python API (describe and evaluation go through them). The client needs no server for embeddings."""
    from modeling_elm.inference import generate_texts
    from modeling_elm.serving import ElmServingClient

    return {
        "generate_texts": lambda model, processor, vectors: generate_texts(
            model, processor, ["describe <movie> ."], [vectors], max_new_tokens=2),
        "client": lambda model, processor, vectors: ElmServingClient(
            model, processor, "http://127.0.0.1:9").prompt_embeddings(["describe <movie> ."], [vectors]),
    }


@pytest.mark.parametrize("path", ["generate_texts", "client"])
@pytest.mark.parametrize("vectors, message", [
    ({"movie": np.ones(8) * (1 + 2j)}, r"complex-valued \(torch.complex128\).*Pass the real part \(v.real\)"),
    ({"movie": [torch.ones(8, dtype=torch.complex64)]}, r"complex-valued \(torch.complex64\)"),
    ({"movie": np.ones((8, 1))}, r"expects vectors of size 8, got shape \(8, 1\); pass one vector of shape \(8,\) "
                                 r"or several as \(n, 8\)"),
    ({"movie": ["a", "b"]}, r"must be numbers, got text: pass one vector of shape \(dim,\) or several as \(n, dim\)"),
    ({"movie": [[1.0] * 8, [1.0] * 7]}, r"not one array of numbers .*pass one vector of shape \(dim,\)"),
    ({"movie": np.ones((1, 1, 8))}, r"have shape \(1, 1, 8\): pass one vector of shape \(dim,\) or several"),
])
def test_generation_paths_refuse_what_a_cast_to_float_would_lose_or_misread(single_space_elm, path, vectors,
                                                                           message):
    model, processor = single_space_elm
    with pytest.raises(ValueError, match=message):
        generate_and_client()[path](model, processor, vectors)


@pytest.mark.parametrize("path", ["generate_texts", "client"])
def test_generation_paths_take_one_vector_as_dim_or_as_one_row(single_space_elm, path):
    model, processor = single_space_elm
    vector = np.random.default_rng(0).standard_normal(8).astype(np.float32)
    run = generate_and_client()[path]
    one_dim, one_row = run(model, processor, {"movie": vector}), run(model, processor, {"movie": vector[None]})
    assert one_dim == one_row if path == "generate_texts" else torch.equal(one_dim[0], one_row[0])
