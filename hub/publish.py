"""Publish a trained ELM to the Hugging Face Hub: the model (safetensors, remote code, processor, model card), the
task dataset (with its card, private by default: MovieLens may not be redistributed) and the Space.

    python -m hub.publish --model checkpoints/elm-quick --repo_id you/elm-quick
    python -m hub.publish --model checkpoints/elm-quick --repo_id you/elm-quick \\
        --dataset_repo you/elm-movielens-tasks --space_repo you/elm-demo --eval checkpoints/elm-quick-eval

Re-running updates the same repositories (a new commit with what changed), never duplicates them. The token is the
usual one: `hf auth login`, or HF_TOKEN in the environment.
"""

import json
import shutil
import sys
import tempfile
from pathlib import Path

from huggingface_hub import HfApi, get_token

from modeling_elm.checkpoints import read_marker, trained_corpus, write_marker

ROOT = Path(__file__).resolve().parents[1]
MODEL_FILES = ("config.json", "generation_config.json", "model.safetensors", "model.safetensors.index.json",
               "configuration_elm.py", "modeling_elm.py", "processing_elm.py", "processor_config.json",
               "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
               "loss_stage1.png", "loss_stage2.png")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
DATASET_PATTERNS = ("tasks/*", "vectors/*", "entities/*", "concepts/*", "manifest.json", "README.md")


class PublishError(SystemExit):
    """A problem the user can fix; printed without a traceback."""


def check_model_folder(folder: Path) -> None:
    if not (folder / "config.json").is_file():
        raise PublishError(f"{folder} holds no trained ELM (no config.json); train one with train.py first.")
    if not any((folder / name).is_file() for name in ("model.safetensors", "model.safetensors.index.json")):
        pickles = [p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES]
        raise PublishError(f"{folder} has no safetensors weights"
                           f"{' (only ' + ', '.join(pickles) + ')' if pickles else ''}"
                           "; ELM publishes safetensors only. Re-save with `model.save_pretrained(folder)`.")
    for name in ("configuration_elm.py", "modeling_elm.py", "processing_elm.py"):
        if not (folder / name).is_file():
            raise PublishError(f"{folder} lacks {name}, which `trust_remote_code=True` users need; re-save the model "
                               "with `save_pretrained` from this package.")


