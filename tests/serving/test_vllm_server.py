"""A real vLLM server (started here on 127.0.0.1 from .venv-vllm, `bash scripts/setup_vllm.sh`) answers an exported
ELM's prompt embeddings token for token as `ElmForCausalLM.generate` does: tiny random Llama, Qwen 2, Gemma 2 and
Gemma 3, and the real SmolLM2-135M-Instruct, two vectors in one prompt and two embedding spaces, with the checkpoint's
no-repeat-n-gram rule applied by the engine; a server stopped mid-run gives one clear error instead of a hang."""

import shutil
import socket
import threading

import numpy as np
import pytest
import torch

from modeling_elm import ElmForCausalLM
from modeling_elm.inference import _per_example_vectors, generate_texts
from modeling_elm.serving import ElmServingClient, ServerError, export_for_serving
from modeling_elm.serving.engine import start_engine, stop_engine
from test_export import SPACES, tiny_trained_elm

pytestmark = pytest.mark.slow
NEW_TOKENS = 16


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def smollm2_elm(folder):
    """The real SmolLM2-135M-Instruct wrapped with untrained adapters for both spaces."""
    from modeling_elm.base_models import resolve_base_model

    model, processor = ElmForCausalLM.from_language_model(
        resolve_base_model("HuggingFaceTB/SmolLM2-135M-Instruct"), SPACES, dtype=torch.float32)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


