"""Bring your own vectors: loaders per format, validation messages, the WordNet builder, and one tiny run from files
on disk through both stages to evaluation."""

import json
import pathlib

import numpy as np
import pandas as pd
import pytest
import yaml

from modeling_elm.data.byo import DataConfig, SpaceSpec, build_byo_corpus
from modeling_elm.data.entity_vectors import entity_vectors
from modeling_elm.data.files import read_table
from helpers.elm import run_train
from helpers.elm import write_tiny_base_model

WORDS = ["love", "war", "space", "music", "family", "crime", "drama", "comedy", "horror", "romance", "story", "film"]


def entities(n=12, dim=6, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"id": [f"e{i}" for i in range(n)], "vector": list(rng.standard_normal((n, dim))),
                         "word": WORDS[:n], "kind": ["good" if i % 2 else "bad" for i in range(n)]})


def test_every_format_loads_the_same_vectors(tmp_path):
    table = entities(dim=12)
    expected = np.stack(table["vector"]).astype(np.float32)
    table.to_parquet(tmp_path / "e.parquet")
    wide = pd.concat([table[["id"]], pd.DataFrame(expected, columns=[f"dim_{i}" for i in range(12)])], axis=1)
    shuffled = [f"dim_{i}" for i in np.random.default_rng(1).permutation(12)]  # dim_10 must come after dim_9
    wide[["id"] + shuffled].to_csv(tmp_path / "e.csv", index=False)
    with open(tmp_path / "e.jsonl", "w") as f:
        for _, row in table.iterrows():
            f.write(json.dumps({"id": row["id"], "vector": row["vector"].tolist()}) + "\n")
    import datasets

    listed = table[["id", "word"]].assign(vector=[v.tolist() for v in table["vector"]])
    datasets.Dataset.from_pandas(listed).save_to_disk(str(tmp_path / "e-ds"))
    for path, spec in [("e.parquet", {}), ("e.csv", {"vector_column": None, "vector_columns": "dim_*"}),
                       ("e.jsonl", {}), ("e-ds", {})]:
        frame, offset = read_table(str(tmp_path / path))
        vectors = entity_vectors(frame, SpaceSpec(str(tmp_path / path), **spec), offset)
        assert np.allclose(vectors, expected, atol=1e-6), path


