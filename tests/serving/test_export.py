"""Export for serving: the plain LM fed the ELM's prompt embeddings computes exactly what the ELM computes, for
every family (Gemma scales its embeddings inside the embedding module, which vLLM leaves to the sender), and the
client refuses bad input before any request."""

import json

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from helpers.elm import build_language_model, build_tokenizer, sharpen
from modeling_elm import ElmForCausalLM
from modeling_elm.inference import _per_example_vectors
from modeling_elm.serving import ElmServingClient, ServerError, export_for_serving
from modeling_elm.serving.client import encode_embeddings

SPACES = {"movie": {"dim": 8}, "user": {"dim": 4}}
PROMPT = "would <user> like <movie> ?"


def tiny_trained_elm(folder, family, head_dim=8, seed=2, positions=None):
    """A tiny ELM (random LM, large random adapters so vectors visibly matter), saved as training would. `seed` draws
    the LM's weights (same shapes, other model); `positions` sets the LM's max_position_embeddings."""
    tokenizer = build_tokenizer()
    lm = build_language_model(family, len(tokenizer), head_dim=head_dim)
    if positions is not None:
        lm.config.max_position_embeddings = positions
    sharpen(lm, family, seed)
    model, processor = ElmForCausalLM.from_language_model(lm, SPACES, tokenizer=tokenizer)
    torch.manual_seed(1)
    for adapter in model.model.adapters.values():  # visible vectors: random, large adapters
        torch.nn.init.normal_(adapter.fc1.weight, std=0.5)
        torch.nn.init.normal_(adapter.fc2.weight, std=0.5)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("family", ["llama", "llama-untied", "qwen2", "gpt2", "gemma2", "gemma3"])
