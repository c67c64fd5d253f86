"""What GPU speed rests on, proven on the CPU: a forward with vectors compiles as one graph (no host syncs), the
adapters run in the compute dtype without dtype-mismatch warnings, and the value checks keep their messages."""

import warnings

import pytest
import torch

from helpers.elm import assemble


def _batch(processor, n_rows=2, seed=0):
    torch.manual_seed(seed)
    texts = ["describe the movie <movie> ." if i % 2 else "what is <movie> about ? <movie>" for i in range(n_rows)]
    vectors = [torch.randn(text.count("<movie>"), 8) for text in texts]
    return processor(text=texts, vectors=vectors)


def test_forward_with_vectors_compiles_as_one_graph():
    model, processor = assemble("llama")
    batch = _batch(processor)
    eager = model(**batch).logits
    # fullgraph=True fails on any graph break, and a host sync (`int(tensor)`, `.tolist()`, `if tensor:`) is one.
    # The backend does not matter for that proof; aot_eager keeps the test fast.
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(**batch).logits, eager, rtol=1e-5, atol=1e-5)
    assert model._can_compile_fullgraph


def test_compiled_forward_still_refuses_mismatched_vectors():
    model, processor = assemble("llama")
    batch = _batch(processor)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    compiled(**batch)
    one_short = {"movie": batch["vectors"]["movie"][:-1]}
    with pytest.raises(RuntimeError, match="vectors do not match the placeholders"):
        compiled(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], vectors=one_short)


def test_eager_cpu_errors_keep_their_messages():
    model, processor = assemble("llama")
    batch = _batch(processor)
    vectors = batch["vectors"]["movie"]
    with pytest.raises(ValueError, match=r"2 vector\(s\) need 2 <movie> placeholder token\(s\) .* the input has 3"):
        model(input_ids=batch["input_ids"], vectors=vectors[:2])
    bad = vectors.clone()
    bad[1, 0] = float("nan")
    with pytest.raises(ValueError, match=r"contain NaN or inf \(vector index \[1\]\)"):
        model(input_ids=batch["input_ids"], vectors=bad)
    with pytest.raises(ValueError, match=r"has 3 <movie> placeholder token\(s\) but no vectors"):
        model(input_ids=batch["input_ids"])


def test_generation_checks_on_the_host_once_then_never_again(monkeypatch):
    model, processor = assemble("llama")
    batch = _batch(processor)
    calls = []
    original = type(model.model).check_vectors

    def spy(self, input_ids, vectors, on_host=None):
        calls.append(on_host)
        return original(self, input_ids, vectors, on_host=on_host)

    monkeypatch.setattr(type(model.model), "check_vectors", spy)
    model.generate(**batch, max_new_tokens=4, do_sample=False)
    assert calls[0] is True  # the first step: forced host check, full messages
    assert calls.count(True) == 1
    with pytest.raises(ValueError, match="vector\\(s\\) need"):
        model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       vectors=batch["vectors"]["movie"][:1], max_new_tokens=2)


def test_bf16_autocast_runs_the_adapter_without_dtype_warnings():
    model, processor = assemble("llama")
    batch = _batch(processor)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the fused-kernel fallback warning would raise here
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(**batch, labels=batch["input_ids"])
            out.loss.backward()
    soft = model.model.adapters["movie"](batch["vectors"]["movie"])
    assert soft.dtype == torch.float32  # outside autocast: the adapter's own dtype
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model.model.adapters["movie"](batch["vectors"]["movie"]).dtype == torch.bfloat16


def test_bf16_model_adapter_matches_fp32_within_bf16_precision():
    model, processor = assemble("llama")
    vectors = _batch(processor)["vectors"]["movie"]
    adapter = model.model.adapters["movie"]
    reference = adapter(vectors)
    adapter_bf16 = adapter.to(torch.bfloat16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = adapter_bf16(vectors)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), reference, rtol=0.05, atol=0.05)
