"""The evaluation CLI end to end on a tiny trained ELM and a tiny corpus; and the control that proves reading."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from helpers.elm import write_tiny_base_model


def evaluate(model, tmp_path, *extra):
    from modeling_elm.scripts.evaluate import main

    out = tmp_path / "eval"
    main(["--model", str(model), "--max_examples", "5", "--curve_examples", "2", "--max_new_tokens", "6",
          "--output_dir", str(out), *extra])
    return json.loads((out / "results.json").read_text()), out


def test_cli_writes_results_report_and_plots_with_every_control(trained, tmp_path):
    model, _ = trained
    results, out = evaluate(model, tmp_path, "--device", "cpu")  # the corpus comes from the model's own record
    assert results["settings"]["device"] == "cpu" and results["settings"]["batch_size"] == 16  # the CPU default
    assert set(results["tasks"]) == {"summary", "similarities", "user_profile"}
    summary = results["tasks"]["summary"]
    assert {"reference", "real", "shuffled", "random", "untrained", "text_only_base",
            "text_only_trained"} <= set(summary)
    for metric in ("sc", "hits@1", "hits@10", "mrr", "genre_f1", "decade_accuracy", "nll"):
        assert summary["real"][metric]["n"] == 5 and summary["real"][metric]["low"] <= summary["real"][metric]["high"]
    users = results["tasks"]["user_profile"]
    assert {"bc_rated", "bc_sample", "genre_f1", "decade_accuracy"} <= set(users["real"])
    # a profile is scored against the user's favourites: the references state them, the constant profile is beside
    assert users["reference"]["decade_accuracy"]["mean"] == 1.0  # the tiny corpus' users have no favourite genre
    assert results["constant_guess"]["tasks"]["user_profile"]["text"].startswith("This user loves")
    assert "genre_f1" in results["constant_guess"]["tasks"]["user_profile"]
    assert "genre_f1" in results["gap_real_minus_shuffled"]["user_profile"]
    assert set(results["gap_real_minus_shuffled"]["summary"]) >= {"sc", "genre_f1"}
    # the metric code on real texts: the reference targets describe their movie, a constant text does not
    constant = results["constant_guess"]["tasks"]["summary"]
    assert summary["reference"]["sc"]["mean"] > constant["sc"]["mean"] + 0.1
    assert summary["reference"]["hits@10"]["mean"] > constant["hits@10"]["mean"]
    assert summary["reference"]["genre_f1"]["mean"] > 0.7
    assert len(results["curves"]["interpolation"]["sc_to_a"]) == 5
    assert results["curves"]["interpolation"]["task"] == "summary"  # the model learnt no interpolation task
    assert len(results["curves"]["interpolation"]["genre_f1_to_b"]) == 5
    # the references name their own movie: never an invented title; the answers are scored the same way
    assert summary["reference"]["no_invented_title"]["mean"] == 1.0
    assert 0 <= summary["real"]["repeat_free"]["mean"] <= 1
    for concept in results["curves"]["concepts"]["concepts"].values():
        for key in ("names_genre", "keeps_decade", "names_genre_keeps_decade"):
            assert len(concept[key]) == len(results["curves"]["concepts"]["strength"])
        assert concept["step_size"] > 0
        assert len(concept["example"]["texts"]) == len(results["curves"]["concepts"]["strength"])
    report = (out / "report.md").read_text()
    assert "ELM, shuffled vector" in report and "real − shuffled (paired)" in report and "constant guess" in report
    assert "genre F1 to A" in report and "keep the movie's decade" in report
    per_task = report.split("## Per task")[1].split("\n## ")[0]  # one row per task, its gap beside
    gap = results["gap_real_minus_shuffled"]["summary"]["nll"]
    assert f"| summary | 5 | {summary_nll(results)} |" in per_task and f"{gap['mean']:.3f} [" in per_task
    assert per_task.count("\n| ") == 2 + len(results["tasks"])
    for png in ("sc_by_task.png", "nll_by_task.png", "genre_f1_by_task.png", "bc_by_task.png", "interpolation.png",
                "concepts.png"):
        assert (out / png).stat().st_size > 1000


def summary_nll(results) -> str:
    nll = {condition: results["tasks"]["summary"][condition]["nll"]["mean"] for condition in ("real", "shuffled")}
    return f"{nll['real']:.3f} / {nll['shuffled']:.3f}"


def test_a_model_that_ignores_its_vector_shows_no_gap_to_the_shuffled_control(trained, tmp_path):
    model, _ = trained
    deaf = tmp_path / "deaf"
    shutil.copytree(model, deaf)
    state = load_file(str(deaf / "model.safetensors"))
    for key in state:
        if ".adapters." in f".{key}" and "fc2" in key:
            state[key] = torch.zeros_like(state[key])  # the adapter now outputs zeros, whatever the vector
    save_file(state, str(deaf / "model.safetensors"), metadata={"format": "pt"})
    results, _ = evaluate(deaf, tmp_path, "--tasks", "summary", "--controls", "shuffled", "--curves", "false")
    gap = results["gap_real_minus_shuffled"]["summary"]
    assert all(abs(ci["mean"]) < 1e-9 for ci in gap.values())
    nll = results["tasks"]["summary"]
    assert nll["real"]["nll"]["mean"] == nll["shuffled"]["nll"]["mean"]

    # the same model with a strong random adapter, by contrast, gives each vector its own likelihood
    hearing = tmp_path / "hearing"
    shutil.copytree(model, hearing)
    generator = torch.Generator().manual_seed(0)
    for key in state:
        if ".adapters." in f".{key}" and key.endswith("weight") and ("fc1" in key or "fc2" in key):
            state[key] = torch.randn(state[key].shape, generator=generator) * 0.5
    save_file(state, str(hearing / "model.safetensors"), metadata={"format": "pt"})
    results, _ = evaluate(hearing, tmp_path, "--tasks", "summary", "--controls", "shuffled", "--curves", "false")
    nll = results["tasks"]["summary"]
    assert abs(nll["real"]["nll"]["mean"] - nll["shuffled"]["nll"]["mean"]) > 1e-5  # the deaf model: exactly 0


def test_unknown_control_and_missing_corpus_are_clear_errors(tmp_path):
    from modeling_elm.evaluation.evaluate import EvalArguments, evaluate as run

    with pytest.raises(ValueError, match="Unknown control"):
        EvalArguments(controls=["shufled"])
    write_tiny_base_model(tmp_path / "m")
    with pytest.raises(ValueError, match="holds a llama model, not a trained ELM"):  # --corpus would not help
        run(EvalArguments(model=str(tmp_path / "m")))
    from helpers.elm import assemble

    model, _ = assemble("llama")
    model.save_pretrained(tmp_path / "elm")  # an ELM saved by hand records no corpus: then --corpus is the fix
    with pytest.raises(ValueError, match="pass --corpus"):
        run(EvalArguments(model=str(tmp_path / "elm")))


def test_an_llm_judge_scores_outputs_next_to_sc(trained, tmp_path):
    import httpx2

    from helpers.hub import mocked_hub_http
    from modeling_elm.evaluation.judge import parse_scores

    asked = []

    def judge(request):  # a judge that checks the title of the facts it is shown against the text it grades
        prompt = json.loads(request.content)["messages"][1]["content"]
        asked.append(prompt)
        reply = "consistent: 5\nwell_written: 4" if "reference" in prompt else "I think it is fine."
        return httpx2.Response(200, json={
            "id": "x", "object": "chat.completion", "created": 0, "model": "judge",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": reply}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

    model, _ = trained
    from modeling_elm.evaluation.evaluate import EvalArguments, evaluate as run

    args = EvalArguments(model=str(model), tasks=["summary"], controls=["shuffled"], curves=False, max_examples=3,
                         max_new_tokens=4, judge_endpoint="http://judge.local/v1", output_dir=str(tmp_path))
    with mocked_hub_http(judge):
        import modeling_elm.evaluation.evaluate as evaluation

        original = evaluation.evaluate_task

        def tag_references(ev, task, rows):  # mark reference texts so the fake judge can tell them apart
            for row in rows:
                row["target"] = "reference " + row["target"]
            return original(ev, task, rows)

        evaluation.evaluate_task = tag_references
        try:
            results = run(args)
        finally:
            evaluation.evaluate_task = original
    summary = results["tasks"]["summary"]
    assert results["judge"] == "http://judge.local/v1"
    assert 6 <= len(asked) <= 9 and len(set(asked)) == len(asked)  # 3 rows x 3 conditions, identical ones asked once
    assert (summary["reference"]["judge_consistent"]["mean"] == 5
            and summary["reference"]["judge_well_written"]["mean"] == 4)
    assert summary["real"]["judge_consistent"]["n"] == 0  # unparsable replies are NaN, not a silent score
    assert "- title:" in asked[0] and "consistent: <1-5>" in asked[0]
    assert parse_scores("Consistent = 3, well_written: 2") == {"consistent": 3.0, "well_written": 2.0}


def test_the_device_is_the_gpu_when_there_is_one_in_bf16(monkeypatch):
    from modeling_elm.inference import inference_dtype, pick_device

    assert pick_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device(None) == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert inference_dtype(torch.device("cuda")) == torch.bfloat16
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx2": True})  # a CPU without bf16 units
    assert inference_dtype(torch.device("cpu")) == torch.float32


def test_describe_runs_on_the_device_it_is_given(trained, monkeypatch, capsys):
    from modeling_elm.scripts import describe
    from modeling_elm import inference as generation

    placed, load_elm = [], generation.load_elm

    def spy(path, device=None, **kwargs):
        model = load_elm(path, device, **kwargs)
        placed.append((device, model.device, model.dtype))
        return model

    monkeypatch.setattr(generation, "load_elm", spy)  # describe imports it when it runs
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx2": True})  # a CPU without bf16 units
    assert describe.main(["--model", str(trained[0]), "--device", "cpu", "--max-new-tokens", "4"]) == 0
    assert describe.main(["--model", str(trained[0]), "--device", "cpu", "--max-new-tokens", "4",
                          "--dtype", "bfloat16"]) == 0
    assert placed == [("cpu", torch.device("cpu"), torch.float32), ("cpu", torch.device("cpu"), torch.bfloat16)]
    assert "held out from training" in capsys.readouterr().out


def test_probes_describe_texts_embedded_into_a_semantic_movie_space(trained, tmp_path, monkeypatch):
    """--probes, once only for your own data, work on any corpus whose vectors an encoder made: MovieLens' semantic
    movie space included. The probe's vector is the encoder's embedding of the text, read like a movie's."""
    from modeling_elm.data.embeddings import load_encoder, semantic_embeddings
    from modeling_elm.evaluation import evaluate as evaluation
    from modeling_elm.evaluation.evaluate import RESULTS_VERSION, EvalArguments

    model, _ = trained
    seen = []
    generate = evaluation.Evaluation.generate

    def recording(ev, model, prompts, vectors, desc):
        if desc == "probes":
            seen.extend(vectors)
        return generate(ev, model, prompts, vectors, desc)

    monkeypatch.setattr(evaluation.Evaluation, "generate", recording)
    results = evaluation.evaluate(EvalArguments(
        model=str(model), tasks=["summary"], controls=["shuffled"], curves=False, max_examples=3,
        max_new_tokens=4, probes=["a heist movie", "a heist movie - crime + comedy"], output_dir=str(tmp_path)))
    assert results["version"] == RESULTS_VERSION and results["encoder"] == "all-MiniLM-L6-v2"
    assert [p["input"] for p in results["probes"]] == ["a heist movie", "a heist movie - crime + comedy"]
    assert all(p["prompt"].count("<movie>") == 1 and isinstance(p["answer"], str) for p in results["probes"])
    words = semantic_embeddings(["a heist movie", "crime", "comedy"], load_encoder(None), progress=False)
    assert torch.allclose(torch.as_tensor(seen[0]["movie"][0]), torch.as_tensor(words[0]), atol=1e-5)
    assert torch.allclose(torch.as_tensor(seen[1]["movie"][0]), torch.as_tensor(words[0] - words[1] + words[2]),
                          atol=1e-5)