def test_exported_lm_on_prompt_embeddings_equals_the_elm(tmp_path, family):
    source = tiny_trained_elm(tmp_path / "elm", family)
    export = export_for_serving(str(source), tmp_path / "export")
    elm = ElmForCausalLM.from_pretrained(source).eval()
    lm = AutoModelForCausalLM.from_pretrained(export / "lm").eval()
    client = ElmServingClient.from_export(export, "http://127.0.0.1:9")  # no request is made here
    vectors = {"movie": [torch.randn(8).numpy()], "user": [torch.randn(4).numpy()]}
    embeds = client.prompt_embeddings([PROMPT], [vectors])[0]
    batch = client.processor(text=[client.processor.prompt(PROMPT)], vectors=[{k: v for k, v in vectors.items()}])
    with torch.no_grad():
        expected = elm(**batch).logits[0]
        served = lm(inputs_embeds=embeds[None]).logits[0]
        other = client.prompt_embeddings([PROMPT], [{"movie": [torch.randn(8).numpy()], "user": vectors["user"]}])[0]
    torch.testing.assert_close(served, expected, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(other, embeds)  # the vector is in the embeddings
    # What the engine needs beside the weights: the chat template, the placeholders, the decoding defaults.
    tokenizer = AutoTokenizer.from_pretrained(export / "lm")
    assert tokenizer.chat_template and "<movie>" in tokenizer.get_vocab()
    decoding = GenerationConfig.from_pretrained(export / "lm")
    assert decoding.do_sample is False and decoding.no_repeat_ngram_size == 4
    assert set(elm.config.placeholder_token_ids.values()) <= set(decoding.suppress_tokens)
    assert json.loads((export / "elm_export.json").read_text())["spaces"]["user"]["dim"] == 4


def test_bad_input_is_refused_before_any_request(tmp_path):
    export = export_for_serving(str(tiny_trained_elm(tmp_path / "elm", "llama")), tmp_path / "export")
    client = ElmServingClient.from_export(export, "http://127.0.0.1:9")

    def refused(vectors, prompt=PROMPT, match=""):
        with pytest.raises(ValueError, match=match):
            client.generate_texts([prompt], [vectors])

    good_user = [torch.randn(4).numpy()]
    refused({"movie": [torch.randn(7).numpy()], "user": good_user}, match="8")  # wrong size
    refused({"movie": [torch.full((8,), float("nan")).numpy()], "user": good_user}, match="(?i)nan")
    refused({"film": [torch.randn(8).numpy()], "user": good_user}, match="film")  # unknown space
    refused({"movie": [torch.randn(8).numpy()] * 2, "user": good_user}, match="placeholder")  # 2 vectors, 1 slot


def test_a_server_that_is_down_gives_one_message_with_url_and_fix(tmp_path):
    export = export_for_serving(str(tiny_trained_elm(tmp_path / "elm", "llama")), tmp_path / "export")
    client = ElmServingClient.from_export(export, "http://127.0.0.1:9", timeout=5)
    vectors = {"movie": [torch.randn(8).numpy()], "user": [torch.randn(4).numpy()]}
    with pytest.raises(ServerError, match=r"No vLLM server answers at http://127\.0\.0\.1:9 .*scripts\.serve --export"):
        client.generate_texts([PROMPT], [vectors])


def test_prompt_embeds_wire_format_round_trips_as_vllm_reads_it():
    import base64
    import io

    tensor = torch.randn(5, 32)
    decoded = torch.load(io.BytesIO(base64.b64decode(encode_embeddings(tensor))), weights_only=True)
    assert torch.equal(decoded, tensor)


def test_describe_and_evaluate_with_an_unreachable_server_say_so_before_generating(trained, tmp_path):
    from modeling_elm.scripts import describe
    from modeling_elm.scripts import evaluate

    model, corpus = trained
    with pytest.raises(SystemExit, match=r"No vLLM server answers at http://127\.0\.0\.1:9 "):
        describe.main(["--model", str(model), "--corpus", str(corpus), "--server", "http://127.0.0.1:9"])
    with pytest.raises(SystemExit, match=r"No vLLM server answers at http://127\.0\.0\.1:9 "):
        evaluate.main(["--model", str(model), "--corpus", str(corpus), "--server", "http://127.0.0.1:9",
                       "--output_dir", str(tmp_path / "eval"), "--max_examples", "2"])
    assert not (tmp_path / "eval" / "results.json").exists()


def test_the_engine_runs_in_the_dtype_asked_and_refuses_others(tmp_path, monkeypatch):
    from modeling_elm.scripts import serve
    from modeling_elm.serving.engine import engine_command

    export = export_for_serving(tiny_trained_elm(tmp_path / "elm", "llama"), tmp_path / "export")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")

    def dtype_of(command):
        return command[command.index("--dtype") + 1]

    assert dtype_of(engine_command(export, 8000, venv=venv)) == "float32"
    assert dtype_of(engine_command(export, 8000, venv=venv, dtype="bfloat16")) == "bfloat16"
    with pytest.raises(ValueError, match="use float32 or bfloat16"):
        engine_command(export, 8000, venv=venv, dtype="float16")

    executed = []
    monkeypatch.setenv("ELM_VLLM_VENV", str(venv))
    monkeypatch.setattr(serve.os, "execv", lambda path, command: executed.append(command))
    serve.main(["--export", str(export), "--dtype", "bfloat16"])
    assert dtype_of(executed[0]) == "bfloat16"
    with pytest.raises(SystemExit):
        serve.main(["--export", str(export), "--dtype", "float16"])


# ---- a server answering over mocked HTTP: what the client does with what it hears -----------------------------------
def fake_venv(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    (venv / "bin" / "python").write_text("")
    return venv


def answer_with(monkeypatch, handler):
    """Route the client's HTTP through `handler` (an `httpx.MockTransport` handler); the requests it saw."""
    import httpx

    seen = []

    def request(method, url, timeout=None, **kwargs):
        with httpx.Client(transport=httpx.MockTransport(lambda r: seen.append(r) or handler(r))) as client:
            return client.request(method, url, **kwargs)

    monkeypatch.setattr(httpx, "request", request)
    return seen


def vllm_like(models, completion=None):
    """A handler answering as vLLM does: /v1/models lists `models`, /v1/completions answers `completion`."""
    import httpx

    def handler(request):
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"object": "list", "data": models})
        if request.url.path == "/v1/completions":
            return httpx.Response(200, json=completion or {"choices": [{"index": 0, "text": " an answer"}]})
        return httpx.Response(404, json={"detail": "Not Found"})

    return handler


def served_as(command):
    """(name, root) that /v1/models reports for a server started with `command`."""
    model = command[command.index("--model") + 1]
    names = command[command.index("--served-model-name") + 1:] if "--served-model-name" in command else [model]
    return names[0], model