def evaluation_table(results: dict | None) -> str:
    if not results:
        return "Not evaluated yet: run `python -m modeling_elm.scripts.evaluate --model <folder>` and publish again.\n"
    lines = ["| task | NLL real | NLL shuffled | SC real | SC shuffled | SC reference | hits@10 real | genre F1 real |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]

    def get(task, condition, metric):
        value = results["tasks"][task].get(condition, {}).get(metric)
        return f"{value['mean']:.3f}" if value else "–"

    for task in results["tasks"]:
        lines.append(f"| {task} | {get(task, 'real', 'nll')} | {get(task, 'shuffled', 'nll')} "
                     f"| {get(task, 'real', 'sc')} | {get(task, 'shuffled', 'sc')} | {get(task, 'reference', 'sc')} "
                     f"| {get(task, 'real', 'hits@10')} | {get(task, 'real', 'genre_f1')} |")
    return ("\n".join(lines) + f"\n\nHeld-out entities (`{results['split']}` split), encoder `{results['encoder']}`, "
            f"{results['settings']['max_examples']} examples per task. *Shuffled*: the same model given another "
            "entity's vector; the gap is the evidence that the model reads its vector.\n")


def model_card(folder: Path, repo_id: str, config: dict, marker: dict, results: dict | None,
               dataset_repo: str | None) -> str:
    """The model card: metadata, what the model reads, how to load it, the evaluation table, the training record
    (long because most of its lines are the card's own text)."""
    from huggingface_hub import ModelCard, ModelCardData

    base = config.get("base_model") or config.get("text_config", {}).get("_name_or_path") or "unknown"
    spaces = config.get("embedding_spaces", {})
    stages = marker.get("stages", {})
    data = ModelCardData(
        license="apache-2.0", library_name="transformers", pipeline_tag="text-generation",
        base_model=base if "/" in base else None, datasets=[dataset_repo] if dataset_repo else None,
        tags=["elm", "embedding-language-model", "embeddings", "movielens", "trust-remote-code"],
    )
    space_lines = "\n".join(f"- `{s['placeholder']}`: {name} vectors of {s['dim']} dimensions, "
                            f"{s['num_tokens']} soft token(s)" for name, s in spaces.items())
    first = next(iter(spaces.items()), ("movie", {"dim": 384, "placeholder": "<movie>"}))
    training = "\n".join(f"- {name}: {record.get('global_step')} steps, {record.get('seconds')} s"
                         for name, record in stages.items())
    data_source = (('[' + dataset_repo + '](https://huggingface.co/datasets/' + dataset_repo + ')') if dataset_repo
                   else 'a MovieLens task corpus')
    body = f"""
# {repo_id.split('/')[-1]}

An **Embedding Language Model** (ELM; Tennenholtz et al., *Demystifying Embedding Spaces using Large Language
Models*, ICLR 2024): `{base}` with an adapter per embedding space that maps a vector into the LM's token space, so
the LM reads the vector as a word and writes about it.

{space_lines}

## Usage

```python
import torch
from transformers import AutoModelForCausalLM, AutoProcessor

model = AutoModelForCausalLM.from_pretrained("{repo_id}", trust_remote_code=True)
processor = AutoProcessor.from_pretrained("{repo_id}", trust_remote_code=True)
text = processor.prompt("What kind of movie is {first[1]['placeholder']}?")  # the prompt format training used
batch = processor(text=text, vectors={{"{first[0]}": torch.randn({first[1]['dim']})}})  # your vector here
output = model.generate(**batch)  # greedy, no repeated 4-grams, 40 new tokens: the checkpoint's generation_config
print(processor.decode(output[0, batch["input_ids"].shape[1]:], skip_special_tokens=True))
```

`trust_remote_code=True` runs `configuration_elm.py`, `modeling_elm.py` and `processing_elm.py` \
from this repository (read them first;
they are short); they need transformers >= 5.24 and say so on older versions. Weights are safetensors only.

## Evaluation

{evaluation_table(results)}
## Training

Two stages as in the paper, each its own run of TRL's `SFTTrainer`: the adapters alone with the LM frozen, then
{'the whole model' if 'stage2' in stages else 'no second stage'}. System prompt: `{marker.get('system_prompt')}`.
{training}

Data: {data_source}
built with `python -m modeling_elm.scripts.corpus` (targets written from the data by the grounded writer).

## Limitations

- A small LM trained for minutes learns to read genres and eras from a vector long before it can name a movie;
  compare the real-vector numbers with the shuffled-vector control above before trusting an output.
- It describes *any* vector of the right size, including ones no movie has; such descriptions are the model's
  reading of the space, not facts.
- English only; movie knowledge is MovieLens' (mostly Western films).

## Licences

Model weights and code: Apache-2.0 (base model: see its card). The training data derive from MovieLens, under the
GroupLens usage licence (research use, no redistribution without permission); the dataset repository is private
unless you hold that permission.
"""
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n{body}"))


def stage_model(folder: Path, staging: Path, repo_id: str, results: dict | None, dataset_repo: str | None) -> None:
    config = json.loads((folder / "config.json").read_text())
    marker = read_marker(folder) or {}
    for name in MODEL_FILES:
        if (folder / name).is_file():
            shutil.copy2(folder / name, staging / name)
    for shard in folder.glob("model-*.safetensors"):
        shutil.copy2(shard, staging / shard.name)
    # What the Space and users need to talk to it; never local paths.
    public_marker = {k: v for k, v in marker.items() if k != "corpus"}
    write_marker(staging, **public_marker)
    if results:
        (staging / "eval").mkdir()
        (staging / "eval" / "results.json").write_text(json.dumps(results, indent=2))
    (staging / "README.md").write_text(model_card(folder, repo_id, config, marker, results, dataset_repo))


def source_commit() -> str:
    """The git commit of the code being published ('unknown' outside a git checkout; '+changes' when dirty)."""
    import subprocess

    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "HEAD") or "unknown"
    return commit + ("+changes" if git("status", "--porcelain", "--", "modeling_elm", "space") else "")


def stage_space(staging: Path, model_ref: str, dataset_repo: str | None) -> None:
    for name in ("app.py", "elm_space.py", "requirements.txt"):
        shutil.copy2(ROOT / "space" / name, staging / name)
    # The package travels with the Space, pinned by the Space's own commit: Hub builds install requirements.txt
    # before the repository's files exist, so a wheel in the repo could not be named there, and the project has no
    # index release to pin to.
    shutil.copytree(ROOT / "modeling_elm", staging / "modeling_elm", ignore=shutil.ignore_patterns("__pycache__"))
    readme = (ROOT / "space" / "README.md").read_text()
    readme += f"\nBuilt from `modeling_elm` at commit `{source_commit()}`.\n"
    readme = readme.replace("models: []", f"models: [{model_ref.split('@')[0]}]")
    readme = readme.replace("datasets: []", f"datasets: [{dataset_repo}]" if dataset_repo else "datasets: []")
    (staging / "README.md").write_text(readme)