def test_describe_moves_a_movie_along_a_concept_in_the_concepts_own_steps(trained, tmp_path, monkeypatch, capsys):
    import numpy as np

    from modeling_elm.scripts import describe
    from modeling_elm import inference
    from modeling_elm.data.concepts import concept_directions, move_along, save_concepts
    from modeling_elm.data.corpus import load_corpus
    from modeling_elm.data.movielens.tables import movielens_tables

    corpus = tmp_path / "corpus"
    shutil.copytree(trained[1], corpus)
    movies, _ = movielens_tables(load_corpus(corpus))
    vectors = np.stack(movies["semantic"].to_numpy())
    funny = np.arange(len(movies)) % 2 == 0  # the tiny corpus has too few movies per genre for a real CAV
    concepts = concept_directions(vectors, {"Comedy": funny}, space="semantic", min_positive=2, test_fraction=0.4)
    save_concepts(concepts, corpus / "concepts" / "movie_semantic")
    asked = []
    monkeypatch.setattr(inference, "generate_texts", lambda model, processor, prompts, vecs, **kw: asked.append(vecs)
                        or ["a comedy"])
    title = str(movies.iloc[0]["title"])
    assert describe.main(["--model", str(trained[0]), "--corpus", str(corpus), "--movie", title,
                          "--concept", "Comedy", "--strength", "2", "--device", "cpu"]) == 0
    expected = move_along(vectors[0], concepts["Comedy"], 2.0)
    assert np.allclose(asked[0][0]["movie"][0], expected)
    assert np.allclose(asked[0][0]["movie"][0] - vectors[0], 2 * concepts["Comedy"].step, atol=1e-5)
    assert "moved along Comedy by 2 of its steps" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="Did you mean 'Comedy'"):
        describe.main(["--model", str(trained[0]), "--corpus", str(corpus), "--movie", title, "--concept", "comedy"])