def a_question():
    return [PROMPT], [{"movie": [torch.randn(8).numpy()], "user": [torch.randn(4).numpy()]}]


def test_a_client_refuses_a_server_that_serves_another_export(tmp_path, monkeypatch, caplog):
    from modeling_elm.serving.engine import engine_command

    export_a = export_for_serving(str(tiny_trained_elm(tmp_path / "a", "llama", seed=3)), tmp_path / "export-a")
    export_b = export_for_serving(str(tiny_trained_elm(tmp_path / "b", "llama", seed=4)), tmp_path / "export-b")
    venv = fake_venv(tmp_path)
    name_a, root_a = served_as(engine_command(export_a, 8000, venv=venv))
    name_b, _ = served_as(engine_command(export_b, 8000, venv=venv))
    assert name_a != name_b  # same shapes, other weights

    seen = answer_with(monkeypatch, vllm_like([{"id": name_a, "root": root_a, "object": "model"}]))
    with pytest.raises(ServerError, match=rf"(?s){name_a}.*export-b.*scripts\.serve --export {export_b}"):
        ElmServingClient.from_export(export_b, "http://127.0.0.1:8000").generate_texts(*a_question())
    assert not [r for r in seen if r.url.path == "/v1/completions"]  # refused before any prompt went out
    assert ElmServingClient.from_export(export_a, "http://127.0.0.1:8000").generate_texts(*a_question())
    assert json.loads(seen[-1].content)["model"] == name_a

    # A server started by hand on the plain path: its folder says which export it is.
    answer_with(monkeypatch, vllm_like([{"id": root_a, "root": root_a}]))
    assert ElmServingClient.from_export(export_a, "http://127.0.0.1:8000").served_model == root_a
    with pytest.raises(ServerError, match="another model"):
        ElmServingClient.from_export(export_b, "http://127.0.0.1:8000").served_model  # noqa: B018
    # One it cannot tell (a folder of the server's machine) is served, with a warning saying how to make it checkable.
    answer_with(monkeypatch, vllm_like([{"id": "/srv/elsewhere/lm", "root": "/srv/elsewhere/lm"}]))
    with caplog.at_level("WARNING", logger="modeling_elm.serving.client"):
        assert ElmServingClient.from_export(export_b, "http://127.0.0.1:8000").served_model == "/srv/elsewhere/lm"
    assert f"scripts.serve --export {export_b}" in caplog.text

    again = export_for_serving(str(tmp_path / "a"), tmp_path / "export-a-again")  # the same LM: the same id
    assert served_as(engine_command(again, 8000, venv=venv))[0] == name_a


@pytest.fixture
def client_and_server(tmp_path, monkeypatch):
    """A client of a tiny export, and `answer(handler)` to make its server answer through `handler`."""
    from modeling_elm.serving.engine import engine_command

    export = export_for_serving(str(tiny_trained_elm(tmp_path / "elm", "llama")), tmp_path / "export")
    name, root = served_as(engine_command(export, 8000, venv=fake_venv(tmp_path)))
    return export, [{"id": name, "root": root}], lambda handler: answer_with(monkeypatch, handler)


def test_what_a_server_answers_wrongly_gives_a_server_error_with_the_fix(client_and_server):
    import httpx

    export, models, answer = client_and_server
    client = ElmServingClient.from_export(export, "http://127.0.0.1:8000")

    answer(lambda request: httpx.Response(200, text="<html>a dashboard</html>", headers={"content-type": "text/html"}))
    with pytest.raises(ServerError, match=r"something other than vLLM's JSON .*text/html.*base URL"):
        client.generate_texts(*a_question())
    answer(vllm_like(models, completion={"object": "text_completion", "usage": {}}))
    with pytest.raises(ServerError, match=r"without a completion .*scripts\.serve"):
        client.generate_texts(*a_question())

    def refusing(message):
        def handler(request):
            if request.url.path == "/v1/models":
                return httpx.Response(200, json={"data": models})
            return httpx.Response(400, json={"error": {"message": message, "type": "BadRequestError", "code": 400}})
        return handler

    answer(refusing("`prompt_embeds` hidden_size 32 does not match the model's hidden_size 64."))
    with pytest.raises(ServerError, match="hidden size differs") as refused:
        client.generate_texts(*a_question())
    assert "--enable-prompt-embeds" not in str(refused.value)
    answer(refusing("You must set `--enable-prompt-embeds` to input `prompt_embeds`."))
    with pytest.raises(ServerError, match="must run with --enable-prompt-embeds"):
        client.generate_texts(*a_question())


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1/", "127.0.0.1:8000",
                                 "localhost:8000/v1"])
