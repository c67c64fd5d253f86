"""Defects found by trying the project as a user would (issue 13), model level: each test failed before its fix."""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from elm_testing import assemble, build_language_model, build_tokenizer

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            head_dim=8, pad_token_id=0, bos_token_id=2, eos_token_id=3)


@pytest.mark.parametrize("family", ["llama", "qwen2", "gpt2", "gemma2", "gemma3"])
def test_soft_tokens_sit_at_the_scale_of_what_the_embedding_module_outputs(family):
    from modeling_elm import ElmForCausalLM

    tokenizer = build_tokenizer()
    model, _ = ElmForCausalLM.from_language_model(build_language_model(family, len(tokenizer)), {"movie": {"dim": 8}},
                                                  tokenizer=tokenizer)
    embeddings = model.get_input_embeddings()
    placeholder = model.config.embedding_spaces["movie"]["placeholder_token_id"]
    words = torch.tensor([i for i in range(len(tokenizer)) if i != placeholder])
    with torch.no_grad():
        word_rms = embeddings(words).pow(2).mean().sqrt()
        soft_rms = model.model.adapters["movie"](torch.randn(64, 8)).pow(2).mean().sqrt()
    assert 0.8 < float(soft_rms / word_rms) < 1.25, (family, float(soft_rms / word_rms))  # Gemma was ~0.05


def test_a_mixture_of_experts_lm_keeps_its_experts_implementation():
    from transformers import MixtralConfig

    from modeling_elm import ElmForCausalLM

    tokenizer = build_tokenizer()
    config = MixtralConfig(vocab_size=len(tokenizer), num_local_experts=4, num_experts_per_tok=2,
                           **{k: v for k, v in TINY.items() if k != "head_dim"})
    mixtral = AutoModelForCausalLM.from_config(config, experts_implementation="eager")
    chosen = mixtral.config._experts_implementation
    assert chosen is not None
    model, _ = ElmForCausalLM.from_language_model(mixtral, {"movie": {"dim": 8}}, tokenizer=tokenizer)
    assert model.config.text_config._experts_implementation == chosen
    assert model.model.language_model.config._experts_implementation == chosen