def test_hypothetical_vectors_are_asked_the_tasks_the_model_learnt():
    from types import SimpleNamespace

    from modeling_elm.evaluation.curves import concept_prompts, describe_prompt, interpolation_prompt

    prompts = {"summary": "Summarise <movie>.", "positive_review": "Praise <movie>.",
               "interpolation": "Blend <movie>.", "similarities": "Compare <movie> and <movie>."}
    corpus = SimpleNamespace(prompts=prompts, single_prompts=lambda space: {
        task: prompt for task, prompt in prompts.items() if prompt.count("<movie>") == 1})
    everything = SimpleNamespace(corpus=corpus, marker={"tasks": list(prompts)})
    assert interpolation_prompt(everything) == ("interpolation", "Blend <movie>.")
    assert concept_prompts(everything) == {"summary": "Summarise <movie>.", "positive_review": "Praise <movie>."}
    reviews_only = SimpleNamespace(corpus=corpus, marker={"tasks": ["positive_review", "similarities"]})
    assert describe_prompt(reviews_only) == "Praise <movie>."
    assert interpolation_prompt(reviews_only) == ("positive_review", "Praise <movie>.")
    unrecorded = SimpleNamespace(corpus=corpus, marker={})  # trained before models recorded their tasks
    assert describe_prompt(unrecorded) == "Summarise <movie>."


