"""Export for serving: the plain LM fed the ELM's prompt embeddings computes exactly what the ELM computes, for
every family (Gemma scales its embeddings inside the embedding module, which vLLM leaves to the sender), and the
client refuses bad input before any request."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from helpers.elm import build_language_model, build_tokenizer
from modeling_elm import ElmForCausalLM
from modeling_elm.serving import ElmServingClient, ServerError, export_for_serving
from modeling_elm.serving.client import encode_embeddings

SPACES = {"movie": {"dim": 8}, "user": {"dim": 4}}
PROMPT = "would <user> like <movie> ?"


def tiny_trained_elm(folder, family, head_dim=8):
    """A tiny ELM (random LM, large random adapters so vectors visibly matter), saved as training would."""
    tokenizer = build_tokenizer()
    lm = build_language_model(family, len(tokenizer), head_dim=head_dim)
    torch.manual_seed(2)
    # transformers' init (std 0.02) makes a tiny LM say one token forever, and Gemma's embedding scale (x sqrt(hidden))
    # saturates its softcapped logits at 0.3: weights at which answers vary and the next token is still clear.
    std = 0.1 if family.startswith("gemma") else 0.3
    with torch.no_grad():
        for name, parameter in lm.named_parameters():
            if parameter.dim() == 2:
                parameter.normal_(std=std)
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
