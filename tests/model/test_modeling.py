import pytest
import torch
from transformers import AutoModelForCausalLM

from helpers.elm import FAMILIES, assemble
from modeling_elm import ElmForCausalLM

PROMPT = "<|im_start|>user describe the movie <movie> .<|im_end|> <|im_start|>assistant"


@pytest.mark.parametrize("family", FAMILIES)
def test_forward_loss_and_generate_with_cache_equals_without(family):
    model, processor = assemble(family)
    torch.manual_seed(0)
    vectors = torch.randn(2, 8)
    texts = [PROMPT, "<|im_start|>user <movie> ?<|im_end|> <|im_start|>assistant"]
    batch = processor(text=texts, vectors=list(vectors))
    assert batch["attention_mask"][1, 0] == 0 and batch["attention_mask"][1, -1] == 1  # left padded

    out = model(**batch, labels=batch["input_ids"])
    assert out.logits.shape == (*batch["input_ids"].shape, model.config.text_config.vocab_size)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert model.model.adapters["movie"].fc1.weight.grad.abs().sum() > 0

    with torch.no_grad():
        cached = model.generate(**batch, max_new_tokens=8, do_sample=False, min_new_tokens=8)
        uncached = model.generate(**batch, max_new_tokens=8, do_sample=False, min_new_tokens=8, use_cache=False)
    assert cached.shape == (2, batch["input_ids"].shape[1] + 8)
    assert torch.equal(cached, uncached)


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_the_vector_changes_what_follows_it_and_nothing_before(family):
    model, processor = assemble(family)
    first = processor(text=PROMPT, vectors=torch.randn(8))
    second = processor(text=PROMPT, vectors=torch.randn(8))
    position = int((first["input_ids"][0] == model.config.embedding_spaces["movie"]["placeholder_token_id"]).nonzero())
    with torch.no_grad():
        a, b = model(**first).logits[0], model(**second).logits[0]
    torch.testing.assert_close(a[:position], b[:position])
    assert (a[position:] - b[position:]).abs().max() > 1e-3


def test_same_vector_in_two_batch_rows_gives_the_same_result(tiny_elm):
    model, processor = tiny_elm
    vector = torch.randn(8)
    batch = processor(text=[PROMPT, PROMPT], vectors=[vector, vector.clone()])
    with torch.no_grad():
        logits = model(**batch).logits
    torch.testing.assert_close(logits[0], logits[1])


def test_two_spaces_each_reach_their_own_positions():
    model, processor = assemble("llama", spaces={"movie": {"dim": 8}, "user": {"dim": 5, "num_tokens": 2}})
    movie, user = torch.randn(8), torch.randn(5)
    text = "<|im_start|>user would <user> like <movie> ?<|im_end|>"
    batch = processor(text=text, vectors={"movie": movie, "user": user})
    seen = {}
    model.model.language_model.register_forward_hook(
        lambda module, args, kwargs, out: seen.update(embeds=kwargs["inputs_embeds"]), with_kwargs=True
    )
    with torch.no_grad():
        model(**batch)
        expected_movie = model.model.adapters["movie"](movie[None])
        expected_user = model.model.adapters["user"](user[None])
    ids = batch["input_ids"][0]
    spaces = model.config.embedding_spaces
    movie_positions = (ids == spaces["movie"]["placeholder_token_id"]).nonzero().flatten()
    user_positions = (ids == spaces["user"]["placeholder_token_id"]).nonzero().flatten()
    assert len(movie_positions) == 1 and len(user_positions) == 2
    assert movie_positions[0] > user_positions[-1]  # the user comes first in the text
    torch.testing.assert_close(seen["embeds"][0, movie_positions], expected_movie)
    torch.testing.assert_close(seen["embeds"][0, user_positions], expected_user)


def test_adapter_output_starts_at_the_scale_of_token_embeddings():
    from helpers.elm import build_language_model, build_tokenizer

    tokenizer = build_tokenizer()
    lm = build_language_model("llama", len(tokenizer))
    with torch.no_grad():
        lm.get_input_embeddings().weight.mul_(7.0)  # far from any default init scale
    model, _ = ElmForCausalLM.from_language_model(lm, {"movie": {"dim": 8}}, tokenizer=tokenizer)
    token_norm = model.get_input_embeddings().weight[:-1].norm(dim=-1).mean()
    with torch.no_grad():
        soft_norm = model.model.adapters["movie"](torch.randn(256, 8) * 30).norm(dim=-1).mean()
    assert 0.8 < float(soft_norm / token_norm.detach()) < 1.25


@pytest.mark.parametrize("family", ["llama", "llama-untied", "gpt2"])
def test_save_and_load_round_trip_gives_identical_logits(family, tmp_path):
    model, processor = assemble(family)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    code_files = sorted(p.name for p in tmp_path.glob("*.py"))
    assert code_files == ["configuration_elm.py", "modeling_elm.py", "processing_elm.py"]
    assert (tmp_path / "model.safetensors").is_file() and not list(tmp_path.glob("*.bin"))

    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert type(loaded) is ElmForCausalLM
    saved, restored = model.state_dict(), loaded.state_dict()
    assert saved.keys() == restored.keys()
    assert all(torch.equal(saved[k], restored[k]) for k in saved)
    tied = loaded.lm_head.weight.data_ptr() == loaded.get_input_embeddings().weight.data_ptr()
    assert tied == model.config.tie_word_embeddings
    assert loaded.generation_config.suppress_tokens == model.generation_config.suppress_tokens
    batch = processor(text=PROMPT, vectors=torch.randn(8))
    with torch.no_grad():
        # Bit-identical weights (checked above through the state dict); BLAS may round the last float32 bit
        # differently for differently aligned buffers, hence the float32-epsilon tolerance.
        torch.testing.assert_close(loaded(**batch).logits, model(**batch).logits, rtol=1e-5, atol=1e-6)