def test_every_bad_model_or_device_ends_the_cli_in_one_line(trained, tmp_path, monkeypatch):
    """What a user gets wrong about --model or --device: one message naming the problem and the fix, no traceback."""
    from modeling_elm.scripts.evaluate import main

    config_only = tmp_path / "config-only"
    config_only.mkdir()
    (config_only / "config.json").write_text((trained[0] / "config.json").read_text())
    cut = tmp_path / "cut"
    shutil.copytree(trained[0], cut, ignore=shutil.ignore_patterns("stage*", "checkpoint-*"))
    weights = cut / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a download or save cut short
    (tmp_path / "a-file").write_text("")
    base = write_tiny_base_model(tmp_path / "base")
    expected = {
        str(tmp_path / "missing"): "No folder at",
        str(tmp_path / "a-file"): "is a file, not a model folder",
        str(base): "holds a llama model, not a trained ELM",
        str(config_only): "holds no trained ELM: no weights (model.safetensors) nor the record of a train.py run",
        str(cut): f"{weights} is damaged (",
    }
    for model, message in expected.items():
        with pytest.raises(SystemExit) as stop:
            main(["--model", model, "--device", "cpu", "--output_dir", str(tmp_path / "eval")])
        assert isinstance(stop.value.code, str) and message in stop.value.code, (model, stop.value.code)
        assert "--corpus" not in stop.value.code
    assert "re-run the train.py command that wrote it" in stop.value.code
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match=r"^--device cuda: no GPU is available on this machine; use --device cpu\.$"):
        main(["--model", str(trained[0]), "--device", "cuda", "--output_dir", str(tmp_path / "eval")])