# Tiny random LMs of four families, and the real SmolLM2. Gemma scales its embeddings by sqrt(hidden size): inside
# the embedding module in transformers, only for token ids in vLLM, so prompt embeddings must arrive scaled.
# vLLM's CPU attention needs head_dim >= 32.
@pytest.fixture(scope="module", params=["tiny-llama", "tiny-qwen2", "tiny-gemma2", "tiny-gemma3", "smollm2"])
def served(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    source = (smollm2_elm(folder / "elm") if request.param == "smollm2" else
              tiny_trained_elm(folder / "elm", request.param.removeprefix("tiny-"), head_dim=32))
    export = export_for_serving(str(source), folder / "export")
    process, url, _ = start_engine(export, port=free_port(), log=folder / "server.log", max_model_len=512)
    try:
        yield ElmForCausalLM.from_pretrained(source).eval(), ElmServingClient.from_export(export, url), process
    finally:
        stop_engine(process)
        for models in (folder / "elm", folder / "export"):  # server.log stays for a failure's reading
            shutil.rmtree(models, ignore_errors=True)


def requests(n_single=6, seed=0):
    """Prompts with both spaces, and prompts with two movie vectors; vectors as the callers pass them."""
    rng = np.random.default_rng(seed)
    prompts = ["Would <user> enjoy <movie>?"] * n_single + ["Compare <movie> with <movie>."] * 2
    vectors = [{"movie": [rng.standard_normal(8)], "user": [rng.standard_normal(4)]} for _ in range(n_single)]
    vectors += [{"movie": [rng.standard_normal(8), rng.standard_normal(8)]} for _ in range(2)]
    return prompts, vectors


def test_greedy_tokens_through_the_server_equal_generate(served):
    model, client, _ = served
    prompts, vectors = requests()
    embeddings = client.prompt_embeddings(prompts, vectors)
    # Exactly NEW_TOKENS on both sides (EOS held back), so every compared position is a real decision; plain greedy on
    # both (the n-gram rule has its own tests below).
    settings = {k: v for k, v in client.sampling(NEW_TOKENS).items() if k != "vllm_xargs"}
    settings |= {"min_tokens": NEW_TOKENS, "return_token_ids": True, "logprobs": 0}
    for prompt, row_vectors, embedded in zip(prompts, vectors, embeddings):
        batch = client.processor(text=[client.processor.prompt(prompt)], vectors=[_per_example_vectors(row_vectors)])
        local = model.generate(**batch, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, no_repeat_ngram_size=0,
                               output_logits=True, return_dict_in_generate=True)
        tokens = local.sequences[0, batch["input_ids"].shape[1]:]
        choice = client.complete(embedded, **settings)
        assert choice["token_ids"] == tokens.tolist()
        # Same tokens could still come from different numbers (a random LM often repeats one token); the first
        # token's log-probability is read off the prompt embeddings alone, so it checks what was sent.
        first = torch.log_softmax(local.logits[0][0].float(), dim=-1)[tokens[0]].item()
        assert choice["logprobs"]["token_logprobs"][0] == pytest.approx(first, abs=2e-3)
    # ... and that check can fail: embeddings off by Gemma's scale (x sqrt(hidden size)) read differently.
    wrong = client.complete(embeddings[0] * model.config.text_config.hidden_size ** 0.5, **settings)
    right = client.complete(embeddings[0], **settings)
    assert (wrong["token_ids"] != right["token_ids"] or abs(wrong["logprobs"]["token_logprobs"][0]
                                                            - right["logprobs"]["token_logprobs"][0]) > 1e-2)
    assert not torch.equal(embeddings[0], embeddings[1])  # the vectors are in what was sent


def test_answers_through_the_client_equal_generate_texts(served):
    """With the checkpoint's own decoding, no_repeat_ngram_size=4 included: the engine's logits processor applies it."""
    from transformers import AutoTokenizer

    model, client, _ = served
    assert model.generation_config.no_repeat_ngram_size == 4
    prompts, vectors = requests(seed=1)
    local = generate_texts(model, client.processor, prompts, vectors, max_new_tokens=NEW_TOKENS)
    engine = AutoTokenizer.from_pretrained(client.export_dir / "lm")
    ids = client.processor.tokenizer("story year people", add_special_tokens=False)["input_ids"]
    if engine.decode(ids) != client.processor.tokenizer.decode(ids):
        # The tests' word-level tokenizer has no decoder of its own; for a Qwen 2 config transformers loads it as
        # Qwen2Tokenizer, whose byte-level decoder joins words without spaces (a real Qwen's tokenizer is byte-level
        # on both sides). The tokens are what must be equal: decode the local ones as the engine does.
        batches = [client.processor(text=[client.processor.prompt(p)], vectors=[_per_example_vectors(v)])
                   for p, v in zip(prompts, vectors)]
        local = [engine.decode(model.generate(**b, max_new_tokens=NEW_TOKENS)[0, b["input_ids"].shape[1]:],
                               skip_special_tokens=True).strip() for b in batches]
    assert client.generate_texts(prompts, vectors, max_new_tokens=NEW_TOKENS) == local


def repeats_an_ngram(prompt: list[int], answer: list[int], n: int = 4) -> bool:
    """Whether an n-gram ending in the answer occurred before (in the prompt or earlier in the answer). The prompt's
    own repeats (a placeholder's k copies) are not the answer's doing."""
    tokens = prompt + answer
    first = max(0, len(prompt) - n + 1)  # the first n-gram that ends in the answer
    seen = {tuple(tokens[i:i + n]) for i in range(first)}
    for i in range(first, len(tokens) - n + 1):
        if tuple(tokens[i:i + n]) in seen:
            return True
        seen.add(tuple(tokens[i:i + n]))
    return False


def test_the_served_rule_fires_where_plain_greedy_repeats(served):
    """A long answer that plain greedy decoding makes repeat a 4-gram: the rule changes it, to generate's."""
    model, client, _ = served
    prompts, vectors = requests(seed=3)
    long = 128  # a tiny random Llama repeats a 4-gram within 128 greedy tokens on one of these prompts, Gemma on all
    settings = client.sampling(long) | {"min_tokens": long, "return_token_ids": True}
    plain = {k: v for k, v in settings.items() if k != "vllm_xargs"}
    fired = 0
    for (ids, embedded), prompt, row_vectors in zip(client.prompt_inputs(prompts, vectors), prompts, vectors):
        unruled = client.complete(embedded, prompt_ids=ids, **plain)["token_ids"]
        ruled = client.complete(embedded, prompt_ids=ids, **settings)["token_ids"]
        assert not repeats_an_ngram(ids, ruled)  # over the prompt too, as generate(input_ids=...) sees it
        batch = client.processor(text=[client.processor.prompt(prompt)], vectors=[_per_example_vectors(row_vectors)])
        local = model.generate(**batch, max_new_tokens=long, min_new_tokens=long)
        assert ruled == local[0, batch["input_ids"].shape[1]:].tolist()
        fired += repeats_an_ngram(ids, unruled)
    assert fired  # the check above compared answers the rule actually changed


def test_bad_vectors_never_reach_the_server(served):
    _, client, _ = served
    with pytest.raises(ValueError):
        client.generate_texts(["Would <user> enjoy <movie>?"], [{"movie": [np.zeros(7)], "user": [np.zeros(4)]}])


def test_a_server_stopped_mid_run_gives_one_clear_error(served):
    """Last in the module: it stops the server."""
    _, client, process = served
    prompts, vectors = requests(n_single=64, seed=2)
    outcome = {}

    def ask():
        try:
            outcome["answers"] = client.generate_texts(prompts, vectors, max_new_tokens=200)
        except ServerError as error:
            outcome["error"] = str(error)

    asker = threading.Thread(target=ask)
    asker.start()
    stop_engine(process)
    asker.join(timeout=client.timeout + 30)
    assert not asker.is_alive()  # nothing waits or retries forever
    assert client.url in outcome.get("error", "") and "vllm" in outcome["error"].lower()