def test_bf16_loading_and_forward(tmp_path):
    model, processor = assemble("llama")
    model.save_pretrained(tmp_path)
    loaded = ElmForCausalLM.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert loaded.model.adapters["movie"].fc1.weight.dtype == torch.bfloat16
    with torch.no_grad():
        logits = loaded(**processor(text=PROMPT, vectors=torch.randn(8))).logits
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits.float()).all()


def test_sdpa_and_eager_attention_agree(tmp_path):
    model, processor = assemble("llama")
    model.save_pretrained(tmp_path)
    batch = processor(text=[PROMPT, "<|im_start|>user <movie>"], vectors=list(torch.randn(2, 8)))
    logits = {}
    for implementation in ("sdpa", "eager"):
        loaded = ElmForCausalLM.from_pretrained(tmp_path, attn_implementation=implementation)
        assert loaded.model.language_model.config._attn_implementation == implementation
        with torch.no_grad():
            logits[implementation] = loaded(**batch).logits
    mask = batch["attention_mask"].bool()
    torch.testing.assert_close(logits["sdpa"][mask], logits["eager"][mask], rtol=1e-4, atol=1e-4)


def test_gradient_checkpointing_gives_the_same_loss_and_gradients():
    results = []
    for checkpointing in (False, True):
        model, processor = assemble("llama")
        model.train()
        if checkpointing:
            model.activation_checkpointing_enable()
            assert model.model.language_model.layers[0].gradient_checkpointing
        torch.manual_seed(3)
        batch = processor(text=[PROMPT, PROMPT], vectors=list(torch.randn(2, 8)))
        loss = model(**batch, labels=batch["input_ids"]).loss
        loss.backward()
        results.append((loss.detach(), model.model.adapters["movie"].fc1.weight.grad.clone()))
    torch.testing.assert_close(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1])


def test_beam_search_with_several_returns_keeps_each_row_with_its_vector(tiny_elm):
    model, processor = tiny_elm
    vectors = list(torch.randn(2, 8))
    settings = dict(max_new_tokens=5, num_beams=2, num_return_sequences=2, do_sample=False)
    with torch.no_grad():
        together = model.generate(**processor(text=[PROMPT, PROMPT], vectors=vectors), **settings)
        alone = [model.generate(**processor(text=[PROMPT], vectors=[v]), **settings) for v in vectors]
    assert torch.equal(together, torch.cat(alone))


def test_lora_on_the_lm_with_the_adapter_fully_trained_and_merged():
    from peft import LoraConfig, get_peft_model

    model, processor = assemble("llama")
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                      modules_to_save=model.adapter_module_names)
    peft_model = get_peft_model(model, lora)
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert any("lora_" in n for n in trainable)
    assert any("adapters" in n and "modules_to_save" in n and "lora_" not in n for n in trainable)
    assert not any("embed_tokens" in n or "mlp" in n for n in trainable)

    batch = processor(text=[PROMPT], vectors=[torch.randn(8)])
    optimizer = torch.optim.SGD([p for p in peft_model.parameters() if p.requires_grad], lr=0.5)
    peft_model.train()
    for _ in range(3):
        optimizer.zero_grad()
        peft_model(**batch, labels=batch["input_ids"]).loss.backward()
        optimizer.step()
    peft_model.eval()
    with torch.no_grad():
        before = peft_model(**batch).logits
        merged = peft_model.merge_and_unload()
        assert type(merged) is ElmForCausalLM
        after = merged(**batch).logits
    torch.testing.assert_close(before, after, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_generate_from_the_prompt_embeddings_gives_the_same_new_tokens(family):
    """generate(inputs_embeds=embed_prompt(ids, vectors)): what a caller that computes the prompt embeddings itself
    (as the serving client does) runs; a left-padded batch, so positions come from the attention mask."""
    model, processor = assemble(family)
    torch.manual_seed(0)
    texts = [PROMPT, "<|im_start|>user <movie> ?<|im_end|> <|im_start|>assistant"]
    batch = processor(text=texts, vectors=list(torch.randn(2, 8)))
    # n-grams off on both sides: from embeddings alone, generate cannot see the prompt's tokens to ban repeats of
    settings = dict(max_new_tokens=8, min_new_tokens=8, no_repeat_ngram_size=0)
    with torch.no_grad():
        from_ids = model.generate(**batch, **settings)[:, batch["input_ids"].shape[1]:]
        embeds = model.embed_prompt(batch["input_ids"], batch["vectors"])
        from_embeds = model.generate(inputs_embeds=embeds, attention_mask=batch["attention_mask"], **settings)
    assert from_embeds.shape == (2, 8)  # only the new tokens: generate had no ids to return
    assert torch.equal(from_embeds, from_ids)