def test_broken_inputs_name_the_file_and_row(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"id": "a", "vector": [1, 2]}\n{"id": "b", "vector": [1, 2\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: not a JSON object"):
        read_table(str(tmp_path / "bad.jsonl"))
    (tmp_path / "bad.csv").write_text("id,dim_0,dim_1\na,1,2\nb,1,2,3\n")
    with pytest.raises(ValueError, match=r"bad\.csv.*line 3"):
        read_table(str(tmp_path / "bad.csv"))
    cases = {
        "size": (pd.DataFrame({"id": ["a", "b", "c"], "vector": [[1.0, 2.0], [1.0, 2.0], [1.0]]}),
                 r"row 2 \(id 'c'\): vector has 1"),
        "nan": (pd.DataFrame({"id": ["a", "b"], "vector": [[1.0, 2.0], [np.nan, 2.0]]}), r"row 1 \(id 'b'\).*NaN"),
        "dupe": (pd.DataFrame({"id": ["a", "a"], "vector": [[1.0, 2.0], [3.0, 2.0]]}),
                 r"id 'a' appears 2 times \(rows 0, 1\)"),
        "no id": (pd.DataFrame({"key": ["a"], "vector": [[1.0]]}), r"no id column 'id'"),
    }
    for name, (frame, message) in cases.items():
        with pytest.raises(ValueError, match=message):
            entity_vectors(frame, SpaceSpec(f"{name}.parquet"), 0)


def test_texts_with_unknown_ids_are_dropped_counted_and_shown(tmp_path, caplog):
    entities().to_parquet(tmp_path / "e.parquet")
    rows = [{"ids": ["e1"], "task": "say", "target": "a word"}, {"ids": ["zz"], "task": "say", "target": "lost"},
            {"ids": ["e2"], "task": "say", "target": ""}, {"ids": "e3|e4", "task": "pair", "target": "two words"}]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    config = DataConfig.from_dict({"spaces": {"word": {"path": str(tmp_path / "e.parquet")}},
                                   "texts": str(tmp_path / "t.jsonl"),
                                   "prompts": {"say": "say <word> .", "pair": "compare <word> and <word> ."},
                                   "output_dir": str(tmp_path / "out"), "test_fraction": 0.5})
    folder = build_byo_corpus(config)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["dropped"] == {"unknown id": 1, "empty target": 1}
    assert "t.jsonl:2: 'zz'" in caplog.text
    assert sum(manifest["counts"]["rows"].values()) == 2
    bad = dict(config.__dict__, prompts={"say": "say <word> and <word> ."}, output_dir=str(tmp_path / "out2"))
    with pytest.raises(ValueError, match=r"t\.jsonl:1: the prompt has 2 placeholder\(s\) but the row has 1 id"):
        build_byo_corpus(DataConfig(**bad))
    with pytest.raises(ValueError, match="unknown key"):
        DataConfig.from_dict({"spaces": {"w": {"path": "x"}}, "text": "typo.jsonl"})


def test_the_corpus_stores_each_vector_once_and_rows_name_ids(tmp_path):
    from modeling_elm.data.corpus import load_task_splits, load_vector_tables, row_vectors

    table = entities(n=6, dim=4)
    table.to_parquet(tmp_path / "e.parquet")
    config = DataConfig.from_dict({"spaces": {"word": {"path": str(tmp_path / "e.parquet")}},
                                   "templates": [{"task": "name", "prompt": "name <word> .", "target": "{word}"},
                                                 {"task": "kind", "prompt": "kind of <word> ?", "target": "{kind}"}],
                                   "output_dir": str(tmp_path / "out"), "test_fraction": 0.5})
    folder = build_byo_corpus(config)
    stored = load_vector_tables(folder)["word"]
    np.testing.assert_allclose(stored.lookup(table["id"]), np.stack(table["vector"]), rtol=1e-6)
    assert "vector" not in pd.read_parquet(folder / "entities" / "word.parquet").columns
    splits = load_task_splits(folder)
    assert sum(len(s) for s in splits.values()) == 12 and "word_vectors" not in splits["train"].column_names
    for row in splits["train"]:
        i = int(row["word_ids"][0][1:])
        np.testing.assert_allclose(row_vectors(row, {"word": stored})["word"][0], table["vector"][i], rtol=1e-6)


def test_an_empty_split_is_refused_when_the_corpus_is_built(tmp_path):
    entities(n=1).to_parquet(tmp_path / "one.parquet")
    config = DataConfig.from_dict({"spaces": {"word": {"path": str(tmp_path / "one.parquet")}},
                                   "templates": [{"task": "name", "prompt": "name <word> .", "target": "{word}"}],
                                   "output_dir": str(tmp_path / "out")})
    with pytest.raises(ValueError, match=r"split\(s\) \['test'\] would be empty "
                                         r"\(rows per split: \{'train': 1, 'test': 0\}\)"):
        build_byo_corpus(config)
    assert not (tmp_path / "out" / "manifest.json").exists()  # nothing cached that a rerun would trust


def test_wordnet_builder_on_a_small_slice(tmp_path):
    from modeling_elm.data.wordnet import build_wordnet, parse_data_line

    out = build_wordnet(tmp_path / "wn", max_synsets=40)
    synsets = pd.read_parquet(out / "synsets.parquet")
    assert len(synsets) == 40 and synsets["id"].is_unique and (synsets["gloss"].str.len() > 0).all()
    assert len(synsets["vector"].iloc[0]) == 384 and (synsets["hypernym"].str.len() > 0).all()
    texts = [json.loads(line) for line in (out / "texts.jsonl").read_text().splitlines()]
    assert {t["task"] for t in texts} >= {"definition", "kind_of"}
    kind_of = {t["ids"][0]: t["target"] for t in texts if t["task"] == "kind_of"}
    assert all(kind_of[i] == f"A kind of {h}." for i, h in zip(synsets["id"], synsets["hypernym"]))
    dog = parse_data_line("02084071 05 n 03 dog 0 domestic_dog 0 Canis_familiaris 0 001 @ 02083346 n 0000 | a member "
                          'of the genus Canis; "the dog barked all night"', "data.noun", 7)
    assert dog.lemmas == ["dog", "domestic dog", "Canis familiaris"] and dog.hypernyms == ["02083346"]
    assert dog.definition == "a member of the genus Canis" and dog.examples == ["the dog barked all night"]
    with pytest.raises(ValueError, match="data.noun:9: not a WordNet data line"):
        parse_data_line("garbage", "data.noun", 9)


def test_own_files_through_both_stages_to_evaluation(tmp_path, capsys):
    from modeling_elm.scripts.evaluate import main as evaluate

    table = entities(n=12, dim=6)
    table.to_parquet(tmp_path / "words.parquet")
    recipe = {
        "base_model": str(write_tiny_base_model(tmp_path / "base")), "output_dir": str(tmp_path / "elm"),
        "data": {"spaces": {"word": {"path": str(tmp_path / "words.parquet")}},
                 "templates": [{"task": "name", "prompt": "what does <word> mean ?", "target": "{word} ."},
                               {"task": "kind", "prompt": "is <word> good ?", "target": "{kind} ."}],
                 "test_fraction": 0.25, "output_dir": str(tmp_path / "corpus")},
        "per_device_train_batch_size": 4, "stage1_max_steps": 3, "stage2_max_steps": 2, "logging_steps": 1,
        "save_steps": 100, "report_to": "none", "gradient_checkpointing": False, "use_cpu": True, "bf16": False,
        "max_length": 48, "system_prompt": "",
    }
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    out = run_train(["--config", str(tmp_path / "recipe.yaml"), "--output_dir", str(tmp_path / "elm")])
    printed = capsys.readouterr().out
    assert "--movie" not in printed and "--probes" in printed  # the closing hint fits your data, not MovieLens
    marker = json.loads((out / "elm_stage.json").read_text())
    assert marker["complete"] and set(marker["stages"]) == {"stage1", "stage2"}
    config = json.loads((out / "config.json").read_text())
    space = config["embedding_spaces"]["word"]
    assert space["dim"] == 6 and space["placeholder"] == "<word>"
    # no --output_dir: the report goes beside the model, where a second model's cannot replace it
    evaluate(["--model", str(out), "--max_examples", "3", "--candidates", "3", "--max_new_tokens", "3"])
    assert not (tmp_path / "eval").exists()
    results = json.loads((tmp_path / "elm-eval" / "results.json").read_text())
    assert set(results["tasks"]) == {"name", "kind"}
    for task in results["tasks"].values():
        assert {"nll", "hits@1", "hits@5", "mrr"} <= set(task["real"]) and "nll" in task["shuffled"]
        assert "nll" in task["untrained"]  # the same evaluator as MovieLens': the stage-0 control too
    from modeling_elm.evaluation.evaluate import RESULTS_VERSION

    assert results["version"] == RESULTS_VERSION and results["encoder"] is None
    assert "nll" in results["gap_real_minus_shuffled"]["name"]
    assert (tmp_path / "elm-eval" / "report.md").is_file()


def test_bad_entity_files_name_file_row_and_fix_at_build_time(tmp_path):
    """Each of these used to pass as something else or fail with a bare library error."""
    cases = {
        "null id": (pd.DataFrame({"id": ["a", None], "vector": [[1.0, 2.0], [3.0, 4.0]]}),
                    r"null id\.parquet, row 1: the id \('id'\) is empty"),
        "string vector": (pd.DataFrame({"id": ["a", "b"], "vector": [[1.0, 2.0], 7.0]}),
                          r"row 1 \(id 'b'\): the vector is 7\.0, not a list of numbers"),
        "null vector": (pd.DataFrame({"id": ["a", "b"], "vector": [[1.0, 2.0], None]}),
                        r"row 1 \(id 'b'\): the vector is None, not a list"),
        "empty vectors": (pd.DataFrame({"id": ["a", "b"], "vector": [[], []]}), r"are empty \(0 values\)"),
        "nested vector": (pd.DataFrame({"id": ["a", "b"], "vector": [[[1.0, 2.0]], [[3.0, 4.0]]]}),
                          r"nested vector\.parquet, row 0 \(id 'a'\): the vector is nested \(shape \(1, 2\)\)"),
    }
    for name, (frame, message) in cases.items():
        with pytest.raises(ValueError, match=message):
            entity_vectors(frame, SpaceSpec(f"{name}.parquet"), 0)
    (tmp_path / "zero.parquet").write_bytes(b"")
    with pytest.raises(ValueError, match=r"zero\.parquet: not a readable Parquet file .*to_parquet"):
        read_table(str(tmp_path / "zero.parquet"))


def test_bad_recipe_data_sections_are_refused_before_any_build(tmp_path):
    spaces = {"word": {"path": "e.parquet"}}
    with pytest.raises(ValueError, match=r"data\.templates\[0\] \(task 'name'\): space 'wrod' is not one of"):
        DataConfig.from_dict({"spaces": spaces, "templates": [
            {"task": "name", "prompt": "name <word> .", "target": "{word}", "space": "wrod"}]})
    with pytest.raises(ValueError, match=r"placeholder 'vec' is a plain word.*'<vec>'"):
        DataConfig.from_dict({"spaces": {"word": {"path": "e.parquet", "placeholder": "vec"}}, "texts": "t.jsonl"})


def test_numeric_targets_are_text_and_null_ids_in_texts_are_refused(tmp_path):
    entities().to_parquet(tmp_path / "e.parquet")
    pd.DataFrame({"ids": ["e1", "e2", "e3", "e4"], "task": "year", "target": [1999, 2001, 1987, 1950]}).to_csv(
        tmp_path / "t.csv", index=False)
    config = DataConfig.from_dict({"spaces": {"word": {"path": str(tmp_path / "e.parquet")}},
                                   "texts": str(tmp_path / "t.csv"), "prompts": {"year": "the year of <word> ?"},
                                   "output_dir": str(tmp_path / "out"), "test_fraction": 0.25})
    folder = build_byo_corpus(config)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["dropped"] == {} and sum(manifest["counts"]["rows"].values()) == 4
    from modeling_elm.data.corpus import load_task_splits

    targets = {t for split in load_task_splits(folder).values() for t in split["target"]}
    assert targets == {"1999", "2001", "1987", "1950"}
    (tmp_path / "t2.jsonl").write_text(json.dumps({"ids": "e1", "task": "year", "target": "x"}) + "\n"
                                       + json.dumps({"ids": None, "task": "year", "target": "y"}) + "\n")
    with pytest.raises(ValueError, match=r"t2\.jsonl:2: the row names no id"):
        build_byo_corpus(DataConfig(**dict(config.__dict__, texts=str(tmp_path / "t2.jsonl"),
                                           output_dir=str(tmp_path / "out2"))))


def test_a_long_prompt_in_a_texts_file_is_named_by_its_line_before_the_build(tmp_path):
    from modeling_elm.training.arguments import ElmArguments, check_prompt_lengths

    base = write_tiny_base_model(tmp_path / "base")
    rows = [{"ids": "e1", "task": "say", "target": "a", "prompt": "say <word> ."},
            {"ids": "e2", "task": "say", "target": "b", "prompt": "say <word> ."},
            {"ids": "e3", "task": "say", "target": "c", "prompt": "tell " + "me more " * 40 + "about <word> ."}]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    data = {"spaces": {"word": {"path": str(tmp_path / "e.parquet")}}, "texts": str(tmp_path / "t.jsonl")}
    args = ElmArguments(base_model=str(base), data=data, num_tokens=1)
    with pytest.raises(ValueError, match=r"the prompt of .*t\.jsonl:3 alone is about"):
        check_prompt_lengths(args, None, max_length=48)
    short = dict(data, texts=None, templates=[{"task": "say", "prompt": "say <word> .", "target": "{word}"}])
    check_prompt_lengths(ElmArguments(base_model=str(base), data=short, num_tokens=1), None, max_length=48)


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
    from modeling_elm.data.corpus import load_vector_tables

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
    from modeling_elm.data.files import read_table

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

    from modeling_elm.data.files import read_table

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


def _stored_vectors(folder):
    from modeling_elm.data.corpus import load_vector_tables

    return load_vector_tables(folder)["word"].vectors


def test_a_source_rewritten_in_place_is_rebuilt_not_served_from_the_cache(tmp_path, monkeypatch):
    """Size and whole-second mtime stay when `cp -p`, `tar` or `rsync -t` replace a file; a folder or a Hub id has
    neither: the cache key must follow what the sources hold."""
    import os

    import datasets

    old, new = _entities(seed=0), _entities(seed=0)
    new["vector"] = new["vector"].iloc[::-1].to_list()  # the same values, other entities: the same file size
    old.to_parquet(tmp_path / "e.parquet")
    stat = (tmp_path / "e.parquet").stat()
    build_byo_corpus(_data(tmp_path / "e.parquet", tmp_path))
    new.to_parquet(tmp_path / "e.parquet")
    os.utime(tmp_path / "e.parquet", (int(stat.st_mtime), int(stat.st_mtime)))
    assert (tmp_path / "e.parquet").stat().st_size == stat.st_size
    np.testing.assert_allclose(_stored_vectors(build_byo_corpus(_data(tmp_path / "e.parquet", tmp_path))),
                               np.stack(new["vector"]), rtol=1e-6)

    for table in (old, new):  # a datasets folder, written again with other vectors
        datasets.Dataset.from_pandas(table.assign(vector=[v.tolist() for v in table["vector"]])).save_to_disk(
            str(tmp_path / "folder"))
        folder = build_byo_corpus(_data(tmp_path / "folder", tmp_path, output_dir=str(tmp_path / "from-folder")))
        np.testing.assert_allclose(_stored_vectors(folder), np.stack(table["vector"]), rtol=1e-6)

    monkeypatch.chdir(tmp_path)
    for table in (old, new):  # a Hub dataset whose revision changed
        hub = datasets.Dataset.from_pandas(table.assign(vector=[v.tolist() for v in table["vector"]]))
        monkeypatch.setattr(datasets, "load_dataset", lambda *a, hub=hub, **k: hub)
        folder = build_byo_corpus(_data("someone/vectors", tmp_path, output_dir=str(tmp_path / "from-hub")))
        np.testing.assert_allclose(_stored_vectors(folder), np.stack(table["vector"]), rtol=1e-6)


def test_a_value_beyond_float32_is_refused_naming_the_row_and_the_fix(tmp_path):
    huge = pd.DataFrame({"id": ["a", "b"], "vector": [[1.0, 2.0], [3.0, -1e39]]})
    with pytest.raises(ValueError, match=r"huge\.parquet, row 1 \(id 'b'\): the vector holds -1e\+39, beyond "
                                         r"float32's range.*rescale the vectors"):
        entity_vectors(huge, SpaceSpec("huge.parquet"), 0)
    fits = pd.DataFrame({"id": ["a"], "vector": [[float(np.finfo(np.float32).max), -1.0]]})
    assert np.isfinite(entity_vectors(fits, SpaceSpec("fits.parquet"), 0)).all()


def test_an_id_holding_a_bar_is_one_id_and_a_csv_cell_may_hold_a_list_of_ids(tmp_path):
    from modeling_elm.data.corpus import load_task_splits

    _entities().assign(id=["a|1", "e1", "e2", "e3", "e4", "e5"]).to_parquet(tmp_path / "e.parquet")
    rows = {"one": ("say", "a|1"), "two": ("pair", '["a|1", "e1"]'), "three": ("pair", "e2|e3"),
            "four": ("pair", "['e4', 'e5']")}
    pd.DataFrame({"ids": [ids for _, ids in rows.values()], "task": [task for task, _ in rows.values()],
                  "target": list(rows)}).to_csv(tmp_path / "t.csv", index=False)
    folder = build_byo_corpus(_data(tmp_path / "e.parquet", tmp_path, templates=[], texts=str(tmp_path / "t.csv"),
                                    prompts={"say": "say <word> .", "pair": "compare <word> and <word> ."},
                                    test_fraction=0.3))
    named = {target: list(ids) for split in load_task_splits(folder).values()
             for target, ids in zip(split["target"], split["word_ids"])}
    assert named == {"one": ["a|1"], "two": ["a|1", "e1"], "three": ["e2", "e3"], "four": ["e4", "e5"]}


def test_movielens_behavioural_vectors_written_as_your_own_data_build_with_the_recipes_data_section(trained, tmp_path):
    """The third domain's files: every movie once with its ALS vector and the two texts the recipe's templates use."""
    from modeling_elm.data.corpus import load_corpus
    from modeling_elm.data.movielens.items import write_item_files
    from modeling_elm.data.vector_table import VectorTable

    corpus = trained[1]
    items = pd.read_parquet(write_item_files(tmp_path / "items", corpus) / "items.parquet")
    movies = pd.read_parquet(corpus / "entities" / "movie.parquet")
    assert list(items["id"]) == list(movies["id"])
    expected = VectorTable.load(corpus, "movie_behavioural").lookup(movies["id"])
    assert np.allclose(np.stack(items["vector"]), expected)
    first = movies.iloc[0]
    decade = f"{int(first['year']) // 10 * 10}s"
    assert items["kind"].iloc[0].endswith(f"film from the {decade}.") and items["reach"].str.endswith(".").all()
    recipe = pathlib.Path(__file__).resolve().parents[2] / "recipes" / "movielens-items.yaml"
    data = yaml.safe_load(recipe.read_text())["data"]
    data["spaces"]["item"]["path"] = str(tmp_path / "items" / "items.parquet")
    built = load_corpus(build_byo_corpus(DataConfig.from_dict({**data, "output_dir": str(tmp_path / "corpus"),
                                                               "test_fraction": 0.3})))
    assert set(built.tasks["train"]["task"]) == {"kind", "reach"}
    assert built.manifest["spaces"] == {"item": expected.shape[1]} and built.text_encoder("item")[0] is None