def test_each_model_gets_its_own_report_folder_by_default(tmp_path, monkeypatch):
    from modeling_elm.evaluation.evaluate import EvalArguments

    monkeypatch.chdir(tmp_path)
    for name in ("elm-a", "elm-b"):
        (tmp_path / "checkpoints" / name).mkdir(parents=True)
    folders = {EvalArguments(model=f"checkpoints/{name}").output_dir for name in ("elm-a", "elm-b")}
    assert folders == {"checkpoints/elm-a-eval", "checkpoints/elm-b-eval"}
    assert EvalArguments(model="checkpoints/elm-a/").output_dir == "checkpoints/elm-a-eval"
    assert EvalArguments(model="someone/elm-movielens").output_dir == "elm-movielens-eval"  # a Hub id: here
    assert EvalArguments(model="checkpoints/elm-a", output_dir="mine").output_dir == "mine"


def test_your_own_datas_constant_guess_is_the_training_answer_nearest_to_every_vector(tmp_path):
    """The best answer that ignores the vector: chosen among training targets, scored on the held-out rows."""
    from types import SimpleNamespace

    import numpy as np
    import pandas as pd

    from modeling_elm.data.byo import DataConfig, build_byo_corpus
    from modeling_elm.data.corpus import load_corpus
    from modeling_elm.data.embeddings import load_encoder, semantic_embeddings
    from modeling_elm.evaluation.evaluate import EntityScorer

    encoder = load_encoder(None)
    words = ["violin", "cello", "viola", "guitar", "harp", "lute", "mandolin", "banjo", "banana", "spreadsheet"]
    pd.DataFrame({"id": words, "vector": list(semantic_embeddings(words, encoder, progress=False)),
                  "word": words}).to_parquet(tmp_path / "words.parquet")
    corpus = load_corpus(build_byo_corpus(DataConfig.from_dict({
        "spaces": {"word": {"path": str(tmp_path / "words.parquet")}},
        "templates": [{"task": "name", "prompt": "Name <word>.", "target": "{word}"}],
        "test_fraction": 0.2, "seed": 1, "output_dir": str(tmp_path / "corpus")})))
    ev = SimpleNamespace(encoder=encoder, anchor="word", anchor_encoded=True, corpus=corpus,
                         vector_tables=corpus.vectors, args=SimpleNamespace(seed=0),
                         embed=lambda texts: semantic_embeddings(texts, encoder, progress=False))
    held_out = [corpus.tasks["test"][i] for i in range(len(corpus.tasks["test"]))]
    everything = list(range(len(corpus.tasks["train"])))  # one task: every training row is one of its rows
    guess = EntityScorer(ev).constant_guess("name", held_out, everything)
    trained_words = {ids[0] for ids in corpus.tasks["train"]["word_ids"]}
    assert guess["text"] in trained_words and guess["text"] not in {"banana", "spreadsheet"}  # a string instrument
    own = semantic_embeddings([guess["text"]], encoder, progress=False)[0]
    expected = [float(own @ corpus.vectors["word"].lookup(r["word_ids"])[0]) for r in held_out]
    assert guess["sc"]["n"] == 2 and guess["sc"]["mean"] == pytest.approx(np.mean(expected), abs=1e-4)
    ev.encoder = None  # vectors no encoder made: there is no text to re-embed, so no constant answer either
    assert EntityScorer(ev).constant_guess("name", held_out, everything) is None
