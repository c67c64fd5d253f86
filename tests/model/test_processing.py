import numpy as np
import pytest
import torch
from transformers import AutoProcessor

from helpers.elm import assemble
from modeling_elm import ElmProcessor

TEXT = "<|im_start|>user describe <movie> .<|im_end|>"


@pytest.fixture(scope="module")
def two_space_elm():
    return assemble("llama", spaces={"movie": {"dim": 8}, "user": {"dim": 5, "num_tokens": 3}})


@pytest.mark.parametrize(
    "as_input",
    [lambda v: v, lambda v: v.numpy(), lambda v: v.tolist(), lambda v: torch.tensor(v.tolist(), dtype=torch.float64)],
    ids=["torch", "numpy", "list", "float64"],
)
def test_vectors_in_any_array_form_give_the_same_batch(tiny_elm, as_input):
    _, processor = tiny_elm
    vectors = torch.randn(2, 8)
    reference = processor(text=[TEXT, TEXT], vectors=list(vectors))
    batch = processor(text=[TEXT, TEXT], vectors=[as_input(v) for v in vectors])
    torch.testing.assert_close(batch["vectors"]["movie"], reference["vectors"]["movie"])
    assert batch["vectors"]["movie"].dtype == torch.float32


def test_several_vectors_per_example_keep_their_order(two_space_elm):
    model, processor = two_space_elm
    movies = np.random.rand(3, 8).astype(np.float32)
    user = np.random.rand(5)
    texts = ["<|im_start|>user <user> likes <movie> and <movie>", "<|im_start|>user what about <movie>"]
    batch = processor(text=texts, vectors=[{"movie": movies[:2], "user": user}, {"movie": movies[2]}])
    torch.testing.assert_close(batch["vectors"]["movie"], torch.from_numpy(movies))
    assert batch["vectors"]["user"].shape == (1, 5)
    user_id = model.config.embedding_spaces["user"]["placeholder_token_id"]
    assert (batch["input_ids"][0] == user_id).sum() == 3  # one <user> marker, k = 3 soft tokens
    with torch.no_grad():
        assert torch.isfinite(model(**batch).logits).all()


def test_left_padding_for_generation(tiny_elm):
    _, processor = tiny_elm
    batch = processor(text=[TEXT, "<movie>"], vectors=list(torch.randn(2, 8)))
    assert batch["attention_mask"].tolist()[1] == [0] * 5 + [1]
    assert batch["input_ids"][1, 0] == processor.tokenizer.pad_token_id


def test_saves_and_loads_with_auto_processor(tiny_elm, tmp_path):
    model, processor = tiny_elm
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, ElmProcessor)
    assert loaded.embedding_spaces == processor.embedding_spaces
    vector = torch.randn(8)
    again, before = loaded(text=TEXT, vectors=vector), processor(text=TEXT, vectors=vector)
    assert torch.equal(again["input_ids"], before["input_ids"])
    prompt = loaded.apply_chat_template([{"role": "user", "content": "describe <movie>"}], tokenize=False)
    assert prompt == "<|im_start|>user describe <movie><|im_end|> "


@pytest.mark.parametrize(
    "text, vectors, message",
    [
        (TEXT, torch.randn(9), "expects vectors of size 8, got shape (1, 9)"),
        (TEXT, torch.full((8,), float("nan")), "contain NaN or inf"),
        (TEXT, torch.tensor([1.0] * 7 + [float("inf")]), "contain NaN or inf"),
        (TEXT, torch.randn(2, 8), "1 <movie> placeholder(s) but 2 vector(s)"),
        (TEXT + " and <movie>", torch.randn(8), "2 <movie> placeholder(s) but 1 vector(s)"),
        ("no placeholder here", torch.randn(8), "no placeholder"),
        (TEXT, {"book": torch.randn(8)}, "Unknown embedding space(s) ['book']"),
        ([TEXT, TEXT], [torch.randn(8)], "Got 2 text(s) but vectors for 1 example(s)"),
    ],
)
def test_bad_vectors_are_refused_by_the_processor(tiny_elm, text, vectors, message):
    _, processor = tiny_elm
    with pytest.raises(ValueError) as error:
        processor(text=text, vectors=vectors)
    assert message in str(error.value)


def test_truncation_that_would_cut_a_placeholder_is_refused(tiny_elm):
    _, processor = tiny_elm
    words = "the movie is good and the film is great and " * 3
    with pytest.raises(ValueError, match="Truncation would cut a vector out of the prompt"):
        processor(text=words + "<movie>", vectors=torch.randn(8), truncation=True, max_length=10)
    ok = processor(text="<movie> " + words, vectors=torch.randn(8), truncation=True, max_length=10)
    assert ok["input_ids"].shape[1] == 10


def test_the_processors_own_batch_format_can_be_passed_back_in(two_space_elm):
    """{space: (n, dim)} with the rows in placeholder order across the batch, as `__call__` returns it, gives the same
    batch as the vectors per text; counts that do not add up are refused with the counts per text."""
    _, processor = two_space_elm
    texts = ["<|im_start|>user <user> likes <movie> and <movie>", "<|im_start|>user what about <movie>"]
    per_text = [{"movie": torch.randn(2, 8), "user": torch.randn(5)}, {"movie": torch.randn(8)}]
    reference = processor(text=texts, vectors=per_text)
    again = processor(text=texts, vectors=reference["vectors"])
    assert torch.equal(again["input_ids"], reference["input_ids"])
    for name in ("movie", "user"):
        torch.testing.assert_close(again["vectors"][name], reference["vectors"][name])
    single = processor(text=texts[1], vectors={"movie": torch.randn(1, 8)})  # one text: (1, 8) as it comes out
    assert single["vectors"]["movie"].shape == (1, 8)
    counts = r"2 vector\(s\) for space 'movie' but the texts have 3 <movie> placeholder\(s\) \(\[2, 1\] per text\)"
    with pytest.raises(ValueError, match=counts):
        processor(text=texts, vectors={"movie": torch.randn(2, 8), "user": torch.randn(1, 5)})
    with pytest.raises(ValueError, match=r"Unknown embedding space\(s\) \['book'\].*a list with one entry per text"):
        processor(text=texts, vectors={"book": torch.randn(3, 8)})
