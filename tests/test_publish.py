"""`python -m hub.publish` against an in-memory Hub: which files and metadata go where, updates instead of
duplicates, clear errors; what lands in the model repo loads with trust_remote_code in a fresh process; and the
model card's snippet sends exactly the prompt tokens training used, so the prompt format travels with the
checkpoint."""

import json
from pathlib import Path
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from helpers.hub import FakeHub
from helpers.hub import mocked_hub_http


@pytest.fixture
def hub(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_fake_token_for_tests")
    fake = FakeHub()
    with mocked_hub_http(fake):
        yield fake


@pytest.fixture(scope="module")
def evaluated(trained, tmp_path_factory):
    from modeling_elm.scripts.evaluate import main

    model, _ = trained
    out = tmp_path_factory.mktemp("eval")
    main(["--model", str(model), "--max_examples", "3", "--curves", "false", "--max_new_tokens", "4",
          "--controls", "shuffled", "--output_dir", str(out)])
    return out


def front_matter(text: str) -> dict:
    return yaml.safe_load(text.split("---\n")[1])


def test_publish_pushes_model_dataset_and_a_pinned_space(hub, trained, evaluated, tmp_path):
    from hub.publish import publish

    model, corpus = trained
    commits = publish(model, "me/elm-tiny", evaluated, dataset_repo="me/elm-tasks", space_repo="me/elm-demo")

    files = hub.repo("model", "me/elm-tiny")["files"]
    assert {"config.json", "model.safetensors", "configuration_elm.py", "modeling_elm.py", "processor_config.json",
            "tokenizer.json", "README.md", "elm_stage.json", "eval/results.json"} <= set(files)
    assert not [name for name in files if name.endswith((".bin", ".pt", ".pth", ".pkl"))
                or name.startswith(("stage0/", "stage1/", "stage2/"))]  # weights as safetensors, no checkpoints
    assert "corpus" not in json.loads(files["elm_stage.json"])  # no local paths leave the machine
    card = files["README.md"].decode()
    meta = front_matter(card)
    assert meta["license"] == "apache-2.0" and meta["datasets"] == ["me/elm-tasks"] and "elm" in meta["tags"]
    assert 'from_pretrained("me/elm-tiny", trust_remote_code=True)' in card
    assert "| summary |" in card and "NLL shuffled" in card and "GroupLens" in card

    dataset = hub.repo("dataset", "me/elm-tasks")
    assert dataset["private"]  # MovieLens may not be redistributed: private unless the user says otherwise
    assert {"entities/movie.parquet", "entities/user.parquet", "manifest.json", "README.md"} <= set(dataset["files"])
    assert any(name.startswith("tasks/") for name in dataset["files"])
    assert "no redistribution" in dataset["files"]["README.md"].decode().lower()

    space = hub.repo("space", "me/elm-demo")
    assert (space["sdk"] == "gradio"
            and {"app.py", "elm_space.py", "requirements.txt", "README.md"} <= set(space["files"]))
    assert front_matter(space["files"]["README.md"].decode())["models"] == ["me/elm-tiny"]
    assert space["variables"]["ELM_MODEL"] == f"me/elm-tiny@{commits['model']}"  # the Space pins the model commit
    assert space["variables"]["ELM_CORPUS"] == f"me/elm-tasks@{commits['dataset']}"
    # the package travels with the Space: the files it imports, byte for byte the ones that trained the model
    package = Path(__file__).resolve().parents[1] / "modeling_elm"
    for name in ("inference.py", "model/modeling_elm.py", "data/corpus.py", "data/concepts.py"):
        assert space["files"][f"modeling_elm/{name}"] == (package / name).read_bytes()
    assert not [n for n in space["files"] if "__pycache__" in n]
    assert "Built from `modeling_elm` at commit `" in space["files"]["README.md"].decode()

    # a second run updates the same repositories
    publish(model, "me/elm-tiny", evaluated, dataset_repo="me/elm-tasks", space_repo="me/elm-demo")
    assert len(hub.repos) == 3 and all(len(repo["commits"]) == 2 for repo in hub.repos.values())

    # what the model repo holds is a checkpoint that loads through the remote-code path, in a fresh process
    folder = tmp_path / "downloaded"
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    script = ("import sys, torch; from transformers import AutoModelForCausalLM, AutoProcessor\n"
              "m = AutoModelForCausalLM.from_pretrained(sys.argv[1], trust_remote_code=True)\n"
              "p = AutoProcessor.from_pretrained(sys.argv[1], trust_remote_code=True)\n"
              "b = p(text='describe <movie> .', vectors=torch.ones(384))\n"
              "print(type(m).__module__, "
              "m.generate(**b, max_new_tokens=2, do_sample=False).shape[1] - b['input_ids'].shape[1])")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"), "PYTHONPATH": ""}
    result = subprocess.run([sys.executable, "-c", script, str(folder)], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    module, new_tokens = result.stdout.split()[-2:]
    assert module.startswith("transformers_modules.") and new_tokens == "2"


def test_publish_without_a_token_says_how_to_log_in(trained, monkeypatch, tmp_path):
    from hub.publish import PublishError, publish

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    with pytest.raises(PublishError, match="hf auth login"):
        publish(trained[0], "me/elm-tiny")


def test_publish_refuses_pickled_weights(hub, tmp_path):
    from hub.publish import PublishError, publish

    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"not safetensors")
    with pytest.raises(PublishError, match="safetensors only"):
        publish(tmp_path, "me/elm-tiny")
    assert not hub.repos  # nothing was created


# The prompt format travels with the checkpoint


def test_the_model_cards_snippet_sends_exactly_the_prompt_tokens_training_used(tmp_path):
    import datasets

    from hub.publish import model_card
    from modeling_elm import ElmProcessor
    from modeling_elm.data.tokenization import tokenize_rows
    from modeling_elm.data.corpus import VectorTable
    from helpers.elm import build_tiny_corpus, tiny_train_args, write_tiny_base_model

    base, corpus = write_tiny_base_model(tmp_path / "base"), build_tiny_corpus(tmp_path)
    from modeling_elm.scripts import train

    out = tmp_path / "elm"
    train.main(tiny_train_args(base, corpus, out, stage1_max_steps=1, stage2="none",
                               system_prompt="describe the movie for fans"))
    config, marker = json.loads((out / "config.json").read_text()), json.loads((out / "elm_stage.json").read_text())
    card = model_card(out, "me/elm", config, marker, None, None)
    snippet = card.split("```python\n")[1].split("```")[0].replace('"me/elm"', "sys.argv[1]")
    snippet = snippet.replace("torch.randn(", "torch.ones(")
    snippet = "import sys\n" + snippet.split("output = model.generate")[0] + "print(batch['input_ids'][0].tolist())\n"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"), "PYTHONPATH": ""}
    result = subprocess.run([sys.executable, "-c", snippet, str(out)], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    sent = json.loads(result.stdout.strip().splitlines()[-1])

    # what training tokenised for the same user turn, from the same checkpoint
    processor = ElmProcessor.from_pretrained(out)
    question = snippet.split('processor.prompt("')[1].split('")')[0]
    row = datasets.Dataset.from_dict({"task": ["t"], "prompt": [question], "target": ["x"], "movie_slots": [[["e"]]]})
    trained = tokenize_rows(row, processor, {"movie": VectorTable(["e"], np.ones((1, 384)), "movie")}, None)[0]
    assert sent == trained["input_ids"][: trained["prompt_length"]]
    assert "describe the movie for fans" in processor.tokenizer.decode(sent)
    generation = json.loads((out / "generation_config.json").read_text())
    assert generation["do_sample"] is False and generation["no_repeat_ngram_size"] == 4