def publish(model: Path, repo_id: str, eval_dir: Path | None = None, dataset_repo: str | None = None,
            corpus: Path | None = None, space_repo: str | None = None, private: bool = False,
            private_dataset: bool = True, api: HfApi | None = None) -> dict:
    """Push what was asked; returns {"model": commit, "dataset": commit, "space": commit} (commit hashes)."""
    if get_token() is None:
        raise PublishError("No Hugging Face token found. Run `hf auth login` (or set HF_TOKEN) and try again.")
    api = api or HfApi()
    check_model_folder(model)
    results = None
    if eval_dir and (Path(eval_dir) / "results.json").is_file():
        results = json.loads((Path(eval_dir) / "results.json").read_text())
    commits = {}
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp) / "model"
        staging.mkdir()
        stage_model(model, staging, repo_id, results, dataset_repo)
        api.create_repo(repo_id, private=private, exist_ok=True)
        commits["model"] = api.upload_folder(repo_id=repo_id, folder_path=staging,
                                             commit_message="Upload ELM (python -m hub.publish)").oid
        if dataset_repo:
            try:
                corpus = Path(trained_corpus(model, corpus, how="pass --corpus <folder>"))
            except ValueError as error:
                raise PublishError(f"--dataset_repo needs the corpus folder: {error}") from None
            if not (corpus / "manifest.json").is_file():
                raise PublishError(f"--dataset_repo needs the corpus folder (--corpus); {corpus} is not one.")
            api.create_repo(dataset_repo, repo_type="dataset", private=private_dataset, exist_ok=True)
            commits["dataset"] = api.upload_folder(repo_id=dataset_repo, repo_type="dataset", folder_path=corpus,
                                                   allow_patterns=list(DATASET_PATTERNS),
                                                   commit_message="Upload ELM task corpus (python -m hub.publish)").oid
        if space_repo:
            staging = Path(tmp) / "space"
            staging.mkdir()
            model_ref = f"{repo_id}@{commits['model']}"  # the Space pins the exact model commit it was built for
            stage_space(staging, model_ref, dataset_repo)
            api.create_repo(space_repo, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
            api.add_space_variable(space_repo, "ELM_MODEL", model_ref)
            if dataset_repo:
                api.add_space_variable(space_repo, "ELM_CORPUS", f"{dataset_repo}@{commits['dataset']}")
            commits["space"] = api.upload_folder(repo_id=space_repo, repo_type="space", folder_path=staging,
                                                 commit_message="Upload ELM Space (python -m hub.publish)").oid
    return commits


def main(argv=None) -> int:
    from modeling_elm.scripts import command_parser

    parser = command_parser(__doc__, "publish", prog="python -m hub.publish")
    parser.add_argument("--model", type=Path, default=Path("checkpoints/elm-quick"), help="trained ELM folder")
    parser.add_argument("--repo_id", "--repo-id", required=True, help="model repository, e.g. you/elm-quick")
    parser.add_argument("--eval", type=Path, default=None,
                        help="evaluation folder with results.json (default: <model>-eval if it exists)")
    parser.add_argument("--dataset_repo", "--dataset-repo", default=None,
                        help="also push the task corpus here (private by default)")
    parser.add_argument("--corpus", type=Path, default=None, help="corpus folder (default: the model's own)")
    parser.add_argument("--public_dataset", "--public-dataset", action="store_true",
                        help="make the dataset public: only with GroupLens' permission to redistribute MovieLens")
    parser.add_argument("--space_repo", "--space-repo", default=None,
                        help="also push the Gradio Space here, pinned to this model")
    parser.add_argument("--private", action="store_true", help="make the model and Space private")
    args = parser.parse_args(argv)
    eval_dir = args.eval or Path(f"{str(args.model).rstrip('/')}-eval")
    commits = publish(args.model, args.repo_id, eval_dir, args.dataset_repo, args.corpus, args.space_repo,
                      args.private, not args.public_dataset)
    for kind, commit in commits.items():
        print(f"{kind}: {commit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