def test_a_server_url_as_vllm_and_openai_clients_write_it_reaches_the_server(client_and_server, url):
    export, models, answer = client_and_server
    seen = answer(vllm_like(models))
    assert ElmServingClient.from_export(export, url).generate_texts(*a_question()) == ["an answer"]
    assert {(r.url.scheme, r.url.path) for r in seen} == {("http", "/v1/models"), ("http", "/v1/completions")}


def test_a_url_the_client_cannot_use_and_a_length_that_is_not_positive_are_refused(client_and_server):
    export, models, answer = client_and_server
    seen = answer(vllm_like(models))
    with pytest.raises(ServerError, match=r"not an HTTP one .*http://127\.0\.0\.1:8000"):
        ElmServingClient.from_export(export, "ws://127.0.0.1:8000")
    client = ElmServingClient.from_export(export, "http://127.0.0.1:8000")
    for length in (0, -3, 2.5):
        with pytest.raises(ValueError, match=rf"max_new_tokens must be a positive whole number .*not {length}"):
            client.generate_texts(*a_question(), max_new_tokens=length)
    assert not seen
    client.generate_texts(*a_question(), max_new_tokens=3)
    assert json.loads(seen[-1].content)["max_tokens"] == 3


@pytest.mark.parametrize(("family", "asked", "served"), [("llama", None, 512), ("llama", 256, 256),
                                                         ("llama", 4096, 512), ("gpt2", None, 128)])
def test_the_engine_serves_as_long_a_sequence_as_the_lm_has_positions(tmp_path, monkeypatch, family, asked, served):
    from modeling_elm.scripts import serve

    positions = 512 if family == "llama" else None  # gpt2's tiny config has 128 (n_positions)
    export = export_for_serving(str(tiny_trained_elm(tmp_path / "elm", family, positions=positions)),
                                tmp_path / "export")
    executed = []
    monkeypatch.setenv("ELM_VLLM_VENV", str(fake_venv(tmp_path)))
    monkeypatch.setattr(serve.os, "execv", lambda path, command: executed.append(command))
    serve.main(["--export", str(export), *(["--max_model_len", str(asked)] if asked else [])])
    assert executed[0][executed[0].index("--max-model-len") + 1] == str(served)


def test_export_replaces_an_earlier_export_whole_and_refuses_other_folders(tmp_path):
    first = tiny_trained_elm(tmp_path / "first", "llama", seed=3)
    second = tiny_trained_elm(tmp_path / "second", "llama", seed=4)
    out = export_for_serving(str(first), tmp_path / "export")
    (out / "lm" / "model-00001-of-00002.safetensors").write_bytes(b"an earlier export's shard")
    (out / "input" / "stale.json").write_text("{}")
    fresh = export_for_serving(str(second), tmp_path / "fresh")

    export_for_serving(str(second), out)
    for folder in ("lm", "input"):
        assert sorted(p.name for p in (out / folder).iterdir()) == sorted(p.name for p in (fresh / folder).iterdir())
        assert (out / folder / "elm_export_id").read_text() == (fresh / folder / "elm_export_id").read_text()
    assert not list(out.glob(".export-*"))

    other = tmp_path / "notes"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds files but no ELM export .*new or empty folder"):
        export_for_serving(str(first), other)
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]
    with pytest.raises(ValueError, match=r"is a trained ELM, not an export; .*--output_dir exports/first"):
        export_for_serving(str(first), first)