def test_a_mixture_of_experts_lm_keeps_its_router_loss():
    from transformers import MixtralConfig

    from modeling_elm import ElmForCausalLM

    tokenizer = build_tokenizer()
    config = MixtralConfig(vocab_size=len(tokenizer), num_local_experts=4, num_experts_per_tok=2,
                           router_aux_loss_coef=0.5, **{k: v for k, v in TINY.items() if k != "head_dim"})
    torch.manual_seed(0)
    mixtral = AutoModelForCausalLM.from_config(config).eval()
    ids = torch.randint(4, len(tokenizer) - 1, (2, 12))
    with torch.no_grad():
        expected = mixtral(input_ids=ids, labels=ids, output_router_logits=True)
    model, _ = ElmForCausalLM.from_language_model(mixtral, {"movie": {"dim": 8}}, tokenizer=tokenizer)
    with torch.no_grad():
        got = model.eval()(input_ids=ids, labels=ids, output_router_logits=True)
    assert got.aux_loss is not None
    torch.testing.assert_close(got.aux_loss, expected.aux_loss)
    # the ELM's vocabulary has one more token (the placeholder), so its cross-entropy is its own
    cross_entropy = torch.nn.functional.cross_entropy(got.logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
    torch.testing.assert_close(got.loss, cross_entropy + 0.5 * expected.aux_loss)


@pytest.mark.parametrize("placeholder", ["movie", "the", "<|im_end|>"])
def test_a_placeholder_that_is_already_a_word_or_token_is_refused(placeholder):
    from modeling_elm import ElmForCausalLM

    tokenizer = build_tokenizer()
    with pytest.raises(ValueError, match=f"Placeholder {placeholder!r} is already a token or a word"):
        ElmForCausalLM.from_language_model(build_language_model("llama", len(tokenizer)),
                                           {"movie": {"dim": 8, "placeholder": placeholder}}, tokenizer=tokenizer)


def test_wrapping_twice_with_the_same_tokenizer_reuses_its_own_placeholder_and_suggests_a_free_one():
    """A notebook cell run twice: the first call added '<movie>' to the caller's tokenizer; the second must accept
    it, not refuse it and then suggest the very marker it refused."""
    from modeling_elm import ElmForCausalLM

    tokenizer = build_tokenizer()
    first, _ = ElmForCausalLM.from_language_model(build_language_model("llama", len(tokenizer)), {"movie": {"dim": 8}},
                                                  tokenizer=tokenizer)
    size = len(tokenizer)
    second, processor = ElmForCausalLM.from_language_model(build_language_model("llama", size), {"movie": {"dim": 8}},
                                                           tokenizer=tokenizer)
    assert len(tokenizer) == size  # nothing added twice
    assert (second.config.embedding_spaces["movie"]["placeholder_token_id"]
            == first.config.embedding_spaces["movie"]["placeholder_token_id"])
    assert processor(text="<movie>", vectors=torch.zeros(8))["input_ids"].numel() > 0
    with pytest.raises(ValueError) as refused:
        ElmForCausalLM.from_language_model(build_language_model("llama", size),
                                           {"movie": {"dim": 8, "placeholder": "<|im_end|>"}}, tokenizer=tokenizer)
    suggestion = re.search(r"such as '([^']+)'", str(refused.value)).group(1)
    assert suggestion != "<|im_end|>" and suggestion not in tokenizer.get_vocab()


def test_a_placeholder_inside_another_is_refused():
    from modeling_elm import ElmConfig

    with pytest.raises(ValueError, match="Placeholder '<m>' occurs inside '<m><u>'"):
        ElmConfig(text_config={"model_type": "llama"},
                  embedding_spaces={"movie": {"dim": 4, "placeholder": "<m>"}, "user": {"dim": 4, "placeholder": "<m><u>"}})


def test_a_vector_that_overflows_the_model_dtype_is_refused():
    model, processor = assemble("llama")
    model = model.to(torch.float16)
    batch = processor(text="describe <movie> .", vectors=torch.ones(8))
    finite_in_fp32 = torch.full((1, 8), 7e4)
    with pytest.raises(ValueError, match=r"NaN or inf once cast to the model's torch.float16 \(its largest value is 6.55e\+04\)"):
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


def test_auto_map_names_the_backbone_too(tmp_path):
    model, _ = assemble("llama")
    model.save_pretrained(tmp_path)
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert auto_map == {"AutoConfig": "configuration_elm.ElmConfig", "AutoModel": "modeling_elm.ElmModel",
                        "AutoModelForCausalLM": "modeling_elm.ElmForCausalLM"}


def test_the_remote_processor_on_an_older_transformers_names_the_version_to_install(tmp_path):
    import shutil

    package = tmp_path / "remote_elm"  # the three travelling files, flat, as a Hub repo holds them
    package.mkdir()
    for name in ("configuration_elm.py", "modeling_elm.py", "processing_elm.py"):
        shutil.copy(ROOT / "modeling_elm" / "model" / name, package / name)
    (package / "__init__.py").write_text("")
    script = textwrap.dedent("""
        import transformers.configuration_utils as cu
        del cu.SubConfigSpec  # what transformers 4.57 / 5.0 lack
        try:
            import remote_elm.processing_elm
        except ImportError as error:
            print(error)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert "needs transformers >= 5.24.0" in out.stdout, out.stderr[-800:]


def test_remote_code_on_an_older_transformers_names_the_version_to_install(tmp_path):
    # What transformers 5.0 / 4.57 lack: the composite-config spec. Simulated in a fresh process.
    script = textwrap.dedent(f"""
        import importlib.util, transformers.configuration_utils as cu
        del cu.SubConfigSpec
        spec = importlib.util.spec_from_file_location("configuration_elm", {str(ROOT / "modeling_elm" / "model" / "configuration_elm.py")!r})
        try:
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
        except ImportError as error:
            print(error)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120).stdout
    assert "needs transformers >= 5.24.0" in out and "pip install -U 'transformers>=5.24.0'" in out


# Bring your own data: each case from a real file on disk


def _entities(n=6, dim=4, seed=0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame({"id": [f"e{i}" for i in range(n)], "vector": list(rng.standard_normal((n, dim))),
                         "word": ["love", "war", "space", "music", "family", "crime"][:n]})


def _data(path, tmp_path, **extra):
    from modeling_elm.data.byo import DataConfig

    raw = {"spaces": {"word": {"path": str(path), **extra.pop("space", {})}},
           "templates": extra.pop("templates", [{"task": "name", "prompt": "name <word> .", "target": "{word}"}]),
           "output_dir": str(tmp_path / "out"), "test_fraction": 0.5, **extra}
    return DataConfig.from_dict(raw)


def test_a_csv_whose_vector_column_is_a_list_reads_as_vectors(tmp_path):
    from modeling_elm.data.byo import build_byo_corpus
    from modeling_elm.data.vector_store import load_vector_tables

    table = _entities()
    table.assign(vector=[v.tolist() for v in table["vector"]]).to_csv(tmp_path / "e.csv", index=False)
    folder = build_byo_corpus(_data(tmp_path / "e.csv", tmp_path))
    np.testing.assert_allclose(load_vector_tables(folder)["word"].vectors, np.stack(table["vector"]), rtol=1e-6)


@pytest.mark.parametrize("write, message", [
    (lambda p: (p / "e.jsonl").write_text('{"id": "e0", "vector": [0.1, "x"]}\n{"id": "e1", "vector": [0.2, 0.3]}\n'),
     r"e\.jsonl, row 1 \(id 'e0'\): the vector holds 'x', not a number"),
    (lambda p: (p / "e.csv").write_bytes(b"id,vector\ne0,\"[1, 2]\"\ne1,\"[1, 2]\"\nd\xe9j\xe0,\"[1, 2]\"\n"),
     r"e\.csv: not UTF-8 text .* save the file as UTF-8"),
    (lambda p: _entities().iloc[:0].to_parquet(p / "e.parquet"), r"e\.parquet has no rows"),
    (lambda p: (p / "e.csv").write_text(""), r"e\.csv is empty \(0 bytes\)"),
    (lambda p: (p / "e.csv").write_text("id,vector\ne0,hello\ne1,\"[1, 2]\"\n"),
     r"e\.csv, row 2 \(id 'e0'\): the vector column holds text 'hello'"),
])
def test_broken_entity_files_name_the_file_and_the_fix(tmp_path, write, message):
    from modeling_elm.data.byo import build_byo_corpus

    write(tmp_path)
    path = next(p for p in tmp_path.iterdir() if p.name.startswith("e."))
    with pytest.raises(ValueError, match=message):
        build_byo_corpus(_data(path, tmp_path))


def test_a_json_array_file_reads_like_json_lines(tmp_path):
    from modeling_elm.data.byo import read_table

    rows = [{"id": "a", "vector": [1.0, 2.0]}, {"id": "b", "vector": [3.0, 4.0]}]
    (tmp_path / "e.json").write_text(json.dumps(rows, indent=2))
    table, _ = read_table(str(tmp_path / "e.json"))
    assert list(table["id"]) == ["a", "b"]


@pytest.mark.parametrize("target, message", [
    ("{wrod}", r"template 'name': no column 'wrod' .*fix the target '\{wrod\}'"),
    ("{0}", r"template 'name': the target '\{0\}' is not a valid format string"),
    ("{word", r"template 'name': the target '\{word' is not a valid format string"),
])
def test_template_typos_name_the_template(tmp_path, target, message):
    from modeling_elm.data.byo import build_byo_corpus

    _entities().to_parquet(tmp_path / "e.parquet")
    with pytest.raises(ValueError, match=message):
        build_byo_corpus(_data(tmp_path / "e.parquet", tmp_path,
                               templates=[{"task": "name", "prompt": "name <word> .", "target": target}]))


@pytest.mark.parametrize("extra, message", [
    (dict(space={"id_colum": "id"}), r"data\.spaces\.word: unknown key\(s\) \['id_colum'\]; known: \['path'"),
    (dict(templates=[{"task": "t", "promt": "x <word>", "target": "{word}"}]), r"data\.templates\[0\]: unknown key"),
    (dict(templates=[{"task": "t", "target": "{word}"}]), r"data\.templates\[0\]: missing \['prompt'\]"),
    (dict(test_fraction=1.5), "test_fraction must be a number between 0 and 1"),
    (dict(test_fraction="0.1"), r"test_fraction must be a number between 0 and 1 .* got '0\.1'"),
])
def test_recipe_mistakes_in_the_data_section_are_named(tmp_path, extra, message):
    _entities().to_parquet(tmp_path / "e.parquet")
    with pytest.raises(ValueError, match=message):
        _data(tmp_path / "e.parquet", tmp_path, **extra)


def test_a_missing_local_path_is_not_taken_for_a_hub_dataset(tmp_path, monkeypatch):
    import datasets

    from modeling_elm.data.byo import read_table

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("tried the Hub for a local path"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dir").mkdir()
    for path in ("dir/file.pq", "data/vectors.parquet"):
        with pytest.raises(ValueError, match=f"{path}: no such file or folder"):
            read_table(path)


def test_float_ids_match_the_same_ids_written_as_integers(tmp_path):
    import pandas as pd

    from modeling_elm.data.byo import build_byo_corpus

    table = _entities().assign(id=[0.0, 1.0, 2.0, 3.0, 5.0, 8.0])  # what pandas reads from an int column with gaps
    table.to_parquet(tmp_path / "e.parquet")
    pd.DataFrame({"ids": [0, 1, 2, 3, 5, 8], "task": ["say"] * 6, "target": [f"word {i}" for i in range(6)]}).to_csv(
        tmp_path / "t.csv", index=False)
    from modeling_elm.data.byo import DataConfig

    folder = build_byo_corpus(DataConfig.from_dict({
        "spaces": {"word": {"path": str(tmp_path / "e.parquet")}}, "texts": str(tmp_path / "t.csv"),
        "prompts": {"say": "say <word> ."}, "output_dir": str(tmp_path / "out"), "test_fraction": 0.5}))
    manifest = json.loads((folder / "manifest.json").read_text())
    assert sum(manifest["counts"]["rows"].values()) == 6 and not manifest["dropped"]


# Training options


def _train_module():
    sys.path.insert(0, str(ROOT))
    import train

    return train


def _train(args):
    return _train_module().main(args)


@pytest.mark.parametrize("flag, value, fix", [
    ("learning_rate", "0", "--stage1_learning_rate / --stage2_learning_rate"),
    ("max_steps", "1", "--stage1_max_steps / --stage2_max_steps"),
    ("num_train_epochs", "0", "--stage1_epochs / --stage2_epochs"),
    ("packing", "true", "--padding_free true packs the rows of a step instead"),
    ("completion_only_loss", "false", "always trains on the target only"),
    ("eos_token", "</s>", "change it on the tokenizer"),
])
def test_training_options_the_stages_own_are_refused_before_any_work(tmp_path, monkeypatch, flag, value, fix):
    monkeypatch.setattr(_train_module(), "load_training_data", lambda *a: pytest.fail("work started despite the option"))
    with pytest.raises(ValueError, match=rf"--{flag} .*{re.escape(fix)}"):
        _train(["--output_dir", str(tmp_path / "out"), f"--{flag}", value])


def test_abbreviated_options_are_errors_as_in_a_recipe(tmp_path):
    with pytest.raises(ValueError, match=r"not used by the HfArgumentParser: \['--stage1_max_step', '3'\]"):
        _train(["--output_dir", str(tmp_path / "out"), "--stage1_max_step", "3"])


def test_help_says_which_options_are_refused(capsys):
    with pytest.raises(SystemExit):
        _train(["--help"])
    out = capsys.readouterr().out
    assert "options an ELM run refuses" in out and "--learning_rate: set it per stage" in out


def test_a_max_length_too_short_for_the_prompt_is_found_before_the_corpus(tmp_path, monkeypatch):
    from elm_testing import write_tiny_base_model

    base = write_tiny_base_model(tmp_path / "base")
    monkeypatch.setattr(_train_module(), "load_training_data", lambda *a: pytest.fail("built the corpus first"))
    with pytest.raises(ValueError, match=r"max_length 12 leaves no room for a target: the prompt of task '\w+' alone"):
        _train(["--base_model", str(base), "--output_dir", str(tmp_path / "out"), "--max_length", "12",
                "--tasks", "summary"])


def test_torch_is_a_range_that_keeps_a_users_torch_while_set_up_installs_the_exact_wheel():
    import tomllib

    from packaging.requirements import Requirement

    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch_requirement = next(Requirement(d) for d in dependencies if Requirement(d).name == "torch")
    assert not any(s.operator == "==" for s in torch_requirement.specifier)
    for version in ("2.6.0", "2.11.0", torch.__version__.split("+")[0]):  # 2.11: the lent GPU machine's CUDA build
        assert torch_requirement.specifier.contains(version)
    assert 'pip install --quiet --progress-bar off "torch==2.13.0"' in (ROOT / "scripts" / "setup.sh").read_text()


# The prompt format travels with the checkpoint


def test_the_model_cards_snippet_sends_exactly_the_prompt_tokens_training_used(tmp_path):
    import datasets

    from hub.publish import model_card
    from modeling_elm import ElmProcessor
    from modeling_elm.data.tokenization import tokenize_rows
    from modeling_elm.data.vector_store import VectorTable
    from elm_testing import build_tiny_corpus, tiny_train_args, write_tiny_base_model

    base, corpus = write_tiny_base_model(tmp_path / "base"), build_tiny_corpus(tmp_path)
    sys.path.insert(0, str(ROOT))
    import train

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


# The describe CLI


def test_describe_accepts_the_spaces_labels_and_says_which_of_several_it_picked():
    import pandas as pd

    from modeling_elm.describe import find_movie

    movies = pd.DataFrame({"title": ["Titanic", "Titanic", "Toy Story", "Titanic Town"],
                           "year": [1953, 1997, 1995, 1998], "n_ratings": [10, 100, 50, 5]})
    assert find_movie(movies, "Titanic (1953)") == (0, [])  # the Space's own label, year and all
    assert find_movie(movies, "titanic") == (1, ["Titanic (1953)"])  # the best-known exact title; the other named
    assert find_movie(movies, "tita") == (1, ["Titanic (1953)", "Titanic Town (1998)"])
    with pytest.raises(SystemExit, match="No movie in the corpus matches 'heat'"):
        find_movie(movies, "heat")
    # a year no match has is not silently swapped for another year's movie, nor an empty query for the default one
    with pytest.raises(SystemExit, match=r"No movie 'Titanic' from 1887 .* Titanic \(1997\)"):
        find_movie(movies, "Titanic (1887)")
    for empty in ("", "  ", "(1997)"):
        with pytest.raises(SystemExit, match="names no title"):
            find_movie(movies, empty)


def test_describe_says_when_it_extrapolates_and_refuses_what_the_model_cannot_read(trained, capsys, monkeypatch,
                                                                                   tmp_path):
    from modeling_elm import describe, inference

    monkeypatch.setattr(inference, "generate_texts", lambda *args, **kwargs: ["an answer"])
    model, corpus = trained
    assert describe.main(["--model", str(model), "--movie", "Movie 1", "--mix", "Movie 2", "--alpha", "2"]) == 0
    assert "--alpha 2 is outside [0, 1], so the vector extrapolates" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        describe.main(["--model", str(model), "--mix", "Movie 2"])
    assert "--mix mixes a second movie into --movie" in capsys.readouterr().err
    no_users = json.loads((model / "config.json").read_text())
    if "user" in no_users["embedding_spaces"]:  # the tiny model reads users: check the refusal on a copy without
        import shutil

        copy = tmp_path / "movies-only"
        shutil.copytree(model, copy)
        del no_users["embedding_spaces"]["user"]
        (copy / "config.json").write_text(json.dumps(no_users))
        model = copy
    with pytest.raises(SystemExit, match=r"reads no user vectors \(its spaces: movie\).*quick-users.yaml"):
        describe.main(["--model", str(model), "--corpus", str(corpus), "--user", "7"])


def test_describe_lists_the_tasks_for_a_mistyped_one_and_shows_defaults(capsys):
    from modeling_elm.describe import main

    with pytest.raises(SystemExit) as stop:
        main(["--task", "summry"])
    assert stop.value.code == 2
    assert "unknown task 'summry'; choose one of: summary," in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "(default: checkpoints/elm-quick)" in help_text and "(default: 60)" in help_text
    assert "(default: None)" not in help_text


def test_describe_imports_its_heavy_parts_only_after_the_arguments():
    script = ("import sys, modeling_elm.describe as d\n"
              "print(sorted(m for m in ('datasets', 'pandas', 'modeling_elm.data.corpus', 'modeling_elm.inference') "
              "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stderr[-1000:]


# A wrong --model names what was found there and what to pass


def test_a_wrong_model_says_what_is_there_and_what_to_pass(trained, tmp_path):
    from modeling_elm.base_models import resolve_base_model
    from modeling_elm.checkpoints import check_trained_elm
    from modeling_elm.evaluation.evaluate import EvalArguments, Evaluation

    model, corpus = trained
    stage1 = tmp_path / "run" / "stage1" / "final"
    stage1.mkdir(parents=True)
    (stage1 / "elm_adapters.safetensors").write_bytes(b"")
    (tmp_path / "run" / "stage0").mkdir()
    (tmp_path / "empty").mkdir()
    cases = {
        str(tmp_path / "nope"): "No folder at .*nope: pass the output_dir of a finished train.py run",
        str(stage1): r"is a stage-1 checkpoint: it holds the adapters alone.*\(.*run\)",
        str(tmp_path / "run"): "a training run that has not finished .* run the same train.py command again",
        str(tmp_path / "empty"): "is a folder but holds no model",
        str(model / "stage0" / ".." / ".." / "base"): "holds a llama model, not a trained ELM: train one on it",
    }
    for path, message in cases.items():
        with pytest.raises(ValueError, match=message):
            check_trained_elm(path)
        with pytest.raises(ValueError, match=message):  # before the corpus is looked for: --corpus is not the fix
            Evaluation(EvalArguments(model=path, corpus=str(corpus), output_dir=str(tmp_path / "eval")))
    check_trained_elm(str(model))
    check_trained_elm("someone/elm-movielens")  # a Hub id: from_pretrained checks it
    with pytest.raises(ValueError, match="No folder at /nope: pass a folder holding a causal LM"):
        resolve_base_model("/nope")


def test_describe_names_a_wrong_model_too(tmp_path):
    from modeling_elm import describe

    with pytest.raises(SystemExit, match="No folder at"):
        describe.main(["--model", str(tmp_path / "missing")])


def test_a_data_section_and_a_corpus_path_together_are_an_error_not_a_silent_choice(tmp_path):
    from modeling_elm.training.arguments import ElmArguments

    with pytest.raises(ValueError, match="Both a data: section and --corpus_path .*Keep one"):
        ElmArguments(data={"spaces": {"word": {"vectors": "words.parquet"}}}, corpus_path=str(tmp_path))
    ElmArguments(corpus_path=str(tmp_path))  # either alone is fine
    ElmArguments(data={"spaces": {}})


def test_a_checkpoint_saved_before_it_carried_decoding_defaults_gets_them_and_never_samples_a_placeholder(tmp_path):
    """Such checkpoints have a generation_config.json without no_repeat_ngram_size and without the placeholders
    in suppress_tokens: loading (through ElmForCausalLM or the Auto class) completes both."""
    from transformers import AutoModelForCausalLM

    from modeling_elm import ElmForCausalLM

    model, _ = assemble("llama")
    model.save_pretrained(tmp_path)
    path = tmp_path / "generation_config.json"
    old = json.loads(path.read_text())
    for key in ("no_repeat_ngram_size", "suppress_tokens", "max_new_tokens", "do_sample"):
        old.pop(key, None)
    path.write_text(json.dumps(old))
    placeholder = model.config.embedding_spaces["movie"]["placeholder_token_id"]
    for cls in (ElmForCausalLM, AutoModelForCausalLM):
        loaded = cls.from_pretrained(tmp_path)
        assert loaded.generation_config.no_repeat_ngram_size == 4 and loaded.generation_config.do_sample is False
        assert placeholder in loaded.generation_config.suppress_tokens


def test_the_decoding_defaults_let_an_answer_name_two_decades():
    """SmolLM's tokenizer writes "1990s" as " ", "1", "9", "9", "0", "s": with no repeated trigrams, " 1 9" could
    not follow " 1" a second time and "the 1990s and 1980s" came out as "the 1990s and 100s"."""
    from transformers.generation.logits_process import NoRepeatNGramLogitsProcessor

    from modeling_elm.model.modeling_elm import DECODING_DEFAULTS

    vocab = {token: i for i, token in enumerate([" the", " ", "1", "9", "0", "s", " and"])}
    written = [" the", " ", "1", "9", "9", "0", "s", " and", " ", "1"]  # next: "9", for the 1980s
    ids = torch.tensor([[vocab[t] for t in written]])
    banned = NoRepeatNGramLogitsProcessor(DECODING_DEFAULTS["no_repeat_ngram_size"])(ids, torch.zeros(1, len(vocab)))
    assert torch.isfinite(banned[0, vocab["9"]])
    trigrams = NoRepeatNGramLogitsProcessor(3)(ids, torch.zeros(1, len(vocab)))
    assert not torch.isfinite(trigrams[0, vocab["9"]])  # what the old default did