def test_the_commands_the_serving_scripts_advise_work_when_followed(tmp_path, monkeypatch, capsys):
    import re

    from modeling_elm.scripts import evaluate, export, serve

    def is_trained_elm(folder):
        config = folder / "config.json"
        return config.is_file() and json.loads(config.read_text()).get("model_type") == "elm"

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ELM_VLLM_VENV", str(fake_venv(tmp_path)))
    executed = []
    monkeypatch.setattr(serve.os, "execv", lambda path, command: executed.append(command))
    checkpoint = tiny_trained_elm(tmp_path / "checkpoints" / "elm-tiny", "llama")

    # A checkpoint passed where the export belongs: the advice exports it elsewhere, and then serving works.
    with pytest.raises(SystemExit) as advised:
        serve.main(["--export", str(checkpoint)])
    exported = re.search(r"scripts\.export --model (\S+) --output_dir (\S+?);", str(advised.value))
    served = re.search(r"scripts\.serve --export (\S+)$", str(advised.value))
    assert exported and served and exported.group(1) == str(checkpoint) and served.group(1) == exported.group(2)
    assert (tmp_path / exported.group(2)).resolve() != checkpoint.resolve()
    with pytest.raises(ValueError, match=re.escape(exported.group(2))):
        ElmServingClient.from_export(checkpoint, "http://127.0.0.1:8000")
    capsys.readouterr()
    assert export.main(["--model", exported.group(1), "--output_dir", exported.group(2)]) == 0

    # What export prints after it: a serve command that starts the engine, a describe command on the trained model.
    printed = capsys.readouterr().out
    serve.main(["--export", re.search(r"scripts\.serve --export (\S+)", printed).group(1)])
    assert executed and (tmp_path / executed[0][executed[0].index("--model") + 1] / "config.json").is_file()
    asked = re.search(r"scripts\.describe --model (\S+) --server", printed).group(1)
    assert is_trained_elm(tmp_path / asked)

    # The usage examples: what --server commands pass as --model is the trained model, never the export's folder.
    exports = set(re.findall(r"--output_dir (\S+)", export.__doc__)) | set(re.findall(r"--export (\S+)", serve.__doc__))
    models = set(re.findall(r"scripts\.export --model (\S+)", export.__doc__))
    for doc in (export.__doc__, evaluate.__doc__):
        for line in (line for line in doc.splitlines() if "--server" in line and "--model" in line):
            model = re.search(r"--model (\S+)", line).group(1)
            assert model not in exports and model in models, line


@pytest.mark.parametrize("family", ["llama-untied", "qwen2", "gpt2", "gemma2", "gemma3"])
def test_the_clients_input_side_holds_no_lm_layer_and_embeds_prompts_as_the_model(tmp_path, family):
    """`from_export` builds the embedding table and the adapters only, and its prompt embeddings are the trained
    model's (Gemma's embedding scale included: it lives in the embedding module the input side keeps)."""
    source = tiny_trained_elm(tmp_path / "elm", family)
    export = export_for_serving(str(source), tmp_path / "export")
    client = ElmServingClient.from_export(export, "http://127.0.0.1:9")
    elm = ElmForCausalLM.from_pretrained(source).eval()
    side = client.model
    embedding, adapters = side.get_input_embeddings(), side.adapters
    counted = sum(p.numel() for p in embedding.parameters()) + sum(p.numel() for p in adapters.parameters())
    rest = sum(p.numel() for p in side.parameters()) - counted
    text = elm.config.text_config
    assert rest <= 2 * text.hidden_size + (text.n_positions * text.hidden_size if family == "gpt2" else 0)
    assert not any(isinstance(m, torch.nn.ModuleList) and len(m) for m in side.language_model.children())
    prompts = ["Would <user> enjoy <movie>?", "Compare <movie> with <movie>."]
    vectors = [{"movie": [np.ones(8)], "user": [np.arange(4.0)]}, {"movie": [np.ones(8), -np.ones(8)]}]
    for (ids, sent), prompt, row in zip(client.prompt_inputs(prompts, vectors), prompts, vectors):
        batch = client.processor(text=[client.processor.prompt(prompt)], vectors=[_per_example_vectors(row)])
        assert ids == batch["input_ids"][0].tolist()
        torch.testing.assert_close(sent, elm.model.embed_prompt(batch["input_ids"], batch["vectors"])[0],
                                   rtol=1e-5, atol=1e-6)
    assert client.generation_config.no_repeat_ngram_size == elm.generation_config.no_repeat_ngram_size == 4
